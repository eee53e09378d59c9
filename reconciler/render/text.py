"""The plan for people: one block per customer, +/-/~ per change, problems, agreement usage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, assert_never

from reconciler.changes import (
    SYMBOL,
    AddAddon,
    AddAlias,
    Block,
    Change,
    CreateAccount,
    RemoveAddon,
    RemoveAlias,
    SetName,
    SetProduct,
    TerminateAccount,
    Unblock,
    change_from_dict,
)
from reconciler.render import safe

COLOUR = {"+": "green", "-": "red", "~": "yellow"}


def describe(change: Mapping[str, Any]) -> str:
    """One change of a plan's JSON form (or an audit entry's) as a short sentence-like line
    (without its symbol); an op this version does not know is said as op and account."""
    item = parse_change(change)
    if item is None:
        return f"{change.get('op')} {change.get('account')}"
    return describe_change(item)


def parse_change(change: Mapping[str, Any]) -> Change | None:
    """The change a JSON form holds, or None if it is not one this version knows."""
    try:
        return change_from_dict(dict(change))
    except (KeyError, TypeError, ValueError):
        return None


def describe_change(item: Change) -> str:
    account = item.account
    match item:
        case CreateAccount():
            extra = f", add-ons: {', '.join(item.addons)}" if item.addons else ""
            blocked = ", blocked" if item.blocked else ""
            kind = "auto attendant" if item.kind == "auto_attendant" else "extension"
            return f"create {kind} {account} {item.name!r} ({item.product}{extra}{blocked})"
        case SetProduct() | SetName():
            what = "product" if isinstance(item, SetProduct) else "name"
            return f"{account}: {what} {item.from_!r} -> {item.to!r}"
        case AddAddon() | RemoveAddon():
            verb = "add" if isinstance(item, AddAddon) else "remove"
            return f"{account}: {verb} add-on {item.product!r}"
        case AddAlias() | RemoveAlias():
            verb = "add" if isinstance(item, AddAlias) else "remove"
            return f"{account}: {verb} DID {item.did}"
        case TerminateAccount():
            return f"terminate {account}"
        case Block() | Unblock():
            return f"{item.op} {account}"
        case _:
            assert_never(item)


def where(problem: dict[str, Any]) -> str:
    if not problem.get("file"):
        return ""
    if problem.get("line") is None:
        return problem["file"]
    return f"{problem['file']}:{problem['line']}:{problem.get('column') or 1}"


def usage_line(usage: list[dict[str, Any]]) -> str:
    parts = []
    for item in usage:
        limit = "unlimited" if item["quantity"] == 0 else str(item["quantity"])
        arrow = str(item["planned"])
        if item["in_use"] != item["planned"]:
            arrow = f"{item['in_use']}->{item['planned']}"
        parts.append(f"{item['product']} {arrow}/{limit}")
    return ", ".join(parts)


def render_text(plan: dict[str, Any], *, style: Any = None) -> str:
    """``style(text, fg=...)`` colours a piece (click.style on a terminal); None: plain text.

    Every line is made safe (reconciler.render.safe) before it is coloured: the values in it
    come from specs, file names and billing.
    """
    def paint(line: str, **kwargs: Any) -> str:
        return style(safe.text(line), **kwargs) if style else safe.text(line)

    lines: list[str] = []
    for problem in plan.get("errors", []):
        lines.append(
            paint(f"error[{problem['code']}] {where(problem)}: {problem['message']}", fg="red")
        )
    for customer in plan["customers"]:
        title = f"Customer {customer['customer']}"
        if customer.get("name"):
            title += f" {customer['name']}"
        lines.append(paint(f"{title} ({customer['file']})", bold=True))
        if customer["errors"] and customer["changes"]:
            lines.append(paint(
                f"  skipped: apply changes nothing for this customer until the errors below are "
                f"fixed; the spec asks for these {len(customer['changes'])} change(s):", fg="red"))
        for change in customer["changes"]:
            symbol = SYMBOL[change["op"]]
            lines.append(paint(f"  {symbol} {describe(change)}", fg=COLOUR[symbol]))
        if not customer["changes"] and not customer["errors"]:
            lines.append("  no changes")
        for problem in customer["errors"]:
            line = f"  error[{problem['code']}] {where(problem)}: {problem['message']}"
            lines.append(paint(line, fg="red"))
        for problem in customer["warnings"]:
            line = f"  warning[{problem['code']}] {where(problem)}: {problem['message']}"
            lines.append(paint(line, fg="yellow"))
        if customer.get("unsafe"):
            lines.append(paint(f"  UNSAFE: {customer['unsafe_reason']}", fg="red", bold=True))
        if customer.get("usage"):
            lines.append(paint(f"  agreement usage: {usage_line(customer['usage'])}"))
    for note in plan.get("notes", []):
        lines.append(paint(f"note: {note}", fg="yellow"))
    summary = plan["summary"]
    skipped = [c for c in plan["customers"] if c["errors"]]
    held = sum(len(c["changes"]) for c in skipped)
    applicable = sum(len(c["changes"]) for c in plan["customers"] if not c["errors"])
    skip_note = (
        f" ({len(skipped)} skipped because of errors, {held} change(s) held back)"
        if skipped else ""
    )
    lines.append(
        paint(
            f"Plan: {applicable} change(s) for {summary['customers']} customer(s){skip_note}, "
            f"{summary['errors']} error(s), {summary.get('warnings', 0)} warning(s).",
            bold=True,
        )
    )
    return "\n".join(lines)
