"""Why a saved plan is stale: what changed in billing for a customer since the plan was made.

A saved plan (``plan --out``) carries, per customer, the state it was computed from
(``state_at_plan``: what the fingerprint digests, as plain data). When ``apply --plan`` finds
another fingerprint, DeepDiff compares that snapshot with the state read now, and the
difference is said per account and field, old -> new.
"""

from __future__ import annotations

from typing import Any

from reconciler.model import CustomerState
from reconciler.rules import ACCOUNT_FIELDS, canonical_state

# Lists longer than this are said as what was added and removed, not old -> new.
_SHORT_LIST = 5
_MAX_LINES = 20


def state_snapshot(state: CustomerState) -> dict[str, Any]:
    """The customer's state as plain JSON data: its canonical form (which the plan's fingerprint
    digests, reconciler/rules.py) keyed by name, so that a difference reads as a field."""
    canonical = canonical_state(state)
    _id, name, block_extensions = canonical["customer"]
    foreign_ids, foreign_dids = canonical["foreign"]
    return {
        "customer": {"name": name, "block_extensions": block_extensions},
        "agreement": dict(canonical["agreement"]),
        "did_pool": canonical["pool"],
        "accounts": {
            row[0]: dict(zip(ACCOUNT_FIELDS, row[1:], strict=True)) for row in canonical["accounts"]
        },
        "products": {
            product: kind
            for _pid, product, kind in sorted(canonical["catalogue"], key=lambda p: p[1])
        },
        "other_customers": {"account_ids": foreign_ids, "dids": foreign_dids},
    }


def explain_stale(before: dict[str, Any] | None, state: CustomerState | None) -> list[str]:
    """What changed in billing since ``before`` (a plan's ``state_at_plan``), one line each.

    Empty when the plan carries no snapshot (an older plan file) or nothing differs in it.
    """
    if before is None:
        return []
    if state is None:
        return ["the customer is gone from billing"]
    from deepdiff import DeepDiff

    after = state_snapshot(state)
    diff = DeepDiff(before, after, ignore_order=True, view="tree")
    # Group DeepDiff's findings by the field they are in: ('accounts', ID, 'dids'), ('agreement',
    # product), ('did_pool',) ...; each field is then said once, old -> new.
    fields: set[tuple[Any, ...]] = set()
    for findings in diff.values():
        for finding in findings:
            path = finding.path(output_format="list")
            depth = {"accounts": 3, "did_pool": 1}.get(path[0] if path else "", 2)
            fields.add(tuple(path[:depth]))
    ordered = sorted(fields, key=lambda f: [str(p) for p in f])
    lines = [_say(field, before, after) for field in ordered]
    if len(lines) > _MAX_LINES:
        lines = lines[:_MAX_LINES] + [f"... and {len(lines) - _MAX_LINES} more"]
    return lines


_MISSING = object()


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        found = (isinstance(data, dict) and step in data) or (
            isinstance(data, list) and isinstance(step, int) and step < len(data)
        )
        if found:
            data = data[step]
        else:
            return _MISSING
    return data


def _say(field: tuple[Any, ...], before: dict[str, Any], after: dict[str, Any]) -> str:
    old, new = _get(before, field), _get(after, field)
    if field[0] == "accounts" and len(field) >= 2:
        account = field[1]
        if old is _MISSING and len(field) == 2:
            return f"account {account} was created in billing ({_account(new)})"
        if new is _MISSING and len(field) == 2:
            return f"account {account} is gone from billing"
        return f"account {account} {field[2]}: {_change(old, new)}"
    if field[0] == "agreement" and len(field) == 2:
        if old is _MISSING:
            return f"agreement: {field[1]} added (quantity {_value(new)})"
        if new is _MISSING:
            return f"agreement: {field[1]} removed (it was quantity {_value(old)})"
        return f"agreement {field[1]} quantity: {_change(old, new)}"
    if field[0] == "products" and len(field) == 2:
        if old is _MISSING:
            return f"product {field[1]!r} added to the catalogue ({new})"
        if new is _MISSING:
            return f"product {field[1]!r} removed from the catalogue"
        return f"product {field[1]!r} type: {_change(old, new)}"
    names = {"did_pool": "DID pool", "customer": "customer", "other_customers": "other customers'"}
    what = names.get(field[0], str(field[0]))
    name = " ".join([what, *(str(step).replace("_", " ") for step in field[1:])])
    return f"{name}: {_change(old, new)}"


def _account(data: Any) -> str:
    if not isinstance(data, dict):
        return _value(data)
    text = f"{data.get('name')!r}, product {data.get('product')!r}"
    if data.get("status") not in (None, "open"):
        text += f", {data['status']}"
    return text


def _change(old: Any, new: Any) -> str:
    if isinstance(old, list) and isinstance(new, list) and max(len(old), len(new)) > _SHORT_LIST:
        added = [v for v in new if v not in old]
        removed = [v for v in old if v not in new]
        parts = [f"+{v}" for v in added[:_SHORT_LIST]] + [f"-{v}" for v in removed[:_SHORT_LIST]]
        more = len(added) + len(removed) - len(parts)
        return " ".join(parts) + (f" (and {more} more)" if more > 0 else "")
    return f"{_value(old)} -> {_value(new)}"


def _value(value: Any) -> str:
    if value is _MISSING or value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)
