"""Reordering the keys of a ruamel.yaml round-trip mapping without moving its comments.

ruamel keeps a comment line written above a key wherever the parser met it: as the tail of the
value before it (which may be the last item of a nested list), in the ``end`` of a collection,
or in the key's own "before" slot. Moving keys alone would leave such a comment above the wrong
key. Here the comment lines are taken off first and put back above the key they were written
above, and the lines after the last key stay at the end of the mapping.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

# a comment line's text (without indentation, "" for a blank line) and column
Line = tuple[str, int]


def reorder(mapping: CommentedMap, wanted: list[Any], *, seq: CommentedSeq | None = None,
            index: int | None = None) -> None:
    """Put ``mapping``'s keys in the order ``wanted``, every comment line staying above the key it
    was written above. A mapping that is item ``index`` of ``seq`` has the lines above its
    first key printed above the item's "- "."""
    keys = list(mapping)
    if keys == wanted:
        return
    above = {key: _take_after(mapping, before) + _take_before(mapping, key)
             for before, key in pairwise(keys)}
    above[keys[0]] = _take_before(mapping, keys[0])
    end = _take_after(mapping, keys[-1])
    for key in wanted:
        mapping.move_to_end(key)
    for key in wanted[1:]:
        _put_before(mapping, key, above[key])
    if seq is not None and index is not None:
        # Above the "- " now, so two columns to the left of the keys (the layout's offset).
        lifted = [(text, max(column - 2, 0)) for text, column in above[wanted[0]]]
        _put_before_item(seq, index, lifted)
    else:
        _put_before(mapping, wanted[0], above[wanted[0]])
    put_after(mapping, wanted[-1], end)


def to_block(parent: Any, key: Any) -> None:
    """Turn ``parent[key]``, a {flow} mapping or [flow] list, to block style. In a list, the
    comment that followed the item moves to the end of its new last line."""
    value = parent.get(key) if isinstance(parent, CommentedMap) else parent[key]
    if not isinstance(value, (CommentedMap, CommentedSeq)) or not value.fa.flow_style():
        return
    value.fa.set_block_style()
    if not isinstance(parent, CommentedSeq) or not len(value):
        # A mapping key keeps its end-of-line comment on the "key:" line, where it reads well,
        # but no longer at the column where the flow value used to end.
        entry = parent.ca.items.get(key) if isinstance(parent, CommentedMap) else None
        if entry and entry[2] is not None:
            _close_up(entry[2])
        return
    entry = parent.ca.items.get(key)
    token = entry[0] if entry else None
    if token is None:
        return
    entry[0] = None
    _close_up(token)
    holder, name, slot = _tail_slot(parent, key)
    last = holder.ca.items.setdefault(name, [None, None, None, None])
    if last[slot] is None:
        last[slot] = token
    else:
        last[slot].value += token.value


def _close_up(token: CommentToken) -> None:
    """Print an end-of-line comment two spaces after the value, not at the column where it was
    written: the line it ends is shorter now than the flow collection it followed."""
    if token.value.startswith("#"):
        token.value = " " + token.value  # ruamel puts one space before it, this is the second
    # ruamel annotates start_mark as a StreamMark, yet its own comment tokens carry a CommentMark
    # (all the emitter reads is the column), as comments.py builds them.
    token.start_mark = CommentMark(0)  # type: ignore[assignment]


def _tail_slot(container: Any, key: Any) -> tuple[Any, Any, int]:
    """Where ruamel keeps the comment printed after ``container[key]``: on the innermost last
    value of a block collection, else on the key itself."""
    value = container[key]
    if isinstance(value, (CommentedMap, CommentedSeq)) and len(value) and not value.fa.flow_style():
        last = next(reversed(value)) if isinstance(value, CommentedMap) else len(value) - 1
        return _tail_slot(value, last)
    return container, key, 2 if isinstance(container, CommentedMap) else 0


def _lines(text: str, column: int | None = None) -> list[Line]:
    """Lines of a comment token's text; ``column`` is where its first line starts when the text
    does not carry that indentation itself (a token's own value starts at its ``#``)."""
    found = []
    for number, line in enumerate(text.split("\n")):
        stripped = line.strip()
        indent = column if number == 0 and column is not None else len(line) - len(line.lstrip())
        found.append((stripped, indent if stripped else 0))
    return found


def _take_after(container: Any, key: Any) -> list[Line]:
    """The comment lines after ``container[key]``'s value (not its end-of-line comment), removed."""
    lines: list[Line] = []
    value = container[key]
    if isinstance(value, (CommentedMap, CommentedSeq)) and len(value):
        last = next(reversed(value)) if isinstance(value, CommentedMap) else len(value) - 1
        lines += _take_after(value, last)
    if isinstance(value, (CommentedMap, CommentedSeq)) and getattr(value.ca, "end", None):
        for token in value.ca.end:
            lines += _lines(token.value.removesuffix("\n"), token.column)
        value.ca.end = None
    slot = 2 if isinstance(container, CommentedMap) else 0
    entry = container.ca.items.get(key)
    token = entry[slot] if entry else None
    if token is not None and "\n" in token.value:
        own, _, rest = token.value.partition("\n")
        if own:
            token.value = own + "\n"
        else:
            entry[slot] = None
        if rest:
            lines += _lines(rest.removesuffix("\n"))
    return lines


def _take_before(mapping: CommentedMap, key: Any) -> list[Line]:
    """The comment lines ruamel keeps in ``key``'s own "before" slot, removed."""
    entry = mapping.ca.items.get(key)
    if not entry or not entry[1]:
        return []
    lines: list[Line] = []
    for token in entry[1]:
        lines += _lines(token.value.removesuffix("\n"), token.column)
    entry[1] = None
    return lines


def _tokens(lines: list[Line]) -> list[CommentToken]:
    return [CommentToken(text + "\n", CommentMark(column), None) for text, column in lines]


def _put_before(mapping: CommentedMap, key: Any, lines: list[Line]) -> None:
    if lines:
        entry = mapping.ca.items.setdefault(key, [None, None, None, None])
        entry[1] = (entry[1] or []) + _tokens(lines)


def _put_before_item(seq: CommentedSeq, index: int, lines: list[Line]) -> None:
    if lines:
        entry = seq.ca.items.setdefault(index, [None, None, None, None])
        entry[1] = (entry[1] or []) + _tokens(lines)


def put_after(container: Any, key: Any, lines: list[Line]) -> None:
    """Comment lines printed after ``container[key]``'s value."""
    if not lines:
        return
    text = "".join(" " * column + line + "\n" for line, column in lines)
    holder, name, slot = _tail_slot(container, key)
    entry = holder.ca.items.setdefault(name, [None, None, None, None])
    token = entry[slot]
    if token is None:
        entry[slot] = CommentToken("\n" + text, CommentMark(0), None)
    else:
        token.value = (token.value if token.value.endswith("\n") else token.value + "\n") + text
