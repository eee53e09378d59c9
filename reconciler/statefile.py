"""The billing state file: the provider's products, customers and accounts in one YAML document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.errors import StateFileError
from reconciler.model import OPEN, Account, Customer, Problem, Product, ProductType
from reconciler.rules import type_fault
from reconciler.schemacheck import schema_check
from reconciler.yamlload import STATE_LIMITS, LoadedYaml, load_yaml


@dataclass(frozen=True)
class BillingState:
    products: tuple[Product, ...]
    customers: tuple[Customer, ...]
    accounts: tuple[Account, ...]


def load_state_file(path: str) -> BillingState:
    """Read and check a billing state file; raise StateFileError listing every problem."""
    loaded = load_yaml(path, path, STATE_LIMITS)
    problems = list(loaded.problems)
    if not problems and loaded.root is None:
        problems.append(Problem("schema", "the file is empty", path))
    if not problems and not isinstance(loaded.data, dict):
        problems.append(loaded.problem("schema", "a billing state file must be a mapping"))
    if not problems:
        problems.extend(schema_check(loaded, "billing-state.schema.json"))
    if problems:
        raise StateFileError(f"{path}: the billing state file is not valid", problems)
    state, problems = _build(loaded)
    if problems:
        raise StateFileError(f"{path}: the billing state file is not consistent", problems)
    return state


def _build(loaded: LoadedYaml) -> tuple[BillingState, list[Problem]]:
    builder = _Builder(loaded)
    products = builder.products(loaded.data["products"])
    customers = builder.customers(loaded.data["customers"], products)
    accounts = builder.accounts(loaded.data.get("accounts") or [], products, customers)
    state = BillingState(
        products=tuple(sorted(products.values(), key=lambda p: p.id)),
        customers=tuple(sorted(customers.values(), key=lambda c: c.id)),
        accounts=tuple(sorted(accounts.values(), key=lambda a: (a.customer, a.id))),
    )
    return state, builder.problems


class _Builder:
    """Builds the state of a file that passed its schema, collecting every inconsistency."""

    def __init__(self, loaded: LoadedYaml) -> None:
        self.loaded = loaded
        self.problems: list[Problem] = []

    def problem(self, code: str, message: str, path: tuple[Any, ...]) -> None:
        self.problems.append(self.loaded.problem(code, message, path))

    def products(self, entries: list[dict[str, Any]]) -> dict[str, Product]:
        products: dict[str, Product] = {}
        ids: set[int] = set()
        for index, entry in enumerate(entries):
            if entry["name"] in products or entry["id"] in ids:
                self.problem(
                    "schema",
                    f"product {entry['name']!r} or id {entry['id']} is listed twice",
                    ("products", index),
                )
                continue
            ids.add(entry["id"])
            products[entry["name"]] = Product(entry["id"], entry["name"], entry["type"])
        return products

    def customers(
        self, entries: list[dict[str, Any]], products: dict[str, Product]
    ) -> dict[int, Customer]:
        customers: dict[int, Customer] = {}
        pool_owner: dict[str, int] = {}
        for index, entry in enumerate(entries):
            path = ("customers", index)
            if entry["id"] in customers:
                self.problem("schema", f"customer {entry['id']} is listed twice", path + ("id",))
                continue
            agreement = self.agreement(entry.get("agreement") or [], path, products)
            for did_index, did in enumerate(entry.get("dids") or []):
                if did in pool_owner:
                    self.problem(
                        "did_duplicate",
                        f"DID {did} is in the pools of customers {pool_owner[did]} and "
                        f"{entry['id']}",
                        path + ("dids", did_index),
                    )
                pool_owner[did] = entry["id"]
            customers[entry["id"]] = Customer(
                id=entry["id"],
                name=entry["name"],
                block_extensions=bool(
                    (entry.get("self_care") or {}).get("block_extensions", False)
                ),
                agreement=agreement,
                dids=frozenset(entry.get("dids") or ()),
            )
        return customers

    def agreement(
        self, items: list[dict[str, Any]], path: tuple[Any, ...], products: dict[str, Product]
    ) -> tuple[tuple[str, int], ...]:
        agreement: list[tuple[str, int]] = []
        agreed: set[str] = set()
        for index, item in enumerate(items):
            where = path + ("agreement", index, "product")
            if item["product"] in agreed:
                self.problem(
                    "schema", f"the agreement lists product {item['product']!r} twice", where
                )
                continue
            agreed.add(item["product"])
            if item["product"] not in products:
                self.problem(
                    "unknown_product",
                    f"the agreement names product {item['product']!r}, which the catalogue lacks",
                    where,
                )
            agreement.append((item["product"], item["quantity"]))
        return tuple(sorted(agreement))

    def accounts(
        self,
        entries: list[dict[str, Any]],
        products: dict[str, Product],
        customers: dict[int, Customer],
    ) -> dict[str, Account]:
        accounts: dict[str, Account] = {}
        holder: dict[str, str] = {}
        for index, entry in enumerate(entries):
            path = ("accounts", index)
            if entry["id"] in accounts:
                self.problem("schema", f"account {entry['id']} is listed twice", path + ("id",))
                continue
            if entry["customer"] not in customers:
                self.problem(
                    "unknown_customer",
                    f"account {entry['id']} names customer {entry['customer']}, "
                    "which is not listed",
                    path + ("customer",),
                )
            self.account_products(entry, path, products)
            dids = tuple(entry.get("dids") or ())
            for did_index, did in enumerate(dids):
                if did in holder:
                    self.problem(
                        "did_duplicate",
                        f"DID {did} is on accounts {holder[did]} and {entry['id']}",
                        path + ("dids", did_index),
                    )
                holder[did] = entry["id"]
            accounts[entry["id"]] = Account(
                id=entry["id"],
                customer=entry["customer"],
                name=entry["name"],
                product=entry.get("product"),
                addons=tuple(sorted(set(entry.get("addons") or ()))),
                dids=tuple(sorted(dids)),
                blocked_by=entry.get("blocked_by"),
                status=entry.get("status", OPEN),
            )
        return accounts

    def account_products(
        self, entry: dict[str, Any], path: tuple[Any, ...], products: dict[str, Product]
    ) -> None:
        """An account's main product and add-ons must be in the catalogue, of their type."""
        assigned: list[tuple[str, ProductType, tuple[Any, ...]]] = []
        if entry.get("product") is not None:
            assigned.append((entry["product"], "main", path + ("product",)))
        for index, addon in enumerate(entry.get("addons") or []):
            assigned.append((addon, "addon", path + ("addons", index)))
        for name, wanted, where in assigned:
            fault = type_fault(products.get(name), wanted)
            if fault == "unknown_product":
                self.problem(fault, f"no product named {name!r}", where)
            elif fault == "wrong_product_type":
                message = (
                    f"{name!r} is an add-on, not a main product"
                    if wanted == "main"
                    else f"{name!r} is a main product, not an add-on"
                )
                self.problem(fault, message, where)


def state_to_dict(state: BillingState) -> dict[str, Any]:
    """The state file form: sorted, with status/addons/dids always and blocked_by only when set."""
    return {
        "products": [
            {"id": p.id, "name": p.name, "type": p.type}
            for p in sorted(state.products, key=lambda p: p.id)
        ],
        "customers": [
            {
                "id": c.id,
                "name": c.name,
                "self_care": {"block_extensions": c.block_extensions},
                "agreement": [
                    {"product": name, "quantity": qty} for name, qty in sorted(c.agreement)
                ],
                "dids": sorted(c.dids),
            }
            for c in sorted(state.customers, key=lambda c: c.id)
        ],
        "accounts": [
            account_to_dict(a) for a in sorted(state.accounts, key=lambda a: (a.customer, a.id))
        ],
    }


def account_to_dict(account: Account) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": account.id,
        "customer": account.customer,
        "name": account.name,
        "product": account.product,
        "addons": sorted(account.addons),
        "dids": sorted(account.dids),
    }
    if account.blocked_by:
        data["blocked_by"] = account.blocked_by
    data["status"] = account.status
    return data
