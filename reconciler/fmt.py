"""`reconciler fmt`: customer specs in one canonical layout, comments and entry order kept.

The layout: keys in the order of the spec format (version, customer, prune, extensions,
auto_attendants; extension or number, name, product, addons, dids, blocked), mappings in block
style indented by two spaces, extensions as quoted text and DIDs as quoted digits.

ruamel.yaml's round-trip mode does the editing, so comments, entry order and the user's quotes
survive. ruamel reads YAML 1.2 and the reconciler reads YAML 1.1 (``name: No`` is false to it),
so the values that matter are taken from the reconciler's own loader, and the result is loaded
again and compared: a file whose meaning would change is left as it is, with a message.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from typing import Any

from reconciler.desired import valid_did
from reconciler.model import Path, Problem
from reconciler.specfiles import escape_message, is_symlink_escape
from reconciler.yamlload import Limits, LoadedYaml, has_bom, load_yaml_text, newline_of, read_text

TOP_ORDER = ("version", "customer", "prune", "extensions", "auto_attendants")
CUSTOMER_ORDER = ("id", "name")
ENTRY_ORDER = {
    "extensions": ("extension", "name", "product", "addons", "dids", "blocked"),
    "auto_attendants": ("number", "name", "product", "addons", "dids", "blocked"),
}
# Problems that mean the file cannot be read as plain data: fmt leaves such a file alone.
_UNREADABLE = ("yaml_syntax", "yaml_refused", "duplicate_key")


@dataclass
class Formatted:
    """The outcome for one file: the canonical text, or why the file was left alone."""

    file: str
    original: str | None
    text: str | None = None
    problems: tuple[Problem, ...] = ()
    bom: bool = False  # the file starts with a byte order mark, which a rewrite keeps

    @property
    def changed(self) -> bool:
        return self.text is not None and self.text != self.original


def format_file(path: str, limits: Limits | None = None) -> Formatted:
    """The canonical layout of the spec file ``path``; a link leaving its folder is not read."""
    if is_symlink_escape(path):
        refused = Problem("yaml_refused", escape_message(path) + ": not read, not formatted", path)
        return Formatted(path, None, problems=(refused,))
    limits = limits or Limits.from_env()
    original, problem = read_text(path, path, limits)
    if original is None:
        assert problem is not None
        return Formatted(path, None, problems=(problem,))
    result = format_text(original, path, limits)
    result.bom = has_bom(path)
    return result


def format_text(original: str, file: str, limits: Limits | None = None) -> Formatted:
    """The canonical layout of one spec's text (``text`` equals ``original`` when it has it)."""
    loaded = load_yaml_text(original, file, limits)
    unreadable = tuple(p for p in loaded.problems if p.code in _UNREADABLE)
    if unreadable:
        return Formatted(file, original, problems=unreadable)
    if loaded.root is None:
        return Formatted(file, original, text=original)  # empty, or comments only
    if not isinstance(loaded.data, dict):
        problem = loaded.problem("schema", "not a spec: the file is not a mapping")
        return Formatted(file, original, problems=(problem,))
    newline = newline_of(original)
    try:
        # ruamel writes "\n" (and keeps a "\r" only in comments): the file's own line break is
        # put back afterwards, on every line.
        text = _reformat(original.replace("\r\n", "\n"), loaded)
        if newline != "\n":
            text = text.replace("\n", newline)
    except Exception as exc:  # noqa: BLE001 - ruamel's errors have no common root but YAMLError
        message = f"cannot be formatted: {type(exc).__name__}: {exc}"
        return Formatted(file, original, problems=(Problem("yaml_syntax", message, file),))
    again = load_yaml_text(text, file, limits)
    if again.problems or again.data != _canonical_data(loaded):
        message = (
            "formatting would change what this file means (a YAML 1.1 value such as yes or 0755 "
            "written without quotes?); it is left as it is: quote such values, then run fmt again"
        )
        return Formatted(file, original, problems=(Problem("yaml_refused", message, file),))
    return Formatted(file, original, text=text)


def _yaml() -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.emitter import Emitter

    from reconciler.render.safe import SafeTextEmitter

    yaml = YAML(typ="rt")
    # A name holding a bidi override or a line separator is written with escapes, not raw.
    yaml.Emitter = type("SafeTextRoundTripEmitter", (SafeTextEmitter, Emitter), {})
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never fold a long name onto a second line
    yaml.allow_duplicate_keys = False
    return yaml


def _reformat(original: str, loaded: LoadedYaml) -> str:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    yaml = _yaml()
    document = yaml.load(original)
    data = loaded.data
    from reconciler.yamlcomments import to_block

    # Block style first: where a comment sits depends on it, and the key order moves comments.
    to_block(document, "customer")
    for section in ENTRY_ORDER:
        if isinstance(document.get(section), CommentedSeq):
            to_block(document, section)
            for index in range(len(document[section])):
                to_block(document[section], index)
    _order(document, TOP_ORDER)
    if isinstance(document.get("customer"), CommentedMap):
        _order(document["customer"], CUSTOMER_ORDER)
        if "name" in _quoted_texts(data.get("customer")):
            document["customer"]["name"] = DoubleQuotedScalarString(
                loaded.written(("customer", "name")) or ""
            )
    for section, order in ENTRY_ORDER.items():
        entries = document.get(section)
        written = data.get(section)
        if not isinstance(entries, CommentedSeq) or not isinstance(written, list):
            continue
        for index, (entry, values) in enumerate(zip(entries, written, strict=False)):
            if not isinstance(entry, CommentedMap) or not isinstance(values, dict):
                continue
            _order(entry, order, seq=entries, index=index)
            for key, written in _quoted_texts(values).items():
                if isinstance(key, str):
                    entry[key] = DoubleQuotedScalarString(loaded.written((section, index, key))
                                                          or written)
            addons = entry.get("addons")
            for position in _quoted_texts(values.get("addons")):
                if (
                    isinstance(addons, CommentedSeq)
                    and isinstance(position, int)
                    and position < len(addons)
                ):
                    addons[position] = DoubleQuotedScalarString(
                        loaded.written((section, index, "addons", position))
                        or str(addons[position]))
            if isinstance(values.get("extension"), str):
                # The reconciler's loader keeps an extension as written: 0466 stays "0466".
                entry["extension"] = DoubleQuotedScalarString(values["extension"])
            dids, written_dids = entry.get("dids"), values.get("dids")
            if isinstance(dids, CommentedSeq) and isinstance(written_dids, list):
                for index, did in enumerate(written_dids):
                    if isinstance(did, str) and index < len(dids):
                        dids[index] = DoubleQuotedScalarString(_did(did))
    out = io.StringIO()
    if original.lstrip().startswith("---"):
        yaml.explicit_start = True
    yaml.dump(document, out)
    return out.getvalue()


def _did(written: str) -> str:
    return valid_did(written) or written


def _order(mapping: Any, order: tuple[str, ...], **where: Any) -> None:
    """Known keys first, in ``order``; other keys (errors validate reports) after, as they were."""
    from reconciler.yamlcomments import reorder

    wanted = [key for key in order if key in mapping] + [key for key in mapping if key not in order]
    reorder(mapping, wanted, **where)


# Values the spec wants as text. YAML reads some plain words and numbers as something else
# (``name: yes`` is the boolean true): fmt quotes them as written, which is what they meant.
_TEXT_KEYS = ("name", "product")


def _quoted_texts(values: Any) -> dict[str | int, Any]:
    """The keys (or, of a list of add-ons, the positions) whose value was written as text but is
    read by YAML as a boolean or a number: they are written in quotes."""
    if isinstance(values, list):
        return {i: v for i, v in enumerate(values) if _reads_as_other(v)}
    if not isinstance(values, dict):
        return {}
    return {key: values[key] for key in _TEXT_KEYS
            if key in values and _reads_as_other(values[key])}


def _reads_as_other(value: Any) -> bool:
    return isinstance(value, (bool, int, float))


def _canonical_data(loaded: LoadedYaml) -> Any:
    """What the reformatted file must load as: the same data, with DIDs normalised and text
    values quoted as written."""
    expected = copy.deepcopy(loaded.data)

    def as_written(path: Path, value: Any) -> Any:
        written = loaded.written(path)
        return written if written is not None else value

    customer = expected.get("customer")
    if isinstance(customer, dict) and "name" in _quoted_texts(customer):
        customer["name"] = as_written(("customer", "name"), customer["name"])
    for section in ENTRY_ORDER:
        entries = expected.get(section)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            for key in _quoted_texts(entry):
                entry[key] = as_written((section, index, key), entry[key])
            if isinstance(entry.get("addons"), list):
                for position in _quoted_texts(entry["addons"]):
                    entry["addons"][position] = as_written(
                        (section, index, "addons", position), entry["addons"][position])
            if isinstance(entry.get("dids"), list):
                entry["dids"] = [_did(d) if isinstance(d, str) else d for d in entry["dids"]]
    return expected
