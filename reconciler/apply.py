"""Run a plan against a backend, customer by customer.

For each customer: take its session (the lock), read its state again, refuse if the state no
longer has the fingerprint the plan was computed from, write the changes, record them in the
audit log. A customer with problems, an unsafe plan without --force, or a stale state is
skipped; the other customers proceed.

An interrupt (SIGINT, SIGTERM) never cuts a write in half: ``StopSignals`` turns it into a stop
request that apply honours at the next safe point. On a backend that writes change by change
that is before the next change (the one in flight finishes and is audited); on a backend with
transactions it is between customers (the customer in flight commits whole, with its audit rows).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Self

from reconciler.auditchain import AuditChainBroken
from reconciler.backends.base import AuditEntry, Backend, CustomerSession
from reconciler.changes import Change, CreateAccount
from reconciler.diff import fingerprint
from reconciler.errors import BackendError, ReconcilerError
from reconciler.model import Catalogue, CustomerState, managed_kind
from reconciler.plan import CustomerPlan, Plan
from reconciler.rules import block_refused, product_fault, product_usage, quantity_uses

APPLIED, NOTHING, SKIPPED, STALE, UNSAFE, FAILED, REFUSED = (
    "applied", "no changes", "skipped", "stale", "unsafe", "failed", "refused",
)
# An interrupt stopped this customer midway (some of its changes were written: ``done``), or
# came before it started (nothing written for it).
INTERRUPTED, NOT_STARTED = "interrupted", "not started (interrupted)"


@dataclass
class ApplyOutcome:
    """What became of one customer. ``done``: the changes that reached billing. ``planned``: how
    many the plan held, where the report says how far a customer got (stopped or not started, or
    failed partway); 0 where it would say nothing."""

    customer: int
    status: str
    message: str = ""
    done: list[Change] = field(default_factory=list)
    planned: int = 0

    @property
    def ok(self) -> bool:
        return self.status in (APPLIED, NOTHING)


# How long apply waits for `git rev-parse HEAD` (a credential prompt, a stuck filesystem) before
# it records the write without a commit.
GIT_TIMEOUT_SECONDS = 10.0


def git_commit(paths: list[str]) -> str | None:
    """The commit the specs come from: GITHUB_SHA in CI, else HEAD of the specs' repository.

    The repository is the one holding the spec paths, not the working directory's; specs spread
    over several repositories (or none) come from no one commit, and record none.
    """
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    from reconciler.gitchanges import GitChangesError, repository_of

    try:
        toplevel = repository_of(paths)
        result = subprocess.run(
            ["git", "-C", toplevel, "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS, check=False,
        )
    except (OSError, subprocess.SubprocessError, GitChangesError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


class StopSignals:
    """SIGINT and SIGTERM, while apply writes, become a request to stop at the next safe point.

    Use as a context manager around ``apply_plan(..., stop=signals.requested)``. Python's own
    SIGINT handler raises KeyboardInterrupt wherever the main thread happens to be, which could
    be between a write that reached billing and its audit record; these handlers only set a flag,
    so a blocking call (an HTTP request, a SQLite statement) is not interrupted and finishes.
    The first signal is announced once; later ones are noted and honoured the same way, after
    the write in flight: cutting that write short would leave a change in billing that the audit
    log does not hold. The previous handlers come back on exit. Outside the main thread, where
    Python allows no signal handlers, nothing is installed and no stop is ever requested.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, announce: Callable[[str], None] | None = None) -> None:
        self.announce = announce or (lambda _line: None)
        self.signum: int | None = None
        self.received = 0
        self._settled = False
        self._previous: dict[int, Any] = {}

    def requested(self) -> bool:
        """Whether a signal asked apply to stop; passed to ``apply_plan`` as ``stop``."""
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process the signal ended: 130, 143."""
        return 128 + (self.signum or 0)

    def settle(self) -> None:
        """The run's outcome is decided and reported: later signals are received and ignored
        (while the backend closes), so they change neither the exit code nor the output."""
        self._settled = True

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received += 1
        if self._settled:
            return
        if self.signum is None:
            self.signum = signum
            self._say(f"{signal.Signals(signum).name} received: stopping after the write in flight "
                      "(it finishes and is recorded in the audit log; nothing more is started)")
        else:
            self._say("already stopping (a write in flight finishes and is recorded first)")

    def _say(self, line: str) -> None:
        try:
            self.announce(line)
        except (OSError, RuntimeError, ValueError):
            pass  # stderr gone, or busy in the main thread: the stop still happens

    def install(self, *, already: int | None = None) -> None:
        """Take over SIGINT and SIGTERM. ``already``: a signal that arrived before (it raised
        KeyboardInterrupt); it counts as the first, and later ones are only noted."""
        if already is not None and self.signum is None:
            self.signum = already
        if threading.current_thread() is threading.main_thread() and not self._previous:
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        """Give SIGINT and SIGTERM back to the handlers they had before ``install``."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def __enter__(self) -> Self:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def apply_plan(
    plan: Plan,
    backend: Backend,
    *,
    force: bool = False,
    commit: str | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[ApplyOutcome]:
    """Apply every customer of ``plan``; one outcome per customer, in plan order.

    ``stop`` is asked before each customer and, on a backend that writes change by change,
    before each change: once it says yes, the customer in flight ends after its current write
    (``INTERRUPTED``, with ``done`` exact) or, on a backend with transactions, after its commit;
    customers with changes not yet started are ``NOT_STARTED``. Every write that reached
    billing is in the audit log, whatever stopped the run.
    """
    stopped = stop or (lambda: False)
    if any(c.changes and not c.errors for c in plan.customers):
        backend.check_audit_writable()  # before the first write, not after it
        # Once per run, before the first write: a broken chain refuses the whole apply. Appends
        # then only verify what others added since (the backend keeps the verified head).
        backend.verify_audit()
    writes = WHOLE if backend.capabilities.transactions else EACH
    catalogue = backend.catalogue()
    run = _Run(backend, catalogue, writes, force, commit, stopped)
    return [_apply_customer(c, run) for c in plan.customers]


@dataclass(frozen=True)
class _Run:
    """What every customer of one apply shares."""

    backend: Backend
    catalogue: Catalogue
    writes: Writes
    force: bool
    commit: str | None
    stop: Callable[[], bool]


def _apply_customer(customer_plan: CustomerPlan, run: _Run) -> ApplyOutcome:
    cid = customer_plan.customer
    skipped = _not_applied(customer_plan, run)
    if skipped is not None:
        return skipped
    try:
        with run.backend.customer_session(cid, run.catalogue) as session:
            state = session.read()
            refused = _refused(customer_plan, state)
            if refused is not None:
                return refused
            if run.stop():
                # Asked while the lock was taken and the state read: nothing is written yet.
                return _not_started(customer_plan)
            now = datetime.now(UTC).isoformat(timespec="seconds")
            fp = customer_plan.fingerprint

            def record(changes: list[Change]) -> None:
                _record(session, changes, cid, fp, now, run.commit)

            return run.writes.write(session, customer_plan, record, run)
    except ReconcilerError as exc:
        return ApplyOutcome(cid, FAILED, f"{exc}{run.writes.failed_suffix}")


def _not_applied(customer_plan: CustomerPlan, run: _Run) -> ApplyOutcome | None:
    """The outcome of a customer that is not even locked: problems, unsafe, nothing, stopping."""
    cid = customer_plan.customer
    if customer_plan.errors:
        problems = f"{len(customer_plan.errors)} problem(s) in the plan"
        return ApplyOutcome(cid, SKIPPED, problems)
    if customer_plan.unsafe and not run.force:
        return ApplyOutcome(cid, UNSAFE, f"{customer_plan.unsafe_reason}")
    if not customer_plan.changes:
        return ApplyOutcome(cid, NOTHING)
    if run.stop():
        return _not_started(customer_plan)
    return None


def _not_started(customer_plan: CustomerPlan) -> ApplyOutcome:
    return ApplyOutcome(
        customer_plan.customer,
        NOT_STARTED,
        "nothing was changed for this customer",
        planned=len(customer_plan.changes),
    )


def _refused(customer_plan: CustomerPlan, state: CustomerState | None) -> ApplyOutcome | None:
    """STALE if billing changed since the plan, REFUSED if the plan oversteps (the state read
    under the lock); None if the changes may be written."""
    cid = customer_plan.customer
    if state is None or fingerprint(state) != customer_plan.fingerprint:
        from reconciler.staleness import explain_stale

        changed = explain_stale(customer_plan.snapshot, state)
        return ApplyOutcome(
            cid,
            STALE,
            "billing state changed since the plan was made; plan again"
            + "".join(f"\n    {line}" for line in changed),
        )
    refused = out_of_bounds(customer_plan.changes, state)
    if refused:
        return ApplyOutcome(
            cid,
            REFUSED,
            "the plan holds changes this customer may not make: " + "; ".join(refused[:5]),
        )
    return None


# ---- the two ways of writing a customer, chosen once per run from the backend's capabilities ---


Record = Callable[[list[Change]], None]


@dataclass(frozen=True)
class Writes:
    """How a customer's changes are written and audited, and what a failure leaves behind."""

    write: Callable[[CustomerSession, CustomerPlan, Record, _Run], ApplyOutcome]
    failed_suffix: str


def _write_whole(
    session: CustomerSession, customer_plan: CustomerPlan, record: Record, run: _Run
) -> ApplyOutcome:
    """With transactions: the changes, then their audit rows in the same transaction; both
    commit, or neither (a failure propagates and the session rolls the customer back)."""
    session.execute(customer_plan.changes)
    record(customer_plan.changes)
    return ApplyOutcome(customer_plan.customer, APPLIED, done=list(customer_plan.changes))


def _write_each(
    session: CustomerSession, customer_plan: CustomerPlan, record: Record, run: _Run
) -> ApplyOutcome:
    """Change by change: each write that reached billing is audited before the next starts, and
    a stop request ends the customer after the write in flight; ``done`` stays exact."""
    cid = customer_plan.customer
    planned = len(customer_plan.changes)

    def audit(change: Change) -> None:
        # Change by change on a backend that cannot roll back: every write that reached
        # billing is in the audit log before the next one starts.
        try:
            record([change])
        except (ReconcilerError, OSError) as exc:
            if isinstance(exc, AuditChainBroken) and exc.recorded:
                # Someone broke the chain during this run: the change is recorded after
                # the break all the same, and nothing more is written.
                raise BackendError(
                    f"{change.op} {change.account} reached billing and is recorded, but "
                    f"{exc}; stopped"
                ) from None
            raise BackendError(
                f"{change.op} {change.account} reached billing but could not be recorded in "
                f"the audit log {run.backend.audit_location()} ({exc}); stopped so that no "
                "further change goes unrecorded"
            ) from None

    try:
        session.execute(customer_plan.changes, on_written=audit, stop=run.stop)
    except ReconcilerError as exc:
        return ApplyOutcome(cid, FAILED, str(exc), done=session.done, planned=planned)
    done = session.done
    if len(done) < planned:
        # Only a stop request makes a session return early without an error.
        if not done:
            return _not_started(customer_plan)
        return ApplyOutcome(cid, INTERRUPTED, done=done, planned=planned)
    return ApplyOutcome(cid, APPLIED, done=done)


WHOLE = Writes(_write_whole, failed_suffix="; nothing was changed for this customer")
EACH = Writes(_write_each, failed_suffix="")


def out_of_bounds(changes: list[Change], state: CustomerState) -> list[str]:
    """Changes a customer's plan may never hold, whatever file it was read from.

    A plan made by ``plan`` never holds them; a saved plan is a file anyone could edit, so apply
    checks, against the state read under the lock, that every change stays on this customer's
    managed accounts and DID pool, off administrator-blocked accounts, within its self-care
    role and within its agreement (the rules of reconciler/rules.py, which the plan keeps too).
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
        if isinstance(item, CreateAccount):
            if existing is not None or item.kind != kind:
                found.append(f"{where}: the account exists already or its kind is not {kind}")
            created.add(item.account)
        elif existing is None and item.account not in created:
            found.append(f"{where}: no such account of customer {customer.id}")
        elif existing is not None and existing.blocked_by == "admin":
            found.append(f"{where}: blocked by the administrator")
        did = item.assigns_did
        if did is not None and did not in customer.dids:
            found.append(f"{where}: DID {did} is not in the customer's pool")
        if block_refused(customer, item):
            found.append(f"{where}: the self-care role does not allow blocking")
        for use in item.assigns:
            if product_fault(use.product, use.type, state.catalogue, customer) is not None:
                a_type = "an add-on" if use.type == "addon" else "a main"
                found.append(f"{where}: {use.product!r} is not {a_type} product of the agreement")
    found.extend(over_quantity(changes, state))
    return found


def over_quantity(changes: list[Change], state: CustomerState) -> list[str]:
    """Products whose use after the changes exceeds the agreement and grows (the plan's rule)."""
    usage = product_usage(state, changes)
    return [
        f"{use.product!r} would be used by {use.after} accounts; "
        f"the agreement allows {use.quantity}"
        for use in quantity_uses(state.customer, usage)
        if use.over
    ]


def _record(  # type: ignore[no-untyped-def]
    session, changes: list[Change], cid: int, fp: str | None, now: str, commit: str | None
) -> None:
    if not changes:
        return
    session.record(
        [
            AuditEntry(now, cid, c.op, c.account, c.to_dict(), fp or "", commit)
            for c in changes
        ]
    )
