"""Writing one customer's changes to PortaBilling, one API call at a time, never twice.

A customer's changes cannot be one transaction here, so ``done`` must stay exact: a write whose
answer is lost (or cannot be read) is read back from billing, never blindly repeated; a fault is
checked against billing too, since a change already in effect (an earlier run's) is done. A
read-only fault stops everything at once. Each change is reported through ``on_written`` as soon
as it is in billing, so apply audits it before the next write starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.backends.base import AuditEntry, CustomerSession
from reconciler.backends.portabilling import fields as wire
from reconciler.backends.portabilling.audit import AuditLog
from reconciler.backends.portabilling.client import PortaBillingClient
from reconciler.backends.portabilling.errors import (
    BillingReadOnly,
    MalformedAnswer,
    OutcomeUnknown,
    PortaBillingAuthError,
    PortaBillingFault,
    TransportError,
)
from reconciler.backends.portabilling.reads import (
    EXTENSIONS_METHOD,
    RawCustomer,
    account_info,
    fetch_customer,
)
from reconciler.changes import Change, CreateAccount
from reconciler.errors import BackendError, ReconcilerError
from reconciler.model import Catalogue, CustomerState

Landed = Callable[[], None]
# Writes one change as PortaBilling calls: (session, change, landed) -> None (portabilling/ops.py).
Op = Callable[["PortaBillingSession", Change, Landed], None]


@dataclass
class Write:
    """One API call that changes billing, and how to tell from billing whether it happened.

    ``confirm`` reads billing and returns what the call would have answered when the change is
    in effect, or None when it is not.
    """

    method: str
    params: dict[str, Any]
    confirm: Callable[[], dict[str, Any] | None]
    what: str


class SafeWriter:
    """Sends writes so that each one happens at most once, and says so when it cannot tell.

    ``on_landed`` is called the moment a write is known to be in billing (answered, or confirmed
    by reading back), before anything else is read or parsed: the change is then audited even if
    what follows fails.
    """

    def __init__(self, client: PortaBillingClient) -> None:
        self.client = client
        self.on_landed: Callable[[], None] | None = None

    def perform(self, write: Write) -> dict[str, Any]:
        """Send a write; when its answer is lost, read billing back before deciding to resend."""
        answer = self._perform(write)
        if self.on_landed is not None:
            self.on_landed()
        return answer

    def _perform(self, write: Write) -> dict[str, Any]:
        try:
            return self.client.write(write.method, write.params)
        except OutcomeUnknown:
            pass
        except (BillingReadOnly, PortaBillingAuthError):
            raise
        except PortaBillingFault as fault:
            return self._settle_fault(write, fault)
        confirmed = self._confirm(write)
        if confirmed is not None:
            return confirmed
        # Billing shows the change was not made: sending it once more cannot make it twice.
        try:
            return self.client.write(write.method, write.params)
        except OutcomeUnknown as again:
            confirmed = self._confirm(write)
            if confirmed is not None:
                return confirmed
            raise BackendError(
                f"{write.what}: the outcome is unknown ({again.reason}, twice) and billing does "
                "not show the change; stopped so that nothing is written twice. Plan again to see "
                "billing's state."
            ) from None
        except (BillingReadOnly, PortaBillingAuthError):
            raise
        except PortaBillingFault as fault:
            return self._settle_fault(write, fault)

    def _settle_fault(self, write: Write, fault: PortaBillingFault) -> dict[str, Any]:
        # A fault is normally a refusal, but billing is the judge: a change already in effect
        # (a re-run after a lost answer, an account created by an earlier run) is done.
        if not fault.is_auth:
            confirmed = self._confirm(write)
            if confirmed is not None:
                return confirmed
        raise BackendError(f"{write.what}: {fault}") from None

    def _confirm(self, write: Write) -> dict[str, Any] | None:
        try:
            return write.confirm()
        except (PortaBillingFault, TransportError, MalformedAnswer) as exc:
            raise BackendError(
                f"{write.what}: the outcome is unknown and reading billing back failed too ({exc})"
            ) from None


class PortaBillingSession(CustomerSession):
    """One customer's apply: the frame around the ops (``ops``, from ``ops``), which it runs
    in plan order, reporting each change the moment it is in billing."""

    def __init__(
        self,
        client: PortaBillingClient,
        customer_id: int,
        catalogue: Catalogue,
        audit: AuditLog,
        perform: Op,
        blocking_roles: frozenset[int] | None = None,
    ) -> None:
        self.client = client
        self.customer_id = customer_id
        self.catalogue = catalogue
        self.audit = audit
        self.perform = perform
        self.blocking_roles = blocking_roles
        self.writer = SafeWriter(client)
        self.raw: RawCustomer | None = None
        self.written: list[Change] = []

    @property
    def done(self) -> list[Change]:
        return list(self.written)

    def read(self) -> CustomerState | None:
        self.raw = fetch_customer(self.client, self.customer_id, self.blocking_roles)
        return None if self.raw is None else self.raw.state(self.catalogue)

    def record(self, entries: list[AuditEntry]) -> None:
        self.audit.append(entries)

    def execute(
        self,
        changes: list[Change],
        *,
        on_written: Callable[[Change], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        if self.raw is None and self.read() is None:
            raise BackendError(f"billing has no customer {self.customer_id}")
        for item in changes:
            if stop is not None and stop():
                return
            landed = _Landing(item, self.written, on_written)
            self.writer.on_landed = landed
            try:
                self.perform(self, item, landed)
            except ReconcilerError as exc:
                if landed.done and not isinstance(exc, BillingReadOnly):
                    made = (
                        f"{item.account} was created in billing"
                        if isinstance(item, CreateAccount)
                        else f"{item.op} of {item.account} was made in billing"
                    )
                    raise BackendError(
                        f"{made}, but {exc}. Its remaining settings were not written; run apply "
                        "again to finish it"
                    ) from None
                raise
            finally:
                self.writer.on_landed = None
            landed()

    # -- lookups shared by the ops --

    def account(self, account_id: str) -> dict[str, Any]:
        assert self.raw is not None
        info = self.raw.accounts.get(account_id)
        if info is None:
            raise BackendError(
                f"account {account_id} is not in billing for customer {self.customer_id}"
            )
        return info

    def product_id(self, name: str | None) -> int:
        product = None if name is None else self.catalogue.by_name(name)
        if product is None:
            raise BackendError(f"no product named {name!r} in billing")
        return product.id

    def account_info(self, **key: Any) -> dict[str, Any] | None:
        return account_info(self.client, **key)

    def aliases(self, i_account: int) -> dict[str, int]:
        items = self.client.read_list(
            wire.ALIAS_LIST_METHOD,
            {wire.ALIAS_LIST_PARAM: i_account},
            wire.ALIAS_LIST,
        )
        return {
            did: i_alias
            for i_alias, did in wire.aliases_of({wire.ALIAS_LIST: items})
            if i_alias is not None
        }

    def extension_of(self, i_account: int) -> dict[str, Any] | None:
        return self.find_extension(lambda e: int_or_none(e.get("i_account")) == i_account)

    def find_extension(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """The first customer extension ``wanted`` accepts, reading the list page by page and
        stopping at the page that holds it."""
        for extension in self.client.iter_list(
            EXTENSIONS_METHOD, {"i_customer": self.customer_id}, "extensions_list"
        ):
            if wanted(extension):
                return extension
        return None


def int_or_none(value: Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


class _Landing:
    """Marks a change written the moment it is in billing (once): for a create, as soon as the
    account exists, before its add-ons and block follow."""

    def __init__(
        self, item: Change, written: list[Change], on_written: Callable[[Change], None] | None
    ) -> None:
        self.item = item
        self.written = written
        self.on_written = on_written
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        self.written.append(self.item)
        if self.on_written is not None:
            self.on_written(self.item)
