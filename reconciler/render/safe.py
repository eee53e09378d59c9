"""Text from a spec, a file name or billing, made safe for terminals and CI logs.

Anyone who edits a spec, names a file or an account in billing chooses the characters that the
reconciler prints. Printed raw, some of them act instead of being read:

- control characters (C0, DEL, C1): ``\\n`` or ``\\r`` start a line the reconciler did not write,
  ESC starts a terminal escape sequence (colours, cursor moves, window titles, hyperlinks);
- Unicode format characters such as the bidi overrides and isolates (U+202A-U+202E,
  U+2066-U+2069, U+200E/U+200F, U+061C) reorder what a person sees, and the line and paragraph
  separators (U+2028, U+2029, and NEL U+0085) break lines in some viewers;
- GitHub Actions reads a line that starts with ``::`` (after blanks) as a workflow command
  (``::add-mask::``, ``::warning::``, ``::stop-commands::``), and its older form ``##[command]``
  anywhere in a line.

:func:`text` writes such characters as visible escapes in the style of Python's ``repr``
(``\\x1b``, ``\\u202e``, ``\\n``), writes ``##[`` as ``#\\#[`` and puts a backslash before a
leading ``::``. Zero-width joiners (U+200C, U+200D) are kept: scripts and emoji need them and
they cannot reorder or break anything. The result is one line that reads as the input did.

The common case costs one :meth:`str.isprintable` call and two substring tests, so whole plans
of 100,000 accounts can go through it.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any, TextIO

import yaml

__all__ = [
    "UNSAFE_CHARACTERS", "SafeTextDumper", "SafeTextEmitter", "json_chunk", "needs_escapes", "text",
    "write_json",
]

# Every character of the Unicode categories Cc (controls: C0, DEL, C1), Cf (format: bidi
# overrides, isolates and marks, zero-width space, tags...), Zl and Zp (U+2028, U+2029) and Cs
# (lone surrogates: undecodable bytes of a file name), but for the zero-width non-joiner and
# joiner (U+200C, U+200D), which scripts and emoji need and which neither reorder nor break
# anything. Spelled out rather than built from unicodedata at start-up, which would cost more
# than a whole plan; tests/test_output_escaping.py checks it against this Python's tables.
UNSAFE_CHARACTERS = (
    "\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff"
    "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_UNSAFE = re.compile(f"[{UNSAFE_CHARACTERS}]")
_SPECIAL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# The runner's legacy command form, anywhere in a line (actions/runner ActionCommand.TryParse).
_LEGACY_COMMAND = "##["


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    special = _SPECIAL.get(ch)
    if special:
        return special
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def text(value: object) -> str:
    """``value`` as one line safe to print: no control, bidi or separator characters, and no
    GitHub workflow command. Idempotent: safe text comes back unchanged."""
    raw = value if type(value) is str else str(value)
    if not raw.isprintable():  # isprintable() is False for every unsafe character (and a few more)
        raw = _UNSAFE.sub(_visible, raw)
    if _LEGACY_COMMAND in raw:
        raw = raw.replace(_LEGACY_COMMAND, "#\\#[")
    if "::" in raw and raw.lstrip().startswith("::"):
        blanks = len(raw) - len(raw.lstrip())
        raw = raw[:blanks] + "\\" + raw[blanks:]
    return raw


# ------------------------------------------------------------------------------- JSON


# json escapes C0 controls in strings itself, and writes its own line breaks between them.
_JSON_UNSAFE = re.compile("[" + UNSAFE_CHARACTERS.removeprefix("\x00-\x1f") + "]")


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON writes a character beyond the BMP as a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_chunk(chunk: str) -> str:
    """JSON text from :mod:`json` (``ensure_ascii=False``) with the characters :func:`text`
    escapes written as ``\\uXXXX`` escapes instead, and ``##[`` as ``#\\u0023[``: the same JSON
    to a program, harmless to a terminal or CI log. These can only occur inside JSON strings
    (json itself escapes C0 controls there), and json writes a string in one piece, so a
    concatenation of json's pieces can be passed as well.
    """
    if _LEGACY_COMMAND in chunk:
        chunk = chunk.replace(_LEGACY_COMMAND, "#\\u0023[")
    # A scan by isprintable() is several times faster than one by the regular expression.
    if chunk.replace("\n", "").isprintable():
        return chunk
    return _JSON_UNSAFE.sub(_json_escape, chunk)


def write_json(data: Any, stream: TextIO, *, indent: int = 2) -> None:
    """``json.dump(data, stream, indent=indent, ensure_ascii=False)``, made safe by
    :func:`json_chunk`. json's many small pieces are passed in batches of a few thousand, which
    is faster than json.dump's one write per piece."""
    pieces = json.JSONEncoder(indent=indent, ensure_ascii=False).iterencode(data)
    while batch := "".join(itertools.islice(pieces, 4096)):
        stream.write(json_chunk(batch))


# ------------------------------------------------------------------------------- YAML


def _yaml_escape(match: re.Match[str]) -> str:
    found = match.group()
    if found in ('"', "\\"):
        return "\\" + found
    if found == "#":
        return "\\x23"  # only in a string holding "##[": the legacy workflow command
    return _visible(match)


_YAML_ESCAPED = re.compile(f'["\\\\#{UNSAFE_CHARACTERS}]')


class SafeTextEmitter:
    """A mixin for a PyYAML or ruamel.yaml emitter (``allow_unicode=True``): a string holding
    a character :func:`text` would escape, or ``##[``, is written in double quotes with those
    characters escaped (``"x\\u202ey"``): the same document to a YAML reader, harmless to a
    terminal. Both libraries would otherwise write bidi controls, U+2028 and ``##[`` as they are."""

    def analyze_scalar(self, scalar: str) -> Any:
        analysis = super().analyze_scalar(scalar)  # type: ignore[misc]
        if needs_escapes(scalar):
            analysis.allow_flow_plain = analysis.allow_block_plain = False
            analysis.allow_single_quoted = analysis.allow_block = False
        return analysis

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        if not needs_escapes(text):
            super().write_double_quoted(text, split)  # type: ignore[misc]
            return
        # One line, escapes in the style of text() (all valid in YAML's double quotes).
        emitter: Any = self
        emitter.write_indicator('"', True)
        data = _YAML_ESCAPED.sub(_yaml_escape, text)
        emitter.column += len(data)
        emitter.stream.write(data.encode(emitter.encoding) if emitter.encoding else data)
        emitter.write_indicator('"', False)


class SafeTextDumper(SafeTextEmitter, yaml.SafeDumper):
    """PyYAML's SafeDumper with :class:`SafeTextEmitter`."""


def needs_escapes(scalar: str) -> bool:
    """Whether :func:`text` would change ``scalar`` other than for a leading ``::``."""
    return _LEGACY_COMMAND in scalar or (not scalar.isprintable() and bool(_UNSAFE.search(scalar)))
