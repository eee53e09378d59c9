"""The backend interface: what the planner reads and what apply writes.

A backend reads one customer at a time (a plan over a thousand customers never holds them all)
and applies one customer's changes inside ``customer_session``, which excludes every other
apply on the same customer for as long as it is held.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

# AuditEntry lives with the chain rule that hashes it; backends and callers import it from here.
from reconciler.auditchain import AuditEntry, Stored
from reconciler.changes import Change
from reconciler.model import Catalogue, CustomerState

if TYPE_CHECKING:
    from reconciler.backends import BackendSettings, BackendURL
    from reconciler.doctor_report import DoctorReport
    from reconciler.statefile import BillingState

__all__ = ["AuditEntry", "Capabilities", "Stored"]


@dataclass(frozen=True)
class Capabilities:
    """What a kind of backend can do, declared by its class. Apply, the planner and the commands
    ask these; none of them looks at a backend's type or URL to decide.

    ``transactions``: a customer's changes and their audit rows commit whole, or not at all
    (otherwise the backend writes change by change, and apply audits each one at once).
    ``concurrent_reads``: ``read_customers`` reads many customers its own way (concurrently,
    over the network), so the planner loads the next specs meanwhile.
    ``state_files``: ``state load`` and ``state dump`` (``load_state``, ``dump_state``).
    ``diagnostics``: ``reconciler doctor`` checks it, read-only (``diagnose``).
    """

    transactions: bool = False
    concurrent_reads: bool = False
    state_files: bool = False
    diagnostics: bool = False


class AuditStore(Protocol):
    """Where a backend keeps its audit log, hash-chained (reconciler.auditchain).

    It keeps what it verified for the life of the backend object, so a run reads and hashes the
    log once; every append first catches up with what others added since, under the lock that
    serialises appends, and chains onto the head it found.
    """

    def records(self) -> Iterator[Stored]:
        """Every stored entry, oldest first, as read (unreadable ones included), read afresh."""

    def verify(self) -> None:
        """Raise AuditChainBroken unless the log, as far as this run knows it, verifies."""

    def head(self) -> tuple[int, str]:
        """(entries, head hash) after this run's appends, verified."""

    def new_chain(self, reason: str) -> AuditEntry:
        """Record a restart over a broken chain; refuse (ReconcilerError) a chain that is whole."""


class CustomerSession(abc.ABC):
    """Exclusive access to one customer while its changes are written."""

    @abc.abstractmethod
    def read(self) -> CustomerState | None:
        """The customer's state, read fresh inside the session."""

    @abc.abstractmethod
    def execute(
        self,
        changes: list[Change],
        *,
        on_written: Callable[[Change], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        """Write ``changes`` in order. On failure raise; ``done`` tells what was written.

        A backend that writes change by change (no ``capabilities.transactions``) calls
        ``on_written`` right after each change reached billing, before the next write, so the
        caller can audit it at once; and asks ``stop()`` before each write, returning early when
        it says so (an interrupt: the write in flight finishes, nothing more starts). A backend
        with transactions writes the customer whole and may ignore both.
        """

    @property
    @abc.abstractmethod
    def done(self) -> list[Change]:
        """The changes written so far in this session (all or none with transactions)."""

    @abc.abstractmethod
    def record(self, entries: list[AuditEntry]) -> None:
        """Append to the audit log (in the same transaction as the changes where possible)."""


class Backend(abc.ABC):
    """A billing system the reconciler reads and changes."""

    capabilities: ClassVar[Capabilities] = Capabilities()
    description: ClassVar[str]  # for messages: "the embedded sqlite backend"
    url: str
    audit: AuditStore

    @classmethod
    @abc.abstractmethod
    def open(cls, where: BackendURL, settings: BackendSettings, *, create: bool = False) -> Backend:
        """The backend ``where`` names (``reconciler.backends.open_backend``)."""

    @classmethod
    def diagnose(
        cls,
        url: str,
        *,
        customer_id: int | None,
        spec_customer: Callable[[], int | None],
        env: Mapping[str, str],
    ) -> DoctorReport:
        """``reconciler doctor``: read-only checks of the backend at ``url``, for a backend
        whose ``capabilities.diagnostics`` says so. They open no backend: reporting why one
        would not open is part of their job."""
        raise NotImplementedError(f"{cls.__name__} declares no diagnostics")

    @abc.abstractmethod
    def catalogue(self) -> Catalogue:
        """The product catalogue."""

    @abc.abstractmethod
    def read_customer(self, customer_id: int, catalogue: Catalogue) -> CustomerState | None:
        """One customer's state, or None if billing has no such customer."""

    def read_customers(
        self, customer_ids: Iterable[int], catalogue: Catalogue
    ) -> Iterator[tuple[int, CustomerState | None]]:
        """States of many customers, in the order given. A backend that reads them its own way
        (concurrently) overrides this and declares ``capabilities.concurrent_reads``."""
        for customer_id in customer_ids:
            yield customer_id, self.read_customer(customer_id, catalogue)

    @abc.abstractmethod
    def customer_session(
        self, customer_id: int, catalogue: Catalogue
    ) -> AbstractContextManager[CustomerSession]:
        """Exclusive access to one customer for apply (waits for, or refuses, a concurrent
        apply)."""

    @abc.abstractmethod
    def history(self, customer_id: int | None = None) -> list[AuditEntry]:
        """The audit log, oldest first."""

    def audit_records(self) -> Iterator[Stored]:
        """The audit log as stored, for ``history`` and ``history --verify``."""
        return self.audit.records()

    def verify_audit(self) -> None:
        """Raise AuditChainBroken if the audit log's chain is broken; apply asks before writing."""
        self.audit.verify()

    def audit_head(self) -> tuple[int, str]:
        """(entries, head hash) of the audit log, after this run's appends."""
        return self.audit.head()

    def new_chain(self, reason: str) -> AuditEntry:
        """Start a new chain over a broken one; the restart is itself an entry of the log."""
        return self.audit.new_chain(reason)

    def audit_location(self) -> str:
        """Where ``history`` reads and apply records the audit log, for messages to a person."""
        return self.url

    def audit_exists(self) -> bool:
        """Whether the audit log exists yet (a local file is created by the first applied
        change)."""
        return True

    def check_audit_writable(self) -> None:  # noqa: B027 - optional hook
        """Raise BackendError if the audit log cannot take entries; apply asks before its first
        write.

        A backend that cannot roll back records each change right after writing it: finding out
        then that the log is unwritable would leave one change in billing and not in the log.
        The default has nothing to check (a backend with transactions audits in them).
        """

    def load_state(self, state: BillingState) -> None:
        """Replace the whole billing state, keeping the audit log (``capabilities.state_files``)."""
        raise NotImplementedError(f"{type(self).__name__} has no state files")

    def dump_state(self) -> BillingState:
        """The whole billing state (``capabilities.state_files``)."""
        raise NotImplementedError(f"{type(self).__name__} has no state files")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
