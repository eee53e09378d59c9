"""What `adopt` wrote into each spec: for people (text) and for a pull-request body (Markdown)."""

from __future__ import annotations

from typing import Any

from reconciler.render import safe
from reconciler.render.markdown import escape
from reconciler.render.text import where

_LABEL = {"name": "name", "product": "product", "addons": "add-ons", "dids": "DIDs",
          "blocked": "blocked"}


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def describe(change: dict[str, Any]) -> tuple[str, str]:
    """(symbol, sentence) for one adopted change."""
    account, what = change["account"], change["what"]
    reason = f" ({change['reason']})" if change.get("reason") else ""
    if what == "added":
        after = change["after"]
        extra = f", add-ons: {', '.join(after['addons'])}" if after["addons"] else ""
        extra += f", DIDs: {', '.join(after['dids'])}" if after["dids"] else ""
        extra += ", blocked" if after["blocked"] else ""
        return "+", f"{account}: added{reason}: {after['name']!r} ({after['product']}{extra})"
    if what == "removed":
        return "-", f"{account}: removed{reason}"
    old, new = _value(change["before"]), _value(change["after"])
    return "~", f"{account}: {_LABEL[what]} {old} -> {new}{reason}"


def summary(results: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "files": len(results),
        "rewritten": sum(1 for r in results if r["changed"]),
        "changes": sum(len(r["changes"]) for r in results if r["changed"]),
        "errors": sum(len(r["errors"]) for r in results),
    }


def _title(result: dict[str, Any]) -> str:
    if result["customer"] is None:
        return result["file"]
    name = f" {result['name']}" if result.get("name") else ""
    return f"{result['file']} (customer {result['customer']}{name})"


def render_text(results: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for result in results:
        if result["errors"]:
            lines.append(f"{_title(result)}: left as it is")
            for problem in result["errors"]:
                lines.append(f"  error[{problem['code']}] {where(problem)}: {problem['message']}")
        elif result["changed"]:
            lines.append(f"{_title(result)}: {len(result['changes'])} change(s) "
                         "adopted from billing")
            for change in result["changes"]:
                symbol, text = describe(change)
                lines.append(f"  {symbol} {text}")
        else:
            lines.append(f"{_title(result)}: no drift, unchanged")
        for problem in result["warnings"]:
            lines.append(f"  warning[{problem['code']}] {where(problem)}: {problem['message']}")
    total = summary(results)
    lines.append(
        f"Adopt: {total['rewritten']} of {total['files']} spec file(s) rewritten, "
        f"{total['changes']} change(s), {total['errors']} error(s)."
    )
    # File names, account names and messages in these lines come from specs and billing.
    return "\n".join(map(safe.text, lines))


def render_markdown(results: list[dict[str, Any]]) -> str:
    """A pull-request body: per rewritten file, what billing changed; then what was left alone."""
    lines: list[str] = []
    for result in results:
        if not result["changed"]:
            continue
        name = f" ({escape(result['name'], 120)})" if result.get("name") else ""
        lines.append(f"## Billing changed customer {result['customer']}{name}")
        lines.append("")
        lines.append(
            f"<code>{escape(result['file'], 300)}</code> now describes what billing holds. "
            "Merge to keep these changes in the spec; close to have billing restored from the spec "
            "by the next apply."
        )
        lines.append("")
        lines.append("| | account | change |")
        lines.append("|---|---|---|")
        for change in result["changes"]:
            symbol, text = describe(change)
            account, _, rest = text.partition(": ")
            lines.append(f"| {symbol} | {escape(account, 80)} | {escape(rest)} |")
        lines.append("")
    problems = [(r, p) for r in results for p in r["errors"]]
    if problems:
        lines.append("### Left as they are")
        lines.append("")
        for result, problem in problems:
            lines.append(f"- <code>{escape(where(problem) or result['file'], 300)}</code> "
                         f"{escape(problem['code'])}: {escape(problem['message'])}")
        lines.append("")
    if not lines:
        lines.append("No drift: billing matches the specs.")
    total = summary(results)
    lines.append(
        f"<sub>reconciler adopt: {total['rewritten']} spec file(s) rewritten, "
        f"{total['changes']} change(s).</sub>"
    )
    return "\n".join(lines)
