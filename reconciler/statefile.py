"""The billing state file: the provider's products, customers and accounts in one YAML document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.errors import StateFileError
from reconciler.model import OPEN, Account, Customer, Problem, Product
from reconciler.spec import schema_check
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
    data = loaded.data
    problems: list[Problem] = []
    products: dict[str, Product] = {}
    ids: set[int] = set()
    for index, entry in enumerate(data["products"]):
        if entry["name"] in products or entry["id"] in ids:
            problems.append(
                loaded.problem("schema", f"product {entry['name']!r} or id {entry['id']} is listed twice", ("products", index))
            )
            continue
        ids.add(entry["id"])
        products[entry["name"]] = Product(entry["id"], entry["name"], entry["type"])

    customers: dict[int, Customer] = {}
    pool_owner: dict[str, int] = {}
    for index, entry in enumerate(data["customers"]):
        path = ("customers", index)
        if entry["id"] in customers:
            problems.append(loaded.problem("schema", f"customer {entry['id']} is listed twice", path + ("id",)))
            continue
        agreement = []
        agreed: set[str] = set()
        for item_index, item in enumerate(entry.get("agreement") or []):
            if item["product"] in agreed:
                problems.append(
                    loaded.problem(
                        "schema",
                        f"the agreement lists product {item['product']!r} twice",
                        path + ("agreement", item_index, "product"),
                    )
                )
                continue
            agreed.add(item["product"])
            if item["product"] not in products:
                problems.append(
                    loaded.problem(
                        "unknown_product",
                        f"the agreement names product {item['product']!r}, which the catalogue lacks",
                        path + ("agreement", item_index, "product"),
                    )
                )
            agreement.append((item["product"], item["quantity"]))
        for did_index, did in enumerate(entry.get("dids") or []):
            if did in pool_owner:
                problems.append(
                    loaded.problem(
                        "did_duplicate",
                        f"DID {did} is in the pools of customers {pool_owner[did]} and {entry['id']}",
                        path + ("dids", did_index),
                    )
                )
            pool_owner[did] = entry["id"]
        customers[entry["id"]] = Customer(
            id=entry["id"],
            name=entry["name"],
            block_extensions=bool((entry.get("self_care") or {}).get("block_extensions", False)),
            agreement=tuple(sorted(agreement)),
            dids=frozenset(entry.get("dids") or ()),
        )

    accounts: dict[str, Account] = {}
    holder: dict[str, str] = {}
    for index, entry in enumerate(data.get("accounts") or []):
        path = ("accounts", index)
        if entry["id"] in accounts:
            problems.append(loaded.problem("schema", f"account {entry['id']} is listed twice", path + ("id",)))
            continue
        if entry["customer"] not in customers:
            problems.append(
                loaded.problem("unknown_customer", f"account {entry['id']} names customer {entry['customer']}, which is not listed", path + ("customer",))
            )
        product = entry.get("product")
        if product is not None:
            known = products.get(product)
            if known is None:
                problems.append(loaded.problem("unknown_product", f"no product named {product!r}", path + ("product",)))
            elif known.type != "main":
                problems.append(loaded.problem("wrong_product_type", f"{product!r} is an add-on, not a main product", path + ("product",)))
        for addon_index, addon in enumerate(entry.get("addons") or []):
            known = products.get(addon)
            if known is None:
                problems.append(loaded.problem("unknown_product", f"no product named {addon!r}", path + ("addons", addon_index)))
            elif known.type != "addon":
                problems.append(loaded.problem("wrong_product_type", f"{addon!r} is a main product, not an add-on", path + ("addons", addon_index)))
        status = entry.get("status", OPEN)
        dids = tuple(entry.get("dids") or ())
        for did_index, did in enumerate(dids):
            if did in holder:
                problems.append(
                    loaded.problem("did_duplicate", f"DID {did} is on accounts {holder[did]} and {entry['id']}", path + ("dids", did_index))
                )
            holder[did] = entry["id"]
        accounts[entry["id"]] = Account(
            id=entry["id"],
            customer=entry["customer"],
            name=entry["name"],
            product=product,
            addons=tuple(sorted(set(entry.get("addons") or ()))),
            dids=tuple(sorted(dids)),
            blocked_by=entry.get("blocked_by"),
            status=status,
        )
    state = BillingState(
        products=tuple(sorted(products.values(), key=lambda p: p.id)),
        customers=tuple(sorted(customers.values(), key=lambda c: c.id)),
        accounts=tuple(sorted(accounts.values(), key=lambda a: (a.customer, a.id))),
    )
    return state, problems


def state_to_dict(state: BillingState) -> dict[str, Any]:
    """The state file form: sorted, with status/addons/dids always and blocked_by only when set."""
    return {
        "products": [{"id": p.id, "name": p.name, "type": p.type} for p in sorted(state.products, key=lambda p: p.id)],
        "customers": [
            {
                "id": c.id,
                "name": c.name,
                "self_care": {"block_extensions": c.block_extensions},
                "agreement": [{"product": name, "quantity": qty} for name, qty in sorted(c.agreement)],
                "dids": sorted(c.dids),
            }
            for c in sorted(state.customers, key=lambda c: c.id)
        ],
        "accounts": [account_to_dict(a) for a in sorted(state.accounts, key=lambda a: (a.customer, a.id))],
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
