"""Reading one customer from PortaBilling, and turning the answers into a CustomerState.

A customer costs two single calls (customer, agreement) and three paged lists (DIDs, accounts,
extensions); the product catalogue is read once per run. An answer that does not have the shape
the wire contract describes becomes one clear ``MalformedAnswer``, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from reconciler.backends.portabilling import fields as wire
from reconciler.backends.portabilling.client import PortaBillingClient, object_in
from reconciler.backends.portabilling.errors import MalformedAnswer, PortaBillingFault
from reconciler.model import (
    OPEN,
    TERMINATED,
    Account,
    Catalogue,
    Customer,
    CustomerState,
    Product,
    extension_account_id,
    managed_kind,
)

PRODUCTS_METHOD = "Product/get_product_list"
CUSTOMER_METHOD = "Customer/get_customer_info"
AGREEMENT_METHOD = "Customer/get_customer_agreement_info"
NUMBERS_METHOD = "DID/get_number_list"
ACCOUNTS_METHOD = "Account/get_account_list"
EXTENSIONS_METHOD = "Customer/get_extensions_list"
ACCOUNT_INFO_METHOD = "Account/get_account_info"


@contextmanager
def understood(method: str) -> Iterator[None]:
    """Turn a missing or mistyped field deep inside an answer into one clear error."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedAnswer(
            method, f"a field the reconciler cannot use ({type(exc).__name__}: {exc})"
        ) from None


def read_catalogue(client: PortaBillingClient) -> Catalogue:
    return catalogue_from(client.read_list(PRODUCTS_METHOD, {}, "product_list"))


def catalogue_from(product_list: list[dict[str, Any]]) -> Catalogue:
    with understood(PRODUCTS_METHOD):
        products = [
            Product(
                int(p["i_product"]),
                str(p["name"]),
                "addon" if int(p.get("addon_priority") or 0) > 0 else "main",
            )
            for p in product_list
        ]
    return Catalogue(tuple(sorted(products, key=lambda p: p.id)))


@dataclass
class RawCustomer:
    """One customer as PortaBilling lists it, keyed for the writes that follow a read.

    ``accounts`` is keyed by the account ID the reconciler manages: billing's own ID, except for
    an extension's account whose ID billing generated in another format than ``ph{c}x{ext}``;
    that one is keyed (and planned) as ``ph{c}x{ext}`` through the customer extension that links
    it, while its row keeps billing's ID (``renamed`` maps one to the other).
    """

    customer_id: int
    info: dict[str, Any]
    agreement: list[dict[str, Any]]  # agreement_condition_list, whatever wrapped it
    numbers: list[str]
    accounts: dict[str, dict[str, Any]]  # managed account ID -> account_info
    extensions: dict[int, dict[str, Any]] = field(default_factory=dict)  # i_account -> extension
    may_block: bool = False
    block_note: str | None = None
    zone: tzinfo = UTC  # the server's time zone, for add-on end dates
    agreement_shape: str = wire.AGREEMENT_INFO
    renamed: dict[str, str] = field(default_factory=dict)  # managed ID -> billing's ID
    # Whether this server shows accounts' notes: only then does a block carry the marker.
    notes_shown: bool = False

    def state(self, catalogue: Catalogue) -> CustomerState:
        with understood(ACCOUNTS_METHOD):
            return self._state(catalogue)

    def _state(self, catalogue: Catalogue) -> CustomerState:
        def product_name(i_product: int) -> str:
            product = catalogue.by_id(i_product)
            return product.name if product else str(i_product)

        with understood(AGREEMENT_METHOD):
            agreement = sorted(
                (product_name(pid), qty)
                for pid, qty in wire.agreement_quantities(self.agreement)
            )
        customer = Customer(
            id=self.customer_id,
            name=str(self.info.get("name", "")),
            block_extensions=self.may_block,
            block_note=None if self.may_block else self.block_note,
            agreement=tuple(agreement),
            dids=frozenset(self.numbers),
        )
        now = datetime.now(UTC)
        accounts = [
            self._account(account_id, info, catalogue, now)
            for account_id, info in sorted(self.accounts.items())
        ]
        return CustomerState(customer, tuple(accounts), catalogue)

    def _account(
        self, account_id: str, info: dict[str, Any], catalogue: Catalogue, now: datetime
    ) -> Account:
        i_product = info.get("i_product")
        product = catalogue.by_id(int(i_product)) if i_product not in (None, "") else None
        addons = []
        for addon in wire.active_addons(info, now, self.zone):
            known = catalogue.by_id(int(addon["i_product"]))
            addons.append(known.name if known else str(addon["i_product"]))
        status = TERMINATED if wire.is_terminated(info) else OPEN
        return Account(
            id=account_id,
            customer=self.customer_id,
            name=self._name(account_id, info, status),
            product=product.name if product else None,
            addons=tuple(sorted(set(addons))),
            dids=tuple(sorted(did for _, did in wire.aliases_of(info))),
            blocked_by=wire.blocked_by(info),
            status=status,
        )

    def _name(self, account_id: str, info: dict[str, Any], status: str) -> str:
        """The customer extension's name for an extension, firstname for everything else."""
        if managed_kind(account_id, self.customer_id) == "extension":
            extension = self.extensions.get(int(info["i_account"]))
            if extension is not None:
                return str(extension.get("name") or "")
            if status == OPEN:
                # An open extension account that no customer extension points to (made by hand,
                # or by a first-version run that stopped between its two calls) reads as
                # nameless: the plan then renames it, and the rename links the extension.
                return ""
        return str(info.get("firstname") or "")


def fetch_customer(
    client: PortaBillingClient, customer_id: int, blocking_roles: frozenset[int] | None = None
) -> RawCustomer | None:
    params = {"i_customer": customer_id}
    try:
        info = object_in(client.read(CUSTOMER_METHOD, params), "customer_info", CUSTOMER_METHOD)
    except PortaBillingFault as fault:
        if fault.is_not_found:
            return None
        raise
    if info is None:
        return None
    agreement_shape, agreement = read_agreement(client, customer_id)
    numbers = client.read_list(NUMBERS_METHOD, params, "number_list")
    accounts = client.read_list(
        ACCOUNTS_METHOD,
        {**params, **wire.ACCOUNT_LIST_PARAMS},
        "account_list",
        with_total=True,
    )
    extensions = client.read_list(EXTENSIONS_METHOD, params, "extensions_list")
    with understood(NUMBERS_METHOD):
        dids = [str(n["number"]) for n in numbers]
    with understood(ACCOUNTS_METHOD):
        rows = [a for a in accounts if not wire.is_alias_entry(a)]
        by_id = {str(a["id"]): a for a in rows}
    with understood(EXTENSIONS_METHOD):
        linked = {
            int(e["i_account"]): e for e in extensions if e.get("i_account") not in (None, "")
        }
        managed, renamed = managed_ids(customer_id, by_id, linked)
    zone: tzinfo = UTC
    with understood(ACCOUNTS_METHOD):
        dated = any(wire.has_end_dates(a) for a in rows)
    if dated:
        zone = client.server_zone()[0]  # asked once per run, and only when a date needs it
    return RawCustomer(
        customer_id=customer_id,
        info=info,
        agreement=agreement,
        numbers=dids,
        accounts=managed,
        extensions=linked,
        may_block=wire.customer_may_block(info, blocking_roles),
        block_note=wire.block_note(info, blocking_roles),
        zone=zone,
        agreement_shape=agreement_shape,
        renamed=renamed,
        notes_shown=any(wire.NOTE in row for row in rows),
    )


def read_agreement(
    client: PortaBillingClient, customer_id: int
) -> tuple[str, list[dict[str, Any]]]:
    """(the answer's shape, the agreement's conditions), or one clear MalformedAnswer naming the
    keys the server sent."""
    answer = client.read(AGREEMENT_METHOD, {"i_customer": customer_id})
    try:
        return wire.agreement_of(answer)
    except wire.AgreementShapeError as exc:
        raise MalformedAnswer(
            AGREEMENT_METHOD,
            f"{exc} for customer {customer_id}; the reconciler cannot check quantities without "
            "the agreement (run `reconciler doctor` to see what the server returns)",
        ) from None
    except ValueError as exc:
        raise MalformedAnswer(AGREEMENT_METHOD, str(exc)) from None


def managed_ids(
    customer_id: int, by_id: dict[str, dict[str, Any]], linked: dict[int, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The accounts keyed by the ID the reconciler manages them under, and the renamed ones.

    An account whose ID billing generated in its own format (not ``ph{c}x{ext}``) is the
    extension's that links it (Customer/get_extensions_list ``id`` -> ``i_account``), so it is
    managed as ``ph{c}x{ext}``: never by guessing the ID, always through the link. An account
    whose own ID is already managed keeps it, and so does a linked one whose managed ID another
    account holds (it stays unmanaged: the reconciler never touches what it cannot tell apart).
    """
    managed = dict(by_id)
    renamed: dict[str, str] = {}
    for billing_id, row in by_id.items():
        if managed_kind(billing_id, customer_id) is not None:
            continue
        extension = (
            linked.get(int(row["i_account"])) if row.get("i_account") not in (None, "") else None
        )
        number = str(extension.get("id") or "") if extension is not None else ""
        wanted = extension_account_id(customer_id, number)
        if not number or managed_kind(wanted, customer_id) != "extension" or wanted in managed:
            continue
        managed[wanted] = managed.pop(billing_id)
        renamed[wanted] = billing_id
    return managed, renamed


def account_info(client: PortaBillingClient, **key: Any) -> dict[str, Any] | None:
    """One account by ``i_account=`` or ``id=``, or None when billing has none."""
    return object_in(client.read(ACCOUNT_INFO_METHOD, key), "account_info", ACCOUNT_INFO_METHOD)
