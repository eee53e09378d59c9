"""The rules a plan must keep, each written once: the plan (reconciler/diff.py) reports them as
problems, apply (reconciler/apply.py) enforces them again on a saved plan, and the billing state
file (reconciler/statefile.py) checks its own products with them.

- a product fits where it is put (a main product as ``product``, an add-on in ``addons``) and is
  in the customer's agreement;
- a product's use after the changes stays within the agreed quantity, or at least does not grow;
- a block or unblock needs the customer's self-care permission;
- one canonical form of a customer's state, which both the fingerprint and the saved plan's
  snapshot (reconciler/staleness.py) are made from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.changes import Change, ProductUse, TerminateAccount
from reconciler.model import Catalogue, Customer, CustomerState, Product, ProductType

# ---- products ---------------------------------------------------------------------------------

ProductFault = Literal["unknown_product", "wrong_product_type", "product_not_in_agreement"]


def type_fault(product: Product | None, wanted: ProductType) -> ProductFault | None:
    """Why a product (None: not in the catalogue) cannot be put where ``wanted`` is asked."""
    if product is None:
        return "unknown_product"
    if product.type != wanted:
        return "wrong_product_type"
    return None


def product_fault(
    name: str, wanted: ProductType, catalogue: Catalogue, customer: Customer
) -> ProductFault | None:
    """Why ``name`` cannot be assigned as a ``wanted`` product of ``customer``, or None."""
    fault = type_fault(catalogue.by_name(name), wanted)
    if fault is None and customer.quantity_for(name) is None:
        return "product_not_in_agreement"
    return fault


def _fits(use: ProductUse, catalogue: Catalogue) -> bool:
    """A use of the wrong type is refused as such (one mistake, one problem): it does not count
    against the quantity too. A product billing does not know counts (nothing can be said)."""
    product = catalogue.by_name(use.product)
    return product is None or product.type == use.type


# ---- quantities -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    """How many open accounts use each product before and after a customer's changes."""

    before: dict[str, int]
    after: dict[str, int]
    # Product -> the first account (in the changes' order) that newly uses it.
    newly: dict[str, str]


def _uses(account: Any) -> set[ProductUse]:
    uses = {ProductUse(addon, "addon") for addon in account.addons}
    if account.product:
        uses.add(ProductUse(account.product, "main"))
    return uses


def _products(uses: Iterable[ProductUse]) -> set[str]:
    return {use.product for use in uses}


def product_usage(state: CustomerState, changes: Iterable[Change]) -> Usage:
    """Each product's use by the customer's open accounts, now and once ``changes`` are made.

    An account counts once per product it uses, as main product or add-on.
    """
    before: dict[str, int] = {}
    for account in state.accounts:
        if account.is_open:
            for product in account.products_used:
                before[product] = before.get(product, 0) + 1
    accounts = None
    touched: dict[str, tuple[set[ProductUse], set[ProductUse]]] = {}
    for item in changes:
        if item.account not in touched:
            if accounts is None:
                accounts = {a.id: a for a in state.accounts}
            found = accounts.get(item.account)
            start = _uses(found) if found is not None and found.is_open else set()
            touched[item.account] = (start, set(start))
        uses = touched[item.account][1]
        if isinstance(item, TerminateAccount):
            uses.clear()
            continue
        uses.difference_update(item.frees)
        uses.update(use for use in item.assigns if _fits(use, state.catalogue))
    after = dict(before)
    newly: dict[str, str] = {}
    for account_id, (start, end) in touched.items():
        was, now = _products(start), _products(end)
        for product in was - now:
            after[product] -= 1
        for product in now - was:
            after[product] = after.get(product, 0) + 1
            newly.setdefault(product, account_id)
    return Usage(before, after, newly)


@dataclass(frozen=True, slots=True)
class QuantityUse:
    """One product of the agreement: its quantity (0 = unlimited) and its use before and after."""

    product: str
    quantity: int
    before: int
    after: int

    @property
    def exceeded(self) -> bool:
        return self.quantity != 0 and self.after > self.quantity

    @property
    def over(self) -> bool:
        """Over the agreement and growing: what a plan may not do. A use already over the
        agreement that the changes do not grow is only worth a warning."""
        return self.exceeded and self.after > self.before


def quantity_uses(customer: Customer, usage: Usage) -> list[QuantityUse]:
    """Every product of the customer's agreement, by name, with its use before and after."""
    return [
        QuantityUse(product, quantity, usage.before.get(product, 0), usage.after.get(product, 0))
        for product, quantity in sorted(customer.agreement)
    ]


# ---- self-care permission ------------------------------------------------------------------------


def block_refused(customer: Customer, item: Change) -> bool:
    """Whether the customer's self-care role forbids ``item`` (it blocks or unblocks)."""
    return item.needs_self_care_block and not customer.block_extensions


# ---- the canonical form of a customer's state ---------------------------------------------------

# The fields of an account in the canonical form, after its ID.
ACCOUNT_FIELDS = ("name", "product", "addons", "dids", "blocked_by", "status")


def canonical_state(state: CustomerState) -> dict[str, Any]:
    """Everything a customer's plan is computed from, sorted, as plain JSON data.

    The fingerprint (reconciler/diff.py) digests exactly this; the snapshot a saved plan keeps
    (reconciler/staleness.py) is this reshaped for reading. Accounts are rows: ID, then
    ``ACCOUNT_FIELDS``.
    """
    customer = state.customer
    return {
        "customer": [customer.id, customer.name, customer.block_extensions],
        "agreement": sorted(customer.agreement),
        "pool": sorted(customer.dids),
        "accounts": [
            [a.id, a.name, a.product, sorted(a.addons), sorted(a.dids), a.blocked_by, a.status]
            for a in sorted(state.accounts, key=lambda a: a.id)
        ],
        "catalogue": sorted((p.id, p.name, p.type) for p in state.catalogue.products),
        "foreign": [sorted(state.foreign_ids), sorted(state.foreign_dids)],
    }
