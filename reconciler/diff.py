"""Diff one customer's spec against its billing state: its changes, problems and usage.

A purely computational function: it reads values, returns values, and touches nothing else.
The result is a ``CustomerPlan`` (reconciler/plan.py).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from typing import Any

from reconciler.changes import (
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
    sort_key,
)
from reconciler.model import (
    Account,
    Catalogue,
    CustomerSpec,
    CustomerState,
    DesiredAccount,
    Problem,
    ProductType,
    managed_kind,
)
from reconciler.plan import CustomerPlan, PlanOptions, unsafe_reason
from reconciler.rules import (
    ProductFault,
    block_refused,
    canonical_state,
    product_fault,
    product_usage,
    quantity_uses,
)
from reconciler.spec import LoadedSpec, customer_mismatch, unknown_customer

# ---- fingerprint ---------------------------------------------------------------------------------


def fingerprint(state: CustomerState) -> str:
    """Digest of everything a customer's plan is computed from (its canonical form)."""
    text = json.dumps(canonical_state(state), separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---- the plan ------------------------------------------------------------------------------------


def plan_customer(
    loaded: LoadedSpec, state: CustomerState | None, options: PlanOptions | None = None
) -> CustomerPlan:
    """The plan for one spec against its customer's state.

    A spec with errors (``loaded.spec`` None) is checked from what could be read of it
    (``loaded.checkable``): its problems are reported, but it gets no changes, no prune and no
    safety verdict, since entries that could not be read are missing from it.
    """
    spec = loaded.spec or loaded.checkable
    assert spec is not None, "plan_customer needs a spec whose customer can be read"
    partial = loaded.spec is None
    result = CustomerPlan(
        customer=spec.customer_id,
        file=loaded.file,
        name=spec.customer_name,
        errors=list(loaded.errors),
        warnings=list(loaded.warnings),
    )
    if state is None:
        result.errors.append(unknown_customer(loaded, spec))
        return result
    result.fingerprint = fingerprint(state)
    result.name = state.customer.name
    if options is not None and options.snapshot and not partial:
        from reconciler.staleness import state_snapshot

        result.snapshot = state_snapshot(state)
    mismatch = customer_mismatch(loaded, spec, state)
    if mismatch is not None:
        result.errors.append(mismatch)
        result.errors.sort(key=Problem.sort_key)
        return result
    _Planner(loaded, spec, state, result, options or PlanOptions(), partial=partial).run()
    if partial:
        result.changes.clear()
    result.changes.sort(key=sort_key)
    result.errors.sort(key=Problem.sort_key)
    result.warnings.sort(key=Problem.sort_key)
    return result


class _Planner:
    def __init__(
        self,
        loaded: LoadedSpec,
        spec: CustomerSpec,
        state: CustomerState,
        result: CustomerPlan,
        options: PlanOptions,
        *,
        partial: bool = False,
    ) -> None:
        self.spec = spec
        self.partial = partial
        self.doc = loaded.yaml
        self.state = state
        self.customer = state.customer
        self.catalogue = state.catalogue
        self.result = result
        self.options = options
        self.current: dict[str, Account] = {a.id: a for a in state.accounts}
        self.desired_ids = {d.id for d in self.spec.accounts}
        self.holder = {did: a.id for a in state.accounts for did in a.dids}
        self.pruned: set[str] = set()
        self.planned: list[DesiredAccount] = []  # desired accounts that end up open

    def problem(
        self, code: str, message: str, path: tuple[Any, ...], *, assigned: bool = True
    ) -> None:
        found = self.doc.problem(code, message, path)
        (self.result.errors if assigned else self.result.warnings).append(found)

    def emit(self, item: Change) -> None:
        self.result.changes.append(item)

    # -- the steps --

    def run(self) -> None:
        if not self.partial:
            # An entry that could not be read would look "not in spec": say nothing of removal.
            self.accounts_not_in_spec()
        for desired in self.spec.accounts:
            self.desired_account(desired)
        for desired in self.spec.unplaced:
            self.unplaced_dids(desired)
        self.quantities()
        if not self.partial:
            reason = unsafe_reason(self.state, self.result.changes, self.options)
            self.result.unsafe, self.result.unsafe_reason = reason is not None, reason

    def accounts_not_in_spec(self) -> None:
        for account in self.state.accounts:
            if account.id in self.desired_ids or not account.is_open:
                continue
            if managed_kind(account.id, self.customer.id) is None:
                continue  # unmanaged: never changed, but it counts and holds its DIDs
            if not self.spec.prune:
                self.result.warnings.append(
                    self.doc.problem(
                        "not_in_spec",
                        f"{account.id} ({account.name}) is in billing but not in the spec; "
                        "it is kept (set prune: true to terminate it)",
                        ("customer", "id"),
                    )
                )
                continue
            if account.blocked_by == "admin":
                self.problem(
                    "admin_blocked",
                    f"{account.id} is blocked by the administrator and cannot be terminated by "
                    "the customer; list it in the spec or ask the provider",
                    ("prune",),
                )
                continue
            self.pruned.add(account.id)
            for did in account.dids:
                self.emit(RemoveAlias(account.id, did=did))
            self.emit(TerminateAccount(account.id))

    def desired_account(self, desired: DesiredAccount) -> None:
        key_path = desired.path + ("extension" if desired.kind == "extension" else "number",)
        if desired.id in self.state.foreign_ids:
            self.problem(
                "account_id_taken",
                f"account ID {desired.id} belongs to another customer in billing; "
                "it cannot be managed from this spec",
                key_path,
            )
            return
        existing = self.current.get(desired.id)
        if existing is not None and not existing.is_open:
            self.problem(
                "account_terminated",
                f"{desired.id} was terminated in billing; its ID cannot be used again",
                key_path,
            )
            return
        self.planned.append(desired)
        before = len(self.result.changes)
        errors_before = len(self.result.errors)
        if existing is None:
            self.create(desired)
        else:
            self.update(desired, existing)
        made = self.result.changes[before:]
        if existing is not None and existing.blocked_by == "admin" and made:
            # Everything else about this account is moot: the customer cannot manage it.
            del self.result.errors[errors_before:]
            what = ", ".join(sorted({c.op for c in made}))
            self.problem(
                "admin_blocked",
                f"{desired.id} is blocked by the administrator; the customer cannot change it "
                f"(the spec asks for: {what})",
                key_path,
            )

    def create(self, desired: DesiredAccount) -> None:
        if desired.product is not None:
            self.check_product(desired.product, "main", desired.path + ("product",), assigned=True)
        addons = _unique(desired.addons)
        for addon in addons:
            index = desired.addons.index(addon)
            self.check_product(addon, "addon", desired.addon_path(index), assigned=True)
        created = CreateAccount(
            desired.id,
            kind=desired.kind,
            name=desired.name,
            product=desired.product,
            addons=tuple(addons),
            blocked=bool(desired.blocked),
        )
        self.emit(created)
        self.check_block_permission(desired, created)
        for index, did in enumerate(desired.dids):
            self.add_did(desired, index, did)

    def update(self, desired: DesiredAccount, existing: Account) -> None:
        path = desired.path
        new_product = desired.product is not None and existing.product != desired.product
        if desired.product is not None:
            self.check_product(desired.product, "main", path + ("product",), assigned=new_product)
        if new_product and desired.product is not None:
            self.emit(SetProduct(desired.id, from_=existing.product, to=desired.product))
        if existing.name != desired.name and "name" not in desired.unreadable:
            self.emit(SetName(desired.id, from_=existing.name, to=desired.name))
        wanted_addons = _unique(desired.addons)
        keep_addons = "addons" in desired.unreadable
        for addon in existing.addons:
            if addon not in wanted_addons and not keep_addons:
                self.emit(RemoveAddon(desired.id, product=addon))
        for addon in wanted_addons:
            index = desired.addons.index(addon)
            added = addon not in existing.addons
            self.check_product(addon, "addon", desired.addon_path(index), assigned=added)
            if added:
                self.emit(AddAddon(desired.id, product=addon))
        keep_dids = "dids" in desired.unreadable
        for did in existing.dids:
            if did not in desired.dids and not keep_dids:
                self.emit(RemoveAlias(desired.id, did=did))
        for index, did in enumerate(desired.dids):
            if did in existing.dids:
                if did not in self.customer.dids:
                    self.problem(
                        "did_not_owned",
                        f"DID {did} of {desired.id} is no longer in the customer's DID pool "
                        "(kept as it is)",
                        desired.did_path(index),
                        assigned=False,
                    )
                continue
            self.add_did(desired, index, did)
        if desired.blocked is True and existing.blocked_by is None:
            block = Block(desired.id)
            self.emit(block)
            self.check_block_permission(desired, block)
        elif desired.blocked is False and existing.blocked_by is not None:
            unblock = Unblock(desired.id)
            self.emit(unblock)
            if existing.blocked_by != "admin":
                self.check_block_permission(desired, unblock)

    def add_did(self, desired: DesiredAccount, index: int, did: str) -> None:
        path = desired.did_path(index)
        if did not in self.customer.dids:
            self.problem("did_not_owned", f"DID {did} is not in the customer's DID pool", path)
            return
        holder = self.holder.get(did)
        if did in self.state.foreign_dids:
            self.problem("did_in_use", f"DID {did} is held by another customer's account", path)
            return
        if holder is not None and holder != desired.id:
            if holder not in self.desired_ids and holder not in self.pruned:
                held = self.current[holder]
                why = (
                    "an account the reconciler does not manage"
                    if managed_kind(holder, self.customer.id) is None
                    else "an account the spec does not list (kept because prune is false)"
                )
                self.problem(
                    "did_in_use", f"DID {did} is held by {holder} ({held.name}), {why}", path
                )
                return
        self.emit(AddAlias(desired.id, did=did))

    def unplaced_dids(self, desired: DesiredAccount) -> None:
        """The DIDs of an entry whose account cannot be known (its extension is broken): a DID
        no account of the customer holds is a new assignment, and must be the customer's."""
        for index, did in enumerate(desired.dids):
            if did in self.holder:
                continue  # perhaps the very account the entry means: nothing can be said
            path = desired.did_path(index)
            if did in self.state.foreign_dids:
                self.problem("did_in_use", f"DID {did} is held by another customer's account", path)
            elif did not in self.customer.dids:
                self.problem("did_not_owned", f"DID {did} is not in the customer's DID pool", path)

    def check_block_permission(self, desired: DesiredAccount, item: Change) -> None:
        if block_refused(self.customer, item):
            what = "block" if item.sets_block else "unblock"
            self.problem(
                "block_not_permitted",
                f"the customer's self-care role does not allow it to {what} extensions "
                f"({desired.id})"
                + (f"; {self.customer.block_note}" if self.customer.block_note else ""),
                desired.path + ("blocked",),
            )

    def check_product(
        self, name: str, wanted: ProductType, path: tuple[Any, ...], *, assigned: bool
    ) -> None:
        fault = product_fault(name, wanted, self.catalogue, self.customer)
        if fault is not None:
            message = self.product_message(fault, name, wanted)
            self.problem(fault, message, path, assigned=assigned)

    def product_message(self, fault: ProductFault, name: str, wanted: ProductType) -> str:
        if fault == "unknown_product":
            close = difflib.get_close_matches(name, self.catalogue.names(), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            hint += _products_like(name, self.catalogue, wanted, but=close)
            return f"no product named {name!r}{hint}"
        if fault == "wrong_product_type":
            return (
                f"{name!r} is an add-on product; `product` needs a main product"
                if wanted == "main"
                else f"{name!r} is a main product; `addons` takes add-on products only"
            )
        allowed = sorted(
            n for n, _ in self.customer.agreement
            if (p := self.catalogue.by_name(n)) is not None and p.type == wanted
        )
        return f"{name!r} is not in the customer's agreement" + (
            f" (allowed: {', '.join(allowed)})" if allowed else ""
        )

    def quantities(self) -> None:
        """The agreement's products used before and after the changes; a use over the agreement
        that the plan grows is an error on the first entry that newly uses it."""
        usage = product_usage(self.state, self.result.changes)
        planned = {d.id: d for d in self.planned}
        self.result.usage = []
        for use in quantity_uses(self.customer, usage):
            product, now, then, quantity = use.product, use.before, use.after, use.quantity
            self.result.usage.append(
                {"product": product, "in_use": now, "planned": then, "quantity": quantity}
            )
            if not use.exceeded:
                continue
            message = (
                f"{product!r}: the spec wants {then} accounts to use it, the agreement allows "
                f"{quantity}, {now} use it now"
            )
            desired = planned.get(usage.newly.get(product, ""))
            if use.over and desired is not None:
                self.problem("quantity_exceeded", message, _use_path(desired, product))
            else:
                self.problem(
                    "quantity_exceeded", message + " (no new use is planned)", ("customer", "id"),
                    assigned=False,
                )


def _use_path(desired: DesiredAccount, product: str) -> tuple[Any, ...]:
    """Where ``desired`` asks for ``product``: its main product, or an add-on."""
    if product == desired.product or product not in desired.addons:
        return desired.path + ("product",)
    return desired.addon_path(desired.addons.index(product))


_LISTED_PRODUCTS = 5


def _products_like(name: str, catalogue: Catalogue, wanted: str, *, but: list[str]) -> str:
    """The products of the wanted type billing has, the closest to ``name`` first, a few at most:
    a misremembered name is usually found in them."""
    names = [p.name for p in catalogue.products if p.type == wanted and p.name not in but]
    if not names:
        return ""
    alike = {n: difflib.SequenceMatcher(None, name.lower(), n.lower()).ratio() for n in names}
    names.sort(key=lambda n: (-alike[n], n))
    shown = ", ".join(names[:_LISTED_PRODUCTS])
    more = f" and {len(names) - _LISTED_PRODUCTS} more" if len(names) > _LISTED_PRODUCTS else ""
    kind = "main" if wanted == "main" else "add-on"
    other = "other " if but else ""
    return f" ({other}{kind} products in billing: {shown}{more})"


def _unique(items: tuple[str, ...]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
