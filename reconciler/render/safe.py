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

import re
import unicodedata
from collections.abc import Iterable
from typing import Any, TextIO

import yaml

__all__ = ["JsonSafeStream", "SafeTextDumper", "json_chunk", "lines", "text"]

# Characters str.isprintable() refuses but that are harmless and wanted in names: every space
# separator (NBSP, thin space, ideographic space...) and the zero-width (non-)joiners.
_KEEP_CATEGORIES = frozenset({"Zs", "Co", "Cn"})
_KEEP = frozenset("\u200c\u200d")

# The runner's legacy command form, anywhere in a line (actions/runner ActionCommand.TryParse).
_LEGACY_COMMAND = "##["


def _escape_char(ch: str) -> str:
    if ch in _KEEP or unicodedata.category(ch) in _KEEP_CATEGORIES:
        return ch
    return _visible(ch)


def _visible(ch: str) -> str:
    special = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
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
    raw = value if isinstance(value, str) else str(value)
    if not raw.isprintable():
        raw = "".join(ch if ch.isprintable() else _escape_char(ch) for ch in raw)
    if _LEGACY_COMMAND in raw:
        raw = raw.replace(_LEGACY_COMMAND, "#\\#[")
    if raw.lstrip().startswith("::"):
        blanks = len(raw) - len(raw.lstrip())
        raw = raw[:blanks] + "\\" + raw[blanks:]
    return raw


def lines(block: str) -> str:
    """Several lines of the reconciler's own output, each made safe with :func:`text`.

    For text whose line breaks the reconciler wrote itself; a value that may carry a line
    break must go through :func:`text` before it is put into such a block.
    """
    return "\n".join(map(text, block.split("\n")))


def joined(items: Iterable[object], separator: str = ", ") -> str:
    return separator.join(map(text, items))


# ------------------------------------------------------------------------------- JSON


_JSON_UNSAFE = re.compile(r"##\[|[^\n -~]")


def _json_escape(match: re.Match[str]) -> str:
    found = match.group()
    if found == _LEGACY_COMMAND:
        return "#\\u0023["
    if found.isprintable() or found in _KEEP or unicodedata.category(found) in _KEEP_CATEGORIES:
        return found
    code = ord(found)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON writes a character beyond the BMP as a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_chunk(chunk: str) -> str:
    """A piece of JSON text from :mod:`json` (``ensure_ascii=False``) with the characters
    :func:`text` escapes written as ``\\uXXXX`` escapes instead: the same JSON to a program,
    harmless to a terminal or CI log.

    Correct per chunk because :mod:`json` emits every string within one chunk, and these
    characters can only occur inside strings (json itself escapes C0 controls there).
    """
    if chunk.isascii() and _LEGACY_COMMAND not in chunk and "\x7f" not in chunk:
        return chunk
    return _JSON_UNSAFE.sub(_json_escape, chunk)


class JsonSafeStream:
    """A writable text stream that passes every write through :func:`json_chunk`."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, chunk: str) -> int:
        return self.stream.write(json_chunk(chunk))

    def flush(self) -> None:
        self.stream.flush()



# ------------------------------------------------------------------------------- YAML


class SafeTextDumper(yaml.SafeDumper):
    """A YAML dumper (``allow_unicode=True``) that writes a string holding a character
    :func:`text` would escape in double quotes with its non-ASCII characters escaped
    (``"x\\u202Ey"``): the same document to a YAML reader, harmless to a terminal. PyYAML
    would otherwise write bidi controls and U+2028 as they are."""

    def analyze_scalar(self, scalar: str) -> Any:
        analysis = super().analyze_scalar(scalar)
        if not scalar.isprintable():
            analysis.allow_flow_plain = analysis.allow_block_plain = False
            analysis.allow_single_quoted = analysis.allow_block = False
        return analysis

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        if text.isprintable():
            super().write_double_quoted(text, split)
            return
        saved, self.allow_unicode = self.allow_unicode, False
        try:
            super().write_double_quoted(text, split)
        finally:
            self.allow_unicode = saved
