"""YAML syntax errors in the words of a person editing YAML, and the repairs that let the rest
of a file be checked anyway.

libyaml stops at the first syntax error. The usual ones in a hand-edited spec are local to one
line (a tab in the indentation, an unquoted ``name: Sales: 2nd floor``, a value starting with
``@``): :func:`repair_line` rewrites that one line the way the message tells the user to, so the
loader can read the file again and report its other problems in the same run. The file keeps
its ``yaml_syntax`` error: a repaired reading is only ever checked, never planned or applied.
A repair never adds or removes a line, so every other problem keeps its line number.

This module knows nothing of the loader (it works on text and libyaml's marks), so the loader
and the messages module both depend on it and not on each other.
"""

from __future__ import annotations

import json
import re
from typing import Any

# What libyaml says, and what it usually means in a hand-edited file.
_SYNTAX_HINTS = (
    (
        "mapping values are not allowed",
        (
            "a ':' where YAML does not expect one: a value that "
            "holds ': ' must be quoted, or a line is indented too far"
        ),
    ),
    (
        "could not find expected ':'",
        (
            "a line is not 'key: value' (a missing ':'?) or is indented "
            "differently from the lines around it"
        ),
    ),
    (
        "did not find expected '-' indicator",
        (
            "a list entry does not start with '- ', or a line of "
            "the entry above is indented differently"
        ),
    ),
    (
        "did not find expected key",
        "a line is indented differently from the other keys of its mapping",
    ),
    ("did not find expected ',' or ']'", "a [list] is not closed with ']'"),
    ("did not find expected ',' or '}'", "a {mapping} is not closed with '}'"),
    ("found unexpected end of stream", "a quoted text is not closed: its closing quote is missing"),
    (
        "found undefined alias",
        "a value starting with '*' names an anchor (&name) that does not "
        "exist: if it is text, quote it",
    ),
)

# "key: value" at the start of a line, after the indentation and an optional "- ".
_KEY_VALUE = re.compile(r"^(?P<head>[ \t]*(?:-[ \t]+)*[A-Za-z_][\w-]*:[ \t]+)(?P<value>.*)$")
_COMMENT = re.compile(r"[ \t]+#.*$")


def _line_at(text: str, mark: Any) -> str:
    if mark is None:
        return ""
    lines = text.splitlines()
    return lines[mark.line] if 0 <= mark.line < len(lines) else ""


def _tab_indented(line: str, what: str) -> bool:
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    return "\t" in indent or (("\t" in what or "cannot start any token" in what) and "\t" in line)


def syntax_message(text: str, mark: Any, what: str) -> str:
    """A YAML syntax error in words for a person editing the file.

    ``what`` is libyaml's own wording: it is said only when no better explanation is known.
    """
    line = _line_at(text, mark)
    if _tab_indented(line, what):
        return ("a tab character is used to indent this line; YAML indents with spaces only "
                "(replace the tab with spaces)")
    quoted = _quote_value(line.removesuffix("\r"))
    advice = f": {_COMMENT.sub('', quoted).strip()}" if quoted is not None else ""
    if "cannot start any token" in what and mark is not None and 0 <= mark.column < len(line):
        char = line[mark.column]
        return (f"invalid YAML: a value cannot start with {char!r} unless it is quoted: "
                f"write it in double quotes{advice}")
    if "mapping values are not allowed" in what and quoted is not None and ": " in _value_of(line):
        return ("invalid YAML: a value that holds ': ' must be quoted (YAML reads the ':' as the "
                f"start of another key){advice}")
    for clue, meaning in _SYNTAX_HINTS:
        if clue in what:
            return f"invalid YAML: {meaning}"
    return f"invalid YAML: {what}"


def repair_candidates(text: str, mark: Any, what: str) -> list[str]:
    """Texts in which the line of a syntax error is rewritten as its message advises, most likely
    first; empty when the error is not one of the local kinds this module knows how to repair."""
    if mark is None:
        return []
    lines = text.split("\n")
    number = mark.line
    if not 0 <= number < len(lines):
        return []
    line = lines[number]
    ending = "\r" if line.endswith("\r") else ""
    body = line.removesuffix("\r")
    if _tab_indented(body, what):
        fixed = [_reindent(body, width) + ending for width in _indent_guesses(lines, number)]
    elif (
        "mapping values are not allowed" in what
        or "cannot start any token" in what
        or "undefined alias" in what
    ):
        quoted = _quote_value(body)
        fixed = [quoted + ending] if quoted is not None else []
    else:
        fixed = []
    return ["\n".join(lines[:number] + [candidate] + lines[number + 1 :]) for candidate in fixed
            if candidate != line]


def _reindent(line: str, width: int) -> str:
    return " " * width + line.lstrip(" \t")


def _indent_of(line: str) -> int | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or "\t" in line[: len(line) - len(line.lstrip())]:
        return None
    return len(line) - len(line.lstrip(" "))


def _indent_guesses(lines: list[str], number: int) -> list[int]:
    """Indentations the tab most likely stands for: the next line's, the previous line's, the
    column of the keys of a list entry just above ("- key:"), then the usual widths."""
    guesses: list[int] = []
    following = next((i for i in (_indent_of(x) for x in lines[number + 1 :]) if i is not None),
                     None)
    before = next((x for x in reversed(lines[:number]) if _indent_of(x) is not None), None)
    if following is not None:
        guesses.append(following)
    if before is not None:
        indent = _indent_of(before) or 0
        guesses += [indent, indent + 2]
    guesses += [2, 4, 0, 6, 8]
    return list(dict.fromkeys(guesses))


def _value_of(line: str) -> str:
    match = _KEY_VALUE.match(line)
    return _COMMENT.sub("", match.group("value")) if match else ""


def _quote_value(line: str) -> str | None:
    """``name: Sales: 2nd floor  # note`` -> ``name: "Sales: 2nd floor"  # note``."""
    match = _KEY_VALUE.match(line)
    if match is None:
        return None
    value = match.group("value")
    comment = _COMMENT.search(value)
    tail = comment.group(0) if comment else ""
    value = value[: len(value) - len(tail)].strip()
    if not value or value[0] in "\"'[{|>":
        return None
    return match.group("head") + json.dumps(value, ensure_ascii=False) + tail
