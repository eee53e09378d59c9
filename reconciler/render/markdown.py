"""Markdown rendering of a plan, for a pull-request comment and a job summary.

GitHub refuses a comment body over 65,536 characters, so the plan is cut into parts
that each stay under a limit. A part never cuts a section (or an HTML tag) in two: a
customer section that fits in a part is kept whole; one that is too big for any part on
its own is split at change boundaries into several ``<details>`` sections, each closed
in the part that opened it. Every part starts with ``<!-- reconciler:part I/N -->`` so
that CI can post (and later update) one comment per part.

The input is the plan's plain dict form (the Plan JSON of the spec), so this module
depends on nothing else in the package.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from reconciler.changes import (
    OP_ORDER,
    SYMBOL,
    AddAddon,
    AddAlias,
    Block,
    CreateAccount,
    RemoveAddon,
    RemoveAlias,
    SetName,
    SetProduct,
    TerminateAccount,
    Unblock,
)
from reconciler.render import safe
from reconciler.render.text import parse_change

__all__ = [
    "DEFAULT_LIMIT",
    "OP_ORDER",
    "OP_SYMBOL",
    "escape",
    "part_marker",
    "render_markdown",
    "render_markdown_parts",
]

DEFAULT_LIMIT = 65000

# The plan's own order of operations (the summary counts changes in this order), and the
# text renderer's symbols: + adds, - removes, ~ changes in place.
OP_SYMBOL = SYMBOL

TITLE = "pbx-reconciler plan"

# User text is cut to these lengths before escaping, so that one change always fits in
# a part even when a name is absurdly long (escaping can grow text several times over).
_MAX_NAME = 120
_MAX_MESSAGE = 600
_MAX_PATH = 300
_MAX_ID = 80

# Entities rather than backslashes: they work the same in table cells, list items and
# inside the HTML of <summary>, where Markdown escapes are not processed.
_ENTITIES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "|": "&#124;",
    "`": "&#96;",
    "*": "&#42;",
    "_": "&#95;",
    "[": "&#91;",
    "]": "&#93;",
    "\\": "&#92;",
    "~": "&#126;",
    "#": "&#35;",
    "!": "&#33;",
    # A zero-width space after "@" keeps a name like "@org/team" from notifying anyone.
    "@": "@\u200b",
}


_MARKUP = re.compile("[" + re.escape("".join(_ENTITIES)) + "]")


# GitHub turns "https://…" and "www.…" in text into links by itself: a zero-width space after
# the colon or before the dot keeps a name from becoming one.
_AUTOLINK = re.compile(r"(?<=:)(?=//)|(?i:(?<=www))(?=\.)")


def _entity(match: re.Match[str]) -> str:
    return _ENTITIES[match.group()]


def escape(text: object, max_length: int = _MAX_MESSAGE) -> str:
    """Make user text safe to place in Markdown or HTML: no markup, links (written or bare),
    mentions, HTML comments (a forged part marker) or workflow commands.

    Line breaks, control, bidi and separator characters become visible escapes such as
    ``\\n`` or ``\\u202e`` (reconciler.render.safe: a table row is one line, and the comment
    reads as the terminal does), and text longer than ``max_length`` is shortened with an
    ellipsis.
    """
    raw = "" if text is None else str(text)
    if len(raw) > max_length:
        raw = raw[: max_length - 1] + "…"
    return _AUTOLINK.sub("\u200b", _MARKUP.sub(_entity, safe.text(raw)))


def _code(text: object, max_length: int = _MAX_ID) -> str:
    return f"<code>{escape(text, max_length)}</code>"


_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _identifier(text: object) -> str:
    """An op or problem code: shown as written when it is a plain identifier (readable
    in the raw comment too), escaped like any other text otherwise."""
    raw = str(text)
    return raw if _IDENTIFIER.fullmatch(raw) else escape(raw, _MAX_ID)


def part_marker(index: int, total: int) -> str:
    """The first line of every part; CI finds and replaces comments by it."""
    return f"<!-- reconciler:part {index}/{total} -->"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class _Group:
    """Items under a heading; the heading is repeated wherever the items continue."""

    heading: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class _Section:
    """A unit of the document that is kept whole unless it cannot fit in any part.

    ``opening(piece)`` returns the text that starts the section, where ``piece`` is
    ``None`` for the whole section and 1, 2, … for the pieces of a split one.
    """

    opening: Callable[[int | None], str]
    closing: str
    groups: tuple[_Group, ...]

    def render(self, piece: int | None, items: Iterable[tuple[int, str]]) -> str:
        text = [self.opening(piece)]
        current: int | None = None
        for group_index, item in items:
            if group_index != current:
                text.append(_group_start(self.groups[group_index].heading, current is None))
                current = group_index
            text.append(item)
        text.append(self.closing)
        return "".join(text)

    def flat_items(self) -> list[tuple[int, str]]:
        return [(index, item) for index, group in enumerate(self.groups) for item in group.items]


def _group_start(heading: str, first_in_piece: bool) -> str:
    # A blank line between groups ends the previous list or table.
    return heading if first_in_piece else "\n" + heading


# ----------------------------------------------------------------------- the summary


def _changes_of(plan: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The changes apply would make: a customer with errors is skipped, none of its."""
    return [change for customer in _customers(plan) if not customer.get("errors")
            for change in customer.get("changes") or []]


def _customers(plan: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(plan.get("customers") or [])


def _op_counts(changes: Iterable[Mapping[str, Any]]) -> list[tuple[str, int]]:
    counts = Counter(str(change.get("op")) for change in changes)
    known = [(op, counts[op]) for op in OP_ORDER if counts[op]]
    # An op this renderer does not know yet is still counted, after the known ones.
    unknown = sorted((op, n) for op, n in counts.items() if op not in OP_SYMBOL)
    return known + unknown


def _summary_section(plan: Mapping[str, Any]) -> _Section:
    customers = _customers(plan)
    changes = _changes_of(plan)
    errors = len(plan.get("errors") or []) + sum(len(c.get("errors") or []) for c in customers)
    warnings = len(plan.get("warnings") or []) + sum(
        len(c.get("warnings") or []) for c in customers
    )
    totals = (
        f"**{_plural(len(customers), 'customer')} · {_plural(len(changes), 'change')} · "
        f"{_plural(errors, 'error')} · {_plural(warnings, 'warning')}**\n"
    )
    verdict: list[str] = []
    if not changes and not any(c.get("changes") for c in customers):
        verdict.append("\nNo changes.\n")
    if errors:
        skipped = [c for c in customers if c.get("errors")]
        held = sum(len(c.get("changes") or []) for c in skipped)
        verdict.append(
            f"\n❌ **{_plural(errors, 'error')}.** Apply skips every customer with errors "
            f"({_plural(len(skipped), 'customer')} skipped, {_plural(held, 'change')} held back); "
            "fix them before merging.\n"
        )
    # The backend's address is left out on purpose: a pull-request comment is read by everyone
    # who can read the repository, and billing's host is nobody's business there.
    groups = [_Group("", (totals + "".join(verdict),))]

    counts = _op_counts(changes)
    if counts:
        rows = tuple(
            f"| <code>{OP_SYMBOL.get(op, '?')}</code> | {_identifier(op)} | {n} |\n"
            for op, n in counts
        )
        groups.append(_Group("| | change | count |\n|---|---|--:|\n", rows))

    unsafe = tuple(
        f"- {_customer_title(c)}: {escape(c.get('unsafe_reason') or 'unsafe plan')}\n"
        for c in customers
        if c.get("unsafe")
    )
    if unsafe:
        groups.append(
            _Group("⚠️ **Unsafe plans**: apply refuses them unless forced (`--force`).\n\n", unsafe)
        )

    def opening(piece: int | None) -> str:
        return "" if piece in (None, 1) else f"_Summary, continued ({piece})_\n\n"

    return _Section(opening, "\n", tuple(groups))


# ----------------------------------------------------------------------- a customer


def _customer_title(customer: Mapping[str, Any]) -> str:
    name = customer.get("name")
    number = escape(customer.get("customer"), _MAX_ID)
    if name:
        return f"<b>{escape(name, _MAX_NAME)}</b> ({number})"
    return f"<b>customer {number}</b>"


def _location(problem: Mapping[str, Any]) -> str:
    where = [str(problem["file"])] if problem.get("file") else []
    for key in ("line", "column"):
        if problem.get(key) is not None:
            where.append(str(problem[key]))
        else:
            break  # a column without a line says nothing
    if not where:
        return ""
    if not problem.get("file"):
        where[0] = f"line {where[0]}"
    return " " + _code(":".join(where), _MAX_PATH)


def _problem_item(problem: Mapping[str, Any], mark: str) -> str:
    code = problem.get("code") or "problem"
    return (
        f"- {mark} <code>{_identifier(code)}</code>{_location(problem)} — "
        f"{escape(problem.get('message'))}\n"
    )


def _usage_item(usage: Mapping[str, Any]) -> str:
    quantity = usage.get("quantity")
    planned = usage.get("planned")
    allowed = "unlimited" if not quantity else str(quantity)
    over = (
        isinstance(quantity, int)
        and quantity > 0
        and isinstance(planned, int)
        and planned > quantity
    )
    return (
        f"- {escape(usage.get('product'), _MAX_NAME)} {escape(planned)}/{allowed}"
        f" (in use now: {escape(usage.get('in_use'))})"
        + (" ❌ over the agreement" if over else "")
        + "\n"
    )


def _change_details(change: Mapping[str, Any]) -> str:
    item = parse_change(change)
    if item is None:
        # A change this renderer does not know yet is still shown rather than dropped.
        extra = sorted((k, v) for k, v in change.items() if k not in ("op", "account"))
        return ", ".join(f"{escape(k, _MAX_ID)} {escape(v, _MAX_NAME)}" for k, v in extra)
    match item:
        case CreateAccount():
            kind = str(item.kind or "account").replace("_", " ")
            text = f"{escape(kind)} &quot;{escape(item.name, _MAX_NAME)}&quot;"
            text += f", product {escape(item.product, _MAX_NAME)}"
            if item.addons:
                text += ", add-ons " + ", ".join(escape(a, _MAX_NAME) for a in item.addons)
            if item.blocked:
                text += ", blocked"
            return text
        case SetProduct():
            return (
                f"product {escape(item.from_, _MAX_NAME)} → "
                f"{escape(item.to, _MAX_NAME)}"
            )
        case SetName():
            return (
                f"name &quot;{escape(item.from_, _MAX_NAME)}&quot; → "
                f"&quot;{escape(item.to, _MAX_NAME)}&quot;"
            )
        case AddAddon() | RemoveAddon():
            return f"add-on {escape(item.product, _MAX_NAME)}"
        case AddAlias() | RemoveAlias():
            return f"DID {_code(item.did)}"
        case Block() | Unblock() | TerminateAccount():
            return ""
        case _:
            assert_never(item)


def _change_row(change: Mapping[str, Any]) -> str:
    op = str(change.get("op"))
    symbol = OP_SYMBOL.get(op, "?")
    account = _code(change.get("account"))
    return (
        f"| <code>{symbol}</code> | {_identifier(op)} | {account} | {_change_details(change)} |\n"
    )


_CHANGES_HEADING = "**Changes**\n\n| | change | account | details |\n|---|---|---|---|\n"


def _customer_section(customer: Mapping[str, Any]) -> _Section:
    changes = list(customer.get("changes") or [])
    errors = list(customer.get("errors") or [])
    warnings = list(customer.get("warnings") or [])
    held = " held back (skipped)" if errors and changes else ""
    stats = [_plural(len(changes), "change") + held]
    if errors:
        stats.append("❌ " + _plural(len(errors), "error"))
    if warnings:
        stats.append(_plural(len(warnings), "warning"))
    if customer.get("unsafe"):
        stats.append("⚠️ UNSAFE")
    # Problems deserve attention, so such sections are shown unfolded.
    tag = "<details open>" if errors or customer.get("unsafe") else "<details>"

    preamble = []
    if customer.get("file"):
        preamble.append(f"File {_code(customer['file'], _MAX_PATH)}")
    if customer.get("fingerprint"):
        preamble.append(f"fingerprint {_code(customer['fingerprint'])}")
    preamble_text = (" · ".join(preamble) + "\n\n") if preamble else ""
    if customer.get("unsafe"):
        reason = escape(
            str(customer.get("unsafe_reason") or "it removes too much at once").rstrip(".")
        )
        preamble_text += (
            f"⚠️ **Unsafe plan:** {reason}. Apply refuses it unless forced (`--force`).\n\n"
        )

    def opening(piece: int | None) -> str:
        label = "" if piece is None else f" (part {piece})"
        summary = f"{_customer_title(customer)}{label} · {' · '.join(stats)}"
        return f"{tag}<summary>{summary}</summary>\n\n{preamble_text}"

    groups = []
    if errors:
        groups.append(_Group("**Errors**\n\n", tuple(_problem_item(p, "❌") for p in errors)))
    if warnings:
        groups.append(_Group("**Warnings**\n\n", tuple(_problem_item(p, "⚠️") for p in warnings)))
    usage = customer.get("usage") or []
    if usage:
        groups.append(
            _Group("**Agreement usage** (planned/allowed)\n\n", tuple(map(_usage_item, usage)))
        )
    if changes and errors:
        heading = _CHANGES_HEADING.replace(
            "**Changes**",
            "**Changes the spec asks for** (none is made until the errors are fixed)")
        groups.append(_Group(heading, tuple(map(_change_row, changes))))
    elif changes:
        groups.append(_Group(_CHANGES_HEADING, tuple(map(_change_row, changes))))
    else:
        groups.append(_Group("", ("No changes.\n",)))
    return _Section(opening, "\n</details>\n\n", tuple(groups))


def _top_level_section(plan: Mapping[str, Any]) -> _Section:
    def opening(piece: int | None) -> str:
        label = "" if piece is None else f" (part {piece})"
        return f"**Problems not tied to a customer**{label}\n\n"

    items = tuple(_problem_item(p, "❌") for p in plan.get("errors") or []) + tuple(
        _problem_item(p, "⚠️") for p in plan.get("warnings") or []
    )
    return _Section(opening, "\n", (_Group("", items),))


def _sections(plan: Mapping[str, Any]) -> list[_Section]:
    sections = [_summary_section(plan)]
    if plan.get("errors") or plan.get("warnings"):
        sections.append(_top_level_section(plan))
    sections.extend(_customer_section(customer) for customer in _customers(plan))
    return sections


# -------------------------------------------------------------------------- packing


class _Packer:
    """Fills parts of at most ``capacity`` characters with sections, in order."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.parts: list[list[str]] = [[]]
        self.used = 0

    def room(self) -> int:
        return self.capacity - self.used

    def new_part(self) -> None:
        if self.used:
            self.parts.append([])
            self.used = 0

    def put(self, text: str) -> None:
        self.parts[-1].append(text)
        self.used += len(text)

    def add(self, section: _Section) -> None:
        whole = section.render(None, section.flat_items())
        if len(whole) <= self.room():
            self.put(whole)
        elif len(whole) <= self.capacity:
            # It fits in a part of its own: keep it whole rather than split it.
            self.new_part()
            self.put(whole)
        else:
            # It must be split anyway. Start in this part, unless only a sliver is left.
            if self.room() < self.capacity // 4:
                self.new_part()
            self._add_split(section)

    def _add_split(self, section: _Section) -> None:
        items = section.flat_items()
        start, piece = 0, 1
        while start < len(items):
            end = self._fill(section, piece, items, start)
            if end == start:
                if not self.used:
                    size = len(section.render(piece, items[start : start + 1]))
                    raise ValueError(
                        f"markdown part limit too small: one change needs {size} characters"
                    )
                self.new_part()
                continue
            self.put(section.render(piece, items[start:end]))
            start, piece = end, piece + 1
            if start < len(items):
                self.new_part()

    def _fill(self, section: _Section, piece: int, items: list[tuple[int, str]], start: int) -> int:
        """Index after the last item that still fits in the room left in this part."""
        size = len(section.opening(piece)) + len(section.closing)
        current: int | None = None
        end = start
        for group_index, item in items[start:]:
            cost = len(item)
            if group_index != current:
                cost += len(_group_start(section.groups[group_index].heading, current is None))
            if size + cost > self.room():
                break
            size += cost
            current = group_index
            end += 1
        return end


def _prefix(index: int, total: int) -> str:
    title = TITLE if total == 1 else f"{TITLE} (part {index} of {total})"
    return f"{part_marker(index, total)}\n\n## {title}\n\n"


def _pack(sections: list[_Section], limit: int) -> list[str]:
    # The prefix names the part count, which is known only after packing: reserve room
    # for a count of `digits` digits and pack again in the rare case it was not enough.
    digits = 1
    while True:
        widest = 10**digits - 1
        capacity = limit - 1 - len(_prefix(widest, widest))
        packer = _Packer(capacity)
        for section in sections:
            packer.add(section)
        total = len(packer.parts)
        if len(str(total)) <= digits:
            break
        digits = len(str(total))
    return [
        _prefix(index, total) + "".join(texts).rstrip("\n") + "\n"
        for index, texts in enumerate(packer.parts, start=1)
    ]


# ----------------------------------------------------------------------- public API


def render_markdown_parts(plan: Mapping[str, Any], *, limit: int = DEFAULT_LIMIT) -> list[str]:
    """Render ``plan`` (the Plan JSON dict) as Markdown parts, each shorter than ``limit``.

    Part 1 starts with the summary; each customer has a collapsible section. Every
    part starts with the line ``<!-- reconciler:part I/N -->``. Joining the parts shows
    each change exactly once. The output depends only on ``plan``.

    Raises ``ValueError`` when ``limit`` is too small to hold a single change.
    """
    return _pack(_sections(plan), limit)


def render_markdown(plan: Mapping[str, Any], *, limit: int = DEFAULT_LIMIT) -> str:
    """All parts of :func:`render_markdown_parts`, one after another."""
    return "\n".join(render_markdown_parts(plan, limit=limit))
