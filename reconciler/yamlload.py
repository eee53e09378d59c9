"""Safe, bounded YAML loading that remembers where every value came from.

libyaml (PyYAML's C parser) composes the node tree; a small constructor of our own turns nodes
into plain Python values. Doing construction ourselves lets us refuse what a customer spec must
never contain (object-constructing tags, alias bombs, deep nesting, duplicate keys) and keep the
node tree so that a problem's file, line and column are found lazily, only when one is reported.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.model import Path, Problem
from reconciler.yamlsyntax import repair_candidates, syntax_message

try:  # The C parser is an order of magnitude faster; fall back only where libyaml is missing.
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_TEXT_TAGS = {_TAG + "timestamp", _TAG + "binary"}  # kept as the text written
_MAP, _SEQ = _TAG + "map", _TAG + "seq"
_MERGE = _TAG + "merge"


class SpecLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader with a faster tag resolver; the tags it gives are the same.

    The parser asks the resolver for the tag of every node, and PyYAML's generic resolver (path
    resolvers, a new list per call) costs more than composing the node itself. A safe loader has
    no path resolvers, so a node's tag depends only on its kind and, for a plain scalar, on its
    text: plain scalars repeat (keys, product names), so their tags are remembered.
    """

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            if implicit[0]:
                tag = _PLAIN_TAGS.get(value)
                if tag is None:
                    tag = plain_tag(value)
                    if len(_PLAIN_TAGS) >= _PLAIN_TAGS_MAX:
                        _PLAIN_TAGS.clear()
                    _PLAIN_TAGS[value] = tag
                return tag
            return STR
        return _SEQ if kind is SequenceNode else _MAP

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


if _BaseLoader.yaml_path_resolvers:  # pragma: no cover - nobody registers path resolvers on it
    SpecLoader = _BaseLoader  # type: ignore[misc,assignment]

_PLAIN_TAGS: dict[str, str] = {}
_PLAIN_TAGS_MAX = 50_000


def plain_tag(value: str) -> str:
    """The tag PyYAML's resolver gives a plain scalar: the first implicit resolver that matches."""
    table = _BaseLoader.yaml_implicit_resolvers
    for tag, regexp in table.get(value[:1], []) + table.get(None, []):
        if regexp.match(value):
            return str(tag)
    return STR


def reads_as_text(value: str) -> bool:
    """Would YAML read ``value``, written plain (unquoted), as text? ``No`` and ``12`` would not."""
    return plain_tag(value) == STR


# Keys whose scalar values are kept as the text written: "extension: 0466" is extension "0466",
# never the octal number 310, and "dids: [12094555948]" is a list of DIDs, not of integers.
RAW_TEXT_KEYS = frozenset({"extension", "dids"})


@dataclass(frozen=True)
class Limits:
    """Bounds on what a YAML file may cost to load. Defaults guard customer specs."""

    max_bytes: int = 10 * 1024 * 1024
    max_depth: int = 64
    max_alias_nodes: int = 100_000  # nodes produced by following aliases (billion laughs guard)
    max_documents: int = 1

    @classmethod
    def from_env(cls) -> Limits:
        """Limits, overridable by RECONCILER_MAX_SPEC_BYTES / _MAX_DEPTH / _MAX_ALIAS_NODES."""
        base = cls()
        return cls(
            max_bytes=_env_int("RECONCILER_MAX_SPEC_BYTES", base.max_bytes),
            max_depth=_env_int("RECONCILER_MAX_DEPTH", base.max_depth),
            max_alias_nodes=_env_int("RECONCILER_MAX_ALIAS_NODES", base.max_alias_nodes),
        )


# The provider's billing state file may be far larger than any customer spec.
STATE_LIMITS = Limits(max_bytes=1024 * 1024 * 1024, max_depth=64, max_alias_nodes=1_000_000)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        return default


@dataclass
class LoadedYaml:
    """A YAML document as plain data, its node tree, and the problems met while loading it.

    The node tree (``root``) is what gives a value its line and column. Loaded with
    ``keep_nodes=False`` the tree is dropped once the data is built and composed again from
    ``text`` only when a problem must be located: most specs have none, and the trees of a batch
    of large specs cost more memory and garbage-collector time than everything else in a plan.
    """

    file: str
    data: Any = None
    root: Node | None = None
    problems: list[Problem] = field(default_factory=list)
    text: str | None = field(default=None, repr=False)
    nodes_dropped: bool = field(default=False, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def is_empty(self) -> bool:
        """True when the file holds no YAML document at all."""
        return self.root is None and not self.nodes_dropped

    def nodes(self) -> Node | None:
        """The node tree, composed again from the text if it was dropped."""
        if self.root is None and self.nodes_dropped and self.text is not None:
            self.root = compose(self.text)
        return self.root

    def locate(self, path: Path, *, at_key: bool = False) -> tuple[int | None, int | None]:
        """Line and column (1-based) of the value at ``path``, or of its key when ``at_key``.

        Walks down the node tree as far as the path goes, so a path that does not exist points
        at its nearest existing parent.
        """
        node = self.nodes()
        if node is None:
            return None, None
        target: Node = node
        for index, step in enumerate(path):
            last = index == len(path) - 1
            child, key_node = _child(target, step)
            if child is None:
                break
            target = key_node if (last and at_key and key_node is not None) else child
        mark = target.start_mark
        return mark.line + 1, mark.column + 1

    def node_at(self, path: Path) -> Node | None:
        """The node of the value at ``path``, or None when the path does not exist."""
        node = self.nodes()
        for step in path:
            if node is None:
                return None
            node, _ = _child(node, step)
        return node

    def written(self, path: Path) -> str | None:
        """The text of the scalar at ``path`` as written in the file (``No`` for a value read as
        False), or None when it is not a scalar."""
        node = self.node_at(path)
        return node.value if isinstance(node, ScalarNode) else None

    def problem(self, code: str, message: str, path: Path = (), *, at_key: bool = False) -> Problem:
        line, column = self.locate(path, at_key=at_key)
        return Problem(code, message, self.file, line, column)


def _child(node: Node, step: Any) -> tuple[Node | None, Node | None]:
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == step:
                return value_node, key_node
        return None, None
    if isinstance(node, SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
        return node.value[step], None
    return None, None


class Refused(Exception):
    """Raised inside the constructor when the document is over a limit."""

    def __init__(self, message: str, node: Node | None) -> None:
        super().__init__(message)
        self.node = node


class _Constructor:
    """Turns a composed node tree into dicts, lists and scalars, checking the limits."""

    def __init__(self, loaded: LoadedYaml, limits: Limits) -> None:
        self.loaded = loaded
        self.limits = limits
        self.scalars = SafeConstructor()
        self.seen: set[int] = set()
        self.active: set[int] = set()
        self.in_alias = 0
        self.alias_nodes = 0

    def build(self, node: Node, depth: int = 0, raw: bool = False) -> Any:
        if self.in_alias:
            self.alias_nodes += 1
            if self.alias_nodes > self.limits.max_alias_nodes:
                raise Refused(
                    f"aliases expand to more than {self.limits.max_alias_nodes} nodes "
                    "(an alias expansion bomb?)",
                    node,
                )
        if isinstance(node, ScalarNode):
            return self._scalar(node, raw)
        if depth >= self.limits.max_depth:
            raise Refused(f"nesting is deeper than {self.limits.max_depth} levels", node)
        key = id(node)
        if key in self.active:
            raise Refused("a recursive alias refers to itself", node)
        aliased = key in self.seen
        self.seen.add(key)
        self.active.add(key)
        if aliased:
            self.in_alias += 1
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, depth)
            assert isinstance(node, SequenceNode)
            return self._sequence(node, depth, raw)
        finally:
            self.active.discard(key)
            if aliased:
                self.in_alias -= 1

    def _scalar(self, node: ScalarNode, raw: bool) -> Any:
        tag = node.tag
        if tag == STR:
            return node.value
        if tag in (INT, FLOAT):
            if raw and not node.style:  # plain (C parser: '', Python parser: None)
                return node.value
            try:
                return (
                    self.scalars.construct_yaml_int(node)
                    if tag == INT
                    else self.scalars.construct_yaml_float(node)
                )
            except ValueError:  # Python refuses int() of more than 4,300 digits
                raise Refused(
                    f"a number of {len(node.value)} characters is too long", node
                ) from None
        if tag == BOOL:
            return self.scalars.construct_yaml_bool(node)
        if tag == NULL:
            return None
        if tag in _TEXT_TAGS:
            return node.value
        raise Refused(
            f"the tag {tag!r} is not allowed (specs hold plain data only; a text that starts with "
            "'!' must be quoted)",
            node,
        )

    def _sequence(self, node: SequenceNode, depth: int, raw: bool) -> list[Any]:
        if node.tag != _SEQ:
            raise Refused(f"the tag {node.tag!r} is not allowed (specs hold plain data only)", node)
        return [self.build(item, depth + 1, raw) for item in node.value]

    def _mapping(self, node: MappingNode, depth: int) -> dict[str, Any]:
        if node.tag != _MAP:
            raise Refused(f"the tag {node.tag!r} is not allowed (specs hold plain data only)", node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise Refused("a mapping key must be plain text, not a list or a mapping", key_node)
            if key_node.tag not in (STR, INT, FLOAT, BOOL, NULL, _MERGE):
                raise Refused(f"the tag {key_node.tag!r} is not allowed", key_node)
            name = key_node.value
            if name in result:
                first = next(k for k, _ in node.value if isinstance(k, ScalarNode)
                             and k.value == name)
                self.loaded.problems.append(
                    _at(
                        "duplicate_key",
                        f"the key {name!r} appears twice in the same mapping (first at line "
                        f"{first.start_mark.line + 1}); YAML would keep only one: say it once",
                        self.loaded.file,
                        key_node.start_mark,
                    )
                )
                continue
            result[name] = self.build(value_node, depth + 1, name in RAW_TEXT_KEYS)
        return result


_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def _flow_depth_suspicious(text: str, limit: int) -> bool:
    """Cheap gate before parsing: could flow brackets nest deeper than ``limit``?

    libyaml's composer recurses in C for every nesting level, so a file of ten million ``[``
    must be refused before it is composed. Counting brackets over-estimates (brackets in
    strings count), so a positive answer is confirmed with the event stream.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = deepest = 0
    # Only the brackets matter: walking them alone, not every character, keeps this cheap.
    for char in _NOT_BRACKETS.sub("", text):
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return True
        elif depth:
            depth -= 1
    return False


def _event_depth_exceeds(text: str, limit: int) -> bool:
    depth = 0
    for event in yaml.parse(text, Loader=SpecLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > limit:
                return True
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return False


def _at(code: str, message: str, display: str, mark: Any) -> Problem:
    """A problem at a libyaml mark (0-based line and column), or at the file when there is none."""
    if mark is None:
        return Problem(code, message, display)
    return Problem(code, message, display, mark.line + 1, mark.column + 1)


def has_bom(path: str) -> bool:
    """Does the file start with a UTF-8 byte order mark?
    (read_text drops it; a rewrite keeps it.)"""
    try:
        with open(path, "rb") as handle:
            return handle.read(3) == codecs.BOM_UTF8
    except OSError:
        return False


def newline_of(text: str) -> str:
    """The line break a file uses: a file with any CRLF is a CRLF file, and a rewrite keeps it."""
    return "\r\n" if "\r\n" in text else "\n"


def read_text(path: str, display: str, limits: Limits) -> tuple[str | None, Problem | None]:
    """The file's text, or a problem: not a regular file, over the size limit, not UTF-8."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return None, Problem("yaml_syntax", f"cannot read the file: {exc.strerror}", display)
    if not stat.S_ISREG(info.st_mode):
        return None, Problem("yaml_refused", "not a regular file", display)
    if info.st_size > limits.max_bytes:
        return None, Problem(
            "yaml_refused",
            f"the file is {info.st_size} bytes, over the limit of {limits.max_bytes} bytes",
            display,
        )
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        return None, Problem("yaml_syntax", f"cannot read the file: {exc.strerror}", display)
    if len(raw) > limits.max_bytes:
        return None, Problem("yaml_refused", f"the file is over {limits.max_bytes} bytes", display)
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return None, Problem(
            "yaml_syntax", f"the file is not UTF-8 text (byte {exc.start} cannot be decoded)",
            display
        )


def load_yaml(
    path: str, display: str | None = None, limits: Limits | None = None, *, keep_nodes: bool = True
) -> LoadedYaml:
    """Load one YAML document from ``path`` safely; problems are collected, never raised.

    ``keep_nodes=False`` keeps the text instead of the node tree (see LoadedYaml).
    """
    display = display or path
    limits = limits or Limits.from_env()
    text, problem = read_text(path, display, limits)
    if text is None:
        assert problem is not None
        return LoadedYaml(display, problems=[problem])
    return load_yaml_text(text, display, limits, keep_nodes=keep_nodes)


def compose(text: str) -> Node | None:
    """The first document's node tree of a text that has loaded before."""
    loader = SpecLoader(text)
    try:
        return loader.get_node() if loader.check_node() else None
    finally:
        loader.dispose()


class _TooManyDocuments(Exception):
    def __init__(self, node: Node | None) -> None:
        super().__init__()
        self.node = node


def _compose_one(text: str, limits: Limits) -> Node | None:
    """The node tree of the text's one document (None when it holds none).

    Raises yaml.MarkedYAMLError for a syntax error and _TooManyDocuments past the limit.
    """
    loader = SpecLoader(text)
    try:
        root = None
        documents = 0
        while loader.check_node():
            node = loader.get_node()
            documents += 1
            if documents > limits.max_documents:
                raise _TooManyDocuments(node)
            root = node
        return root
    finally:
        loader.dispose()


# Recovery reads the file again per attempt: it is bounded, so a hostile file costs little more
# than its first reading. Past these, the errors found so far are reported.
_MAX_REPAIRS = 20
_MAX_ATTEMPTS = 40
_MAX_REPAIR_BYTES = 1024 * 1024


def _recover(text: str, error: yaml.MarkedYAMLError, limits: Limits,
             loaded: LoadedYaml) -> Node | None:
    """The node tree of ``text`` with its syntax errors repaired line by line, each error after
    the first added to ``loaded.problems``; None when an error is not one that can be repaired.

    Only ever used for a file that already has a syntax error: the repaired reading lets the
    rest of the file be checked in the same run (see reconciler.yamlsyntax).
    """
    if len(text) > _MAX_REPAIR_BYTES:
        return None
    attempts = 0
    for _ in range(_MAX_REPAIRS):
        mark = error.problem_mark or error.context_mark
        what = " ".join(part for part in (error.context, error.problem) if part) or "invalid YAML"
        # The candidate that reads in full wins; else the one whose next error comes latest.
        furthest: tuple[int, yaml.MarkedYAMLError, str] | None = None
        for candidate in repair_candidates(text, mark, what):
            attempts += 1
            if attempts > _MAX_ATTEMPTS:
                return None
            try:
                return _compose_one(candidate, limits)
            except yaml.MarkedYAMLError as exc:
                later = exc.problem_mark or exc.context_mark
                line = later.line if later is not None else -1
                if (
                    mark is not None
                    and line > mark.line
                    and (furthest is None or line > furthest[0])
                ):
                    furthest = (line, exc, candidate)
            except (_TooManyDocuments, yaml.YAMLError, ValueError, RecursionError):
                return None
        if furthest is None:
            return None
        _, error, text = furthest
        mark = error.problem_mark or error.context_mark
        what = " ".join(part for part in (error.context, error.problem) if part) or "invalid YAML"
        if "nesting depth" in what:
            return None
        loaded.problems.append(_at("yaml_syntax", syntax_message(text, mark, what), loaded.file,
                                   mark))
    return None


def load_yaml_text(
    text: str, display: str, limits: Limits | None = None, *, keep_nodes: bool = True
) -> LoadedYaml:
    limits = limits or Limits.from_env()
    loaded = LoadedYaml(display)
    if len(text) > limits.max_bytes:
        loaded.problems.append(Problem("yaml_refused", f"over {limits.max_bytes} bytes", display))
        return loaded
    try:
        if _flow_depth_suspicious(text, limits.max_depth) and _event_depth_exceeds(
            text, limits.max_depth
        ):
            loaded.problems.append(
                Problem("yaml_refused", f"nesting is deeper than {limits.max_depth} levels",
                        display)
            )
            return loaded
        loaded.root = _compose_one(text, limits)
    except _TooManyDocuments as exc:
        mark = exc.node.start_mark if exc.node is not None else None
        message = f"more than {limits.max_documents} YAML document in one file"
        loaded.problems.append(_at("yaml_refused", message, display, mark))
        return loaded
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        if "nesting depth" in what:
            problem = _at("yaml_refused", f"nesting is deeper than {limits.max_depth} levels",
                          display, mark)
            loaded.problems.append(problem)
            return loaded
        loaded.problems.append(_at("yaml_syntax", syntax_message(text, mark, what), display, mark))
        loaded.root = _recover(text, exc, limits, loaded)
    except (yaml.YAMLError, ValueError) as exc:
        loaded.problems.append(Problem("yaml_syntax", f"invalid YAML: {exc}", display))
        return loaded
    except RecursionError:
        loaded.problems.append(Problem("yaml_refused", "nesting is too deep", display))
        return loaded
    if loaded.root is None:
        return loaded
    try:
        loaded.data = _Constructor(loaded, limits).build(loaded.root)
    except Refused as exc:
        mark = exc.node.start_mark if exc.node is not None else None
        loaded.problems.append(_at("yaml_refused", str(exc), display, mark))
        loaded.data = None
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        mark = getattr(exc, "problem_mark", None)
        loaded.problems.append(_at("yaml_syntax", f"invalid value: {exc}", display, mark))
        loaded.data = None
    if not keep_nodes and not loaded.problems and loaded.root is not None:
        loaded.text, loaded.root, loaded.nodes_dropped = text, None, True
    return loaded
