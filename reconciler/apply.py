"""Run a plan against a backend, customer by customer.

For each customer: take its session (the lock), read its state again, refuse if the state no
longer has the fingerprint the plan was computed from, write the changes, record them in the
audit log. A customer with problems, an unsafe plan without --force, or a stale state is
skipped; the other customers proceed.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconciler.backends.base import AuditEntry, Backend
from reconciler.errors import ReconcilerError
from reconciler.model import Change, CustomerState, managed_kind
from reconciler.plan import CustomerPlan, fingerprint
from reconciler.runner import Plan

APPLIED, NOTHING, SKIPPED, STALE, UNSAFE, FAILED, REFUSED = (
    "applied", "no changes", "skipped", "stale", "unsafe", "failed", "refused",
)


@dataclass
class ApplyOutcome:
    customer: int
    status: str
    message: str = ""
    done: list[Change] = field(default_factory=list)
    planned: int = 0

    @property
    def ok(self) -> bool:
        return self.status in (APPLIED, NOTHING)


def git_commit(paths: list[str]) -> str | None:
    """The commit the specs come from: GITHUB_SHA in CI, else HEAD of the specs' repository."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    folder = paths[0] if paths else "."
    if not os.path.isdir(folder):
        folder = os.path.dirname(folder) or "."
    try:
        result = subprocess.run(
            ["git", "-C", folder, "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def apply_plan(
    plan: Plan, backend: Backend, *, force: bool = False, commit: str | None = None
) -> list[ApplyOutcome]:
    catalogue = backend.catalogue()
    return [_apply_customer(c, backend, catalogue, force, commit) for c in plan.customers]


def _apply_customer(
    customer_plan: CustomerPlan, backend: Backend, catalogue: object, force: bool, commit: str | None
) -> ApplyOutcome:
    cid = customer_plan.customer
    planned = len(customer_plan.changes)
    if customer_plan.errors:
        return ApplyOutcome(cid, SKIPPED, f"{len(customer_plan.errors)} problem(s) in the plan", planned=planned)
    if customer_plan.unsafe and not force:
        return ApplyOutcome(cid, UNSAFE, f"{customer_plan.unsafe_reason}", planned=planned)
    if not customer_plan.changes:
        return ApplyOutcome(cid, NOTHING)
    try:
        with backend.customer_session(cid, catalogue) as session:  # type: ignore[arg-type]
            state = session.read()
            if state is None or fingerprint(state) != customer_plan.fingerprint:
                from reconciler.staleness import explain_stale

                changed = explain_stale(customer_plan.snapshot, state)
                return ApplyOutcome(
                    cid,
                    STALE,
                    "billing state changed since the plan was made; plan again"
                    + "".join(f"\n    {line}" for line in changed),
                    planned=planned,
                )
            refused = out_of_bounds(customer_plan.changes, state)
            if refused:
                return ApplyOutcome(
                    cid,
                    REFUSED,
                    "the plan holds changes this customer may not make: " + "; ".join(refused[:5]),
                    planned=planned,
                )
            now = datetime.now(UTC).isoformat(timespec="seconds")
            fp = customer_plan.fingerprint

            def audit(change: Change) -> None:
                # Change by change on a backend that cannot roll back: every write that reached
                # billing is in the audit log before the next one starts.
                _record(session, [change], cid, fp, now, commit)

            try:
                session.execute(
                    customer_plan.changes,
                    on_written=None if backend.transactional else audit,
                )
            except ReconcilerError as exc:
                if backend.transactional:
                    raise  # the session rolls the whole customer back
                return ApplyOutcome(cid, FAILED, str(exc), done=session.done, planned=planned)
            if backend.transactional:
                _record(session, customer_plan.changes, cid, fp, now, commit)
            return ApplyOutcome(cid, APPLIED, done=list(customer_plan.changes), planned=planned)
    except ReconcilerError as exc:
        suffix = "; nothing was changed for this customer" if backend.transactional else ""
        return ApplyOutcome(cid, FAILED, f"{exc}{suffix}", planned=planned)


def out_of_bounds(changes: list[Change], state: CustomerState) -> list[str]:
    """Changes a customer's plan may never hold, whatever file it was read from.

    A plan made by ``plan`` never holds them; a saved plan is a file anyone could edit, so apply
    checks, against the state read under the lock, that every change stays on this customer's
    managed accounts and DID pool, off administrator-blocked accounts, and within its self-care
    role.
    """
    customer = state.customer
    accounts = {a.id: a for a in state.accounts}
    created: set[str] = set()
    found: list[str] = []
    for item in changes:
        kind = managed_kind(item.account, customer.id)
        existing = accounts.get(item.account)
        where = f"{item.op} {item.account}"
        if kind is None or item.account in state.foreign_ids:
            found.append(f"{where}: not a managed account of customer {customer.id}")
            continue
        if item.op == "create_account":
            if existing is not None or item.get("kind") != kind:
                found.append(f"{where}: the account exists already or its kind is not {kind}")
            created.add(item.account)
        elif existing is None and item.account not in created:
            found.append(f"{where}: no such account of customer {customer.id}")
        elif existing is not None and existing.blocked_by == "admin":
            found.append(f"{where}: blocked by the administrator")
        if item.op == "add_alias" and item.get("did") not in customer.dids:
            found.append(f"{where}: DID {item.get('did')} is not in the customer's pool")
        blocks = item.op in ("block", "unblock") or (item.op == "create_account" and item.get("blocked"))
        if blocks and not customer.block_extensions:
            found.append(f"{where}: the self-care role does not allow blocking")
        for product, wanted in _assigned_products(item):
            known = state.catalogue.by_name(product)
            if known is None or known.type != wanted or customer.quantity_for(product) is None:
                found.append(f"{where}: {product!r} is not a {wanted} product of the agreement")
    found.extend(_over_quantity(changes, state))
    return found


def _assigned_products(item: Change) -> list[tuple[str, str]]:
    """(product, "main" | "addon") that a change newly assigns."""
    if item.op == "create_account":
        return [(item.get("product"), "main")] + [(a, "addon") for a in item.get("addons")]
    if item.op == "set_product":
        return [(item.get("to"), "main")]
    if item.op == "add_addon":
        return [(item.get("product"), "addon")]
    return []


def _over_quantity(changes: list[Change], state: CustomerState) -> list[str]:
    """Products whose use after the changes exceeds the agreement and grows (the plan's rule)."""
    products = {a.id: ({a.product} if a.product else set()) | set(a.addons) for a in state.accounts if a.is_open}
    before: dict[str, int] = {}
    for used in products.values():
        for product in used:
            before[product] = before.get(product, 0) + 1
    for item in changes:
        used = products.setdefault(item.account, set())
        if item.op == "terminate_account":
            products.pop(item.account, None)
        elif item.op == "create_account":
            used |= {item.get("product"), *item.get("addons")}
        elif item.op == "set_product":
            used.discard(item.get("from"))
            used.add(item.get("to"))
        elif item.op == "add_addon":
            used.add(item.get("product"))
        elif item.op == "remove_addon":
            used.discard(item.get("product"))
    after: dict[str, int] = {}
    for used in products.values():
        for product in used:
            after[product] = after.get(product, 0) + 1
    return [
        f"{product!r} would be used by {after.get(product, 0)} accounts; the agreement allows {quantity}"
        for product, quantity in state.customer.agreement
        if quantity and after.get(product, 0) > quantity and after.get(product, 0) > before.get(product, 0)
    ]


def _record(session, changes: list[Change], cid: int, fp: str | None, now: str, commit: str | None) -> None:  # type: ignore[no-untyped-def]
    if not changes:
        return
    session.record(
        [
            AuditEntry(now, cid, c.op, c.account, c.to_dict(), fp or "", commit)
            for c in changes
        ]
    )
