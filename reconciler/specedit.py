"""Edits of a YAML spec at located positions: every byte not edited stays as it was.

A round-trip YAML library re-emits the whole document, and with it re-indents, re-spaces and
re-quotes lines nobody asked to change (``- extension: 0466`` may even come back as 466). Here the
document's node tree only tells *where* each value is (libyaml marks: character offsets); an edit
replaces exactly that span, or deletes or inserts whole lines next to it, in the style of the
surrounding entries. Comments, blank lines, key order, quoting and line endings of everything
else are left untouched by construction.

Layouts handled: block or flow sequences and mappings, as people write specs. Anything this
module cannot edit safely raises :class:`SpecEditError`; the caller then leaves the file alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import ReconcilerError
from reconciler.render.safe import json_chunk, needs_escapes
from reconciler.yamlload import STR, compose, newline_of, plain_tag

# Entry keys in the order `export` and `fmt` write them: a key added to an entry goes after
# the last key that comes before it in this order.
ENTRY_KEYS = ("extension", "number", "name", "product", "addons", "dids", "blocked")

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9 _.()/+-]*")


class SpecEditError(ReconcilerError):
    """The spec's layout cannot be edited without touching other lines."""


def plain_or_quoted(value: str, like: str | None = None) -> str:
    """A YAML scalar for ``value``: in the quoting style ``like`` ('"', "'", or plain), if it can
    be.

    A value with characters that act on a terminal (a bidi override, a line separator, ``##[``)
    is always double-quoted with those written as escapes (reconciler.render.safe).
    """
    if needs_escapes(value):
        return json_chunk(json.dumps(value, ensure_ascii=False))
    if like == "'":
        return "'" + value.replace("'", "''") + "'"
    plain = like in (None, "") and _PLAIN.fullmatch(value) and not value.endswith(" ")
    if plain and plain_tag(value) == STR and " #" not in value and ": " not in value:
        return value
    return json.dumps(value, ensure_ascii=False)


def did_scalar(did: str, like: str | None) -> str:
    """A DID, quoted like the DIDs next to it (digits read as text either way), else
    in double quotes."""
    if like == "":
        return did
    return "'" + did + "'" if like == "'" else '"' + did + '"'


@dataclass
class _Edit:
    start: int
    end: int
    text: str
    seq: int


@dataclass
class NewEntry:
    """An entry to append: (key, rendered value) pairs in order."""

    fields: list[tuple[str, str]]


@dataclass
class _Section:
    removed: set[int] = field(default_factory=set)
    appended: list[NewEntry] = field(default_factory=list)


class SpecEditor:
    """Collects edits of one spec's text; :meth:`result` applies them all at once."""

    def __init__(self, text: str) -> None:
        self.newline = newline_of(text)
        # Lines are inserted after line breaks: a last line without one is given one while
        # editing, and the result ends without one again.
        self._unterminated = bool(text) and not text.endswith("\n")
        if self._unterminated:
            text += self.newline
        self.text = text
        root = compose(text)
        if not isinstance(root, MappingNode) or root.flow_style:
            raise SpecEditError("the spec is not a block mapping at the top level")
        self.root = root
        self._edits: list[_Edit] = []
        self._sections: dict[str, _Section] = {}

    # ---- locating ------------------------------------------------------------------------------

    @staticmethod
    def _pair(mapping: Node, key: str) -> tuple[ScalarNode, Node] | None:
        if not isinstance(mapping, MappingNode):
            return None
        for key_node, value_node in mapping.value:
            if isinstance(key_node, ScalarNode) and key_node.value == key:
                return key_node, value_node
        return None

    def node(self, path: tuple[Any, ...]) -> Node:
        node: Node = self.root
        for step in path:
            if isinstance(step, int):
                if not isinstance(node, SequenceNode) or not 0 <= step < len(node.value):
                    raise SpecEditError(f"no entry at {path}")
                node = node.value[step]
            else:
                pair = self._pair(node, step)
                if pair is None:
                    raise SpecEditError(f"no key at {path}")
                node = pair[1]
        return node

    def _line_start(self, index: int) -> int:
        return self.text.rfind("\n", 0, index) + 1

    def _line_end(self, index: int) -> int:
        """The index just after the newline of the line holding ``index``."""
        found = self.text.find("\n", index)
        return len(self.text) if found < 0 else found + 1

    def _last_char(self, node: Node) -> int:
        """The index just after the node's last character (its last leaf, for block collections)."""
        if isinstance(node, ScalarNode) or getattr(node, "flow_style", False):
            end = node.end_mark.index
            while end > node.start_mark.index and self.text[end - 1] in "\r\n":
                end -= 1  # block scalars end after their last line break
            return end
        if not node.value:
            return node.start_mark.index
        if isinstance(node, SequenceNode):
            return self._last_char(node.value[-1])
        key_node, value_node = node.value[-1]
        if isinstance(value_node, ScalarNode) and value_node.value == "" and not value_node.style:
            return self._colon(key_node) + 1  # an empty value: the key's line ends the mapping
        return self._last_char(value_node)

    def _colon(self, key_node: ScalarNode) -> int:
        colon = self.text.find(":", key_node.end_mark.index)
        if colon < 0:
            raise SpecEditError("a key without its colon")
        return colon

    def _indent(self, line_start: int) -> int:
        index = line_start
        while index < len(self.text) and self.text[index] == " ":
            index += 1
        return index - line_start

    def _is_comment_line(self, start: int) -> bool:
        line = self.text[start : self._line_end(start)].strip()
        return line.startswith("#")

    def _item_range(self, item: Node) -> tuple[int, int, int]:
        """(start, end, dash column) of a block sequence item's lines, with its own comments.

        Comment lines right above the item at its dash's column belong to it; so do comment
        lines after its last value that are indented deeper than its dash.
        """
        start = self._line_start(item.start_mark.index)
        prefix = self.text[start : item.start_mark.index]
        if prefix.strip() != "-" or not prefix.rstrip().endswith("-"):
            raise SpecEditError("a sequence item that does not start its own line")
        dash = prefix.index("-")
        while start > 0:
            above = self._line_start(start - 1)
            if self._is_comment_line(above) and self._indent(above) == dash:
                start = above
            else:
                break
        end = self._line_end(max(self._last_char(item) - 1, item.start_mark.index))
        while end < len(self.text) and self._is_comment_line(end) and self._indent(end) > dash:
            end = self._line_end(end)
        return start, end, dash

    # ---- edits ---------------------------------------------------------------------------------

    def _add(self, start: int, end: int, text: str) -> None:
        self._edits.append(_Edit(start, end, text, len(self._edits)))

    def _line(self, text: str) -> str:
        """``text`` as a new line, to be inserted at a line start."""
        return text + self.newline

    def set_scalar(self, path: tuple[Any, ...], value: str, *, raw: str | None = None) -> None:
        """Replace the scalar at ``path`` with ``value`` in its quoting style (or with ``raw``)."""
        node = self.node(path)
        if not isinstance(node, ScalarNode):
            raise SpecEditError(f"{path} is not a single value")
        start, end = node.start_mark.index, self._last_char(node)
        style = node.style if node.style in ('"', "'") else ""
        self._add(start, end, raw if raw is not None else plain_or_quoted(value, style))

    def set_list(
        self, entry: tuple[Any, ...], key: str, keep: list[int], add: list[str], kind: str
    ) -> None:
        """Keep the items at ``keep`` of the list ``entry.key`` and append ``add``;
        the key may be absent."""
        mapping = self.node(entry)
        pair = self._pair(mapping, key)
        if pair is None:
            if not add:
                return
            self._insert_key(mapping, key,
                             "[" + ", ".join(self._render(kind, v, None) for v in add) + "]")
            return
        key_node, node = pair
        if isinstance(node, ScalarNode):
            if node.value not in ("", "~", "null") or node.style:
                raise SpecEditError(f"{entry}.{key} is not a list")
            rendered = "[" + ", ".join(self._render(kind, v, None) for v in add) + "]"
            colon = self._colon(key_node)
            self._add(colon + 1, max(colon + 1, self._last_char(node)), " " + rendered)
            return
        if not isinstance(node, SequenceNode):
            raise SpecEditError(f"{entry}.{key} is not a list")
        items = node.value
        like = items[0].style if items and isinstance(items[0], ScalarNode) else None
        like = like if like in ('"', "'") else ("" if items else None)
        new = [self._render(kind, v, like) for v in add]
        if node.flow_style:
            removed = [i for i in range(len(items)) if i not in keep]
            if not removed and items and new:
                self._add(self._last_char(items[-1]), self._last_char(items[-1]),
                          ", " + ", ".join(new))
            elif removed or new:
                kept = [self.text[items[i].start_mark.index : self._last_char(items[i])]
                        for i in keep]
                self._add(node.start_mark.index, node.end_mark.index,
                          "[" + ", ".join(kept + new) + "]")
            return
        for index, item in enumerate(items):
            if index not in keep:
                start, end, _ = self._item_range(item)
                self._add(start, end, "")
        _, last_end, dash = self._item_range(items[-1])
        if new:
            lines = "".join(self._line(" " * dash + "- " + text) for text in new)
            self._add(last_end, last_end, lines)
        elif not keep:
            colon = self._colon(key_node)
            self._add(colon + 1, colon + 1, " []")

    def _render(self, kind: str, value: str, like: str | None) -> str:
        return did_scalar(value, like) if kind == "did" else plain_or_quoted(value, like)

    def _insert_key(self, mapping: Node, key: str, rendered: str) -> None:
        assert isinstance(mapping, MappingNode)
        rank = ENTRY_KEYS.index(key)
        before = None
        for key_node, value_node in mapping.value:
            if key_node.value in ENTRY_KEYS and ENTRY_KEYS.index(key_node.value) < rank:
                before = (key_node, value_node)
        if before is None:
            raise SpecEditError(f"no place for {key} in the entry")
        key_node, value_node = before
        if isinstance(value_node, ScalarNode) and value_node.value == "" and not value_node.style:
            after = self._colon(key_node) + 1
        else:
            after = self._last_char(value_node)
        if mapping.flow_style:
            self._add(after, after, f", {key}: {rendered}")
            return
        column = mapping.value[0][0].start_mark.column
        at = self._line_end(max(after - 1, key_node.start_mark.index))
        self._add(at, at, self._line(" " * column + f"{key}: {rendered}"))

    def remove_entry(self, section: str, index: int) -> None:
        self._sections.setdefault(section, _Section()).removed.add(index)

    def append_entry(self, section: str, entry: NewEntry) -> None:
        self._sections.setdefault(section, _Section()).appended.append(entry)

    # ---- sections ------------------------------------------------------------------------------

    def _entry_style(self) -> tuple[int, int, bool] | None:
        """(dash column, key column, flow entries) of the first block-sequence entry of the file."""
        for name in ("extensions", "auto_attendants"):
            pair = self._pair(self.root, name)
            if pair is None or not isinstance(pair[1], SequenceNode) or pair[1].flow_style:
                continue
            if pair[1].value:
                item = pair[1].value[0]
                _, _, dash = self._item_range(item)
                return dash, item.start_mark.column, bool(getattr(item, "flow_style", False))
        return None

    def _block_entry(self, entry: NewEntry, dash: int, column: int, flow: bool) -> str:
        if flow:
            body = "{" + ", ".join(f"{k}: {v}" for k, v in entry.fields) + "}"
            return self._line(" " * dash + "- " + body)
        lines = []
        for number, (key, value) in enumerate(entry.fields):
            lead = " " * dash + "-" + " " * (column - dash - 1) if number == 0 else " " * column
            lines.append(self._line(lead + f"{key}: {value}"))
        return "".join(lines)

    def _finish_section(self, name: str, section: _Section) -> None:
        pair = self._pair(self.root, name)
        style = self._entry_style()
        if pair is None:
            if not section.appended:
                return
            dash, column, flow = style or (2, 4, False)
            at = len(self.text)
            text = self._line(f"{name}:")
            text += "".join(self._block_entry(e, dash, column, flow) for e in section.appended)
            self._add(at, at, text)
            return
        key_node, node = pair
        if isinstance(node, SequenceNode) and not node.flow_style and node.value:
            items = node.value
            for index in sorted(section.removed):
                start, end, _ = self._item_range(items[index])
                self._add(start, end, "")
            _, last_end, dash = self._item_range(items[-1])
            first = items[0]
            column = first.start_mark.column
            flow = bool(getattr(first, "flow_style", False))
            if section.appended:
                text = "".join(
                    self._block_entry(e, dash, column, flow) for e in section.appended
                )
                self._add(last_end, last_end, text)
            elif len(section.removed) == len(items):
                colon = self._colon(key_node)
                self._add(colon + 1, colon + 1, " []")
            return
        if isinstance(node, SequenceNode) and node.value:  # a flow sequence of entries
            kept = [
                self.text[item.start_mark.index : self._last_char(item)]
                for index, item in enumerate(node.value)
                if index not in section.removed
            ]
            new = ["{" + ", ".join(f"{k}: {v}" for k, v in e.fields) + "}"
                   for e in section.appended]
            self._add(node.start_mark.index, node.end_mark.index, "[" + ", ".join(kept + new) + "]")
            return
        if isinstance(node, ScalarNode) and (node.value not in ("", "~", "null") or node.style):
            raise SpecEditError(f"{name} is not a list")
        if not section.appended:
            return
        # Empty ([] or nothing): the entries become a block list under the key.
        colon = self._colon(key_node)
        self._add(colon + 1, max(colon + 1, self._last_char(node)), "")
        if style is not None:
            dash, column, flow = style
        else:
            dash = key_node.start_mark.column + 2
            column, flow = dash + 2, False
        at = self._line_end(colon)
        text = "".join(self._block_entry(e, dash, column, flow) for e in section.appended)
        self._add(at, at, text)

    def result(self) -> str:
        """The edited text. Edits at one position keep the order in which they were made."""
        for name, section in self._sections.items():
            self._finish_section(name, section)
        text = self.text
        previous_start = len(text) + 1
        for edit in sorted(self._edits, key=lambda e: (e.start, e.end, e.seq), reverse=True):
            if edit.end > previous_start:
                raise SpecEditError("two edits overlap")
            text = text[: edit.start] + edit.text + text[edit.end :]
            previous_start = edit.start
        if self._unterminated and text.endswith(self.newline):
            text = text[: -len(self.newline)]
        return text
