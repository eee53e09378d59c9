"""The read methods of the emulated API. Each takes params already checked against its declared
shape (shapes.py) and returns the answer, or raises ``Fault``; every list is paged."""

from __future__ import annotations

from typing import Any

from reconciler.emulator.accounts import ACCOUNT_COLUMNS, account_infos
from reconciler.emulator.db import ROLE_MAY_BLOCK, Database, Fault, Method


def get_product_list(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    return store.listing(
        "product_list",
        params,
        "SELECT COUNT(*) FROM products",
        "SELECT i_product, name, addon_priority FROM products ORDER BY i_product",
        (),
        lambda rows: [{"i_product": r[0], "name": r[1], "addon_priority": r[2]} for r in rows],
    )


def get_customer_list(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    return store.listing(
        "customer_list",
        params,
        "SELECT COUNT(*) FROM customers",
        "SELECT i_customer, name FROM customers ORDER BY i_customer",
        (),
        lambda rows: [{"i_customer": r[0], "name": r[1]} for r in rows],
    )


def get_customer_info(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    i_customer, name, i_role = store.customer(params["i_customer"])
    info: dict[str, Any] = {"i_customer": i_customer, "name": name, "i_role": i_role}
    if store.legacy_blocking_field:
        info["extension_blocking"] = "Y" if i_role == ROLE_MAY_BLOCK else "N"
    return {"customer_info": info}


def get_customer_agreement_info(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    i_customer = store.customer(params["i_customer"])[0]
    conditions = [
        {"i_product": r[0], "max_offered_quantity": r[1]}
        for r in store.db.execute(
            "SELECT i_product, max_offered_quantity FROM agreement WHERE i_customer = ? "
            "ORDER BY i_product",
            (i_customer,),
        )
    ]
    shape = store.profile.agreement_shape
    if shape == "agreement_condition_list":
        return {"agreement_condition_list": conditions}
    wrapper = "agreement" if shape == "unknown" else shape
    return {wrapper: {"i_customer": i_customer, "agreement_condition_list": conditions}}


def get_number_list(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    i_customer = store.customer(params["i_customer"])[0]
    return store.listing(
        "number_list",
        params,
        "SELECT COUNT(*) FROM numbers WHERE i_customer = ?",
        "SELECT i_did_number, number FROM numbers WHERE i_customer = ? ORDER BY i_did_number",
        (i_customer,),
        lambda rows: [{"i_did_number": r[0], "number": r[1]} for r in rows],
    )


def get_extensions_list(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    i_customer = store.customer(params["i_customer"])[0]
    return store.listing(
        "extensions_list",
        params,
        "SELECT COUNT(*) FROM extensions WHERE i_customer = ?",
        "SELECT i_c_ext, id, name, i_account FROM extensions WHERE i_customer = ? ORDER BY i_c_ext",
        (i_customer,),
        lambda rows: [
            {"i_c_ext": r[0], "id": r[1], "name": r[2], "i_account": r[3]} for r in rows
        ],
    )


def get_account_list(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    """Accounts of a customer, terminated ones included. Like a real server, the list also holds
    each alias as a row of its own unless the client asks for ``get_only_real_accounts``."""
    i_customer = store.customer(params["i_customer"])[0]
    with_aliases = params.get("with_aliases") == 1
    only_real = " AND a.i_master_account IS NULL" if params.get("get_only_real_accounts") else ""
    return store.listing(
        "account_list",
        params,
        f"SELECT COUNT(*) FROM accounts a WHERE a.i_customer = ?{only_real}",
        f"SELECT {ACCOUNT_COLUMNS} WHERE a.i_customer = ?{only_real} ORDER BY a.i_account",
        (i_customer,),
        lambda rows: account_infos(store, rows, with_aliases=with_aliases),
    )


def get_account_info(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    """One account by ``i_account`` or by ``id``; an empty answer when there is none."""
    if ("i_account" in params) == ("id" in params):
        raise Fault(
            "Client.Validation.missing_parameter",
            "Account/get_account_info needs exactly one of i_account and id",
        )
    where, arg = ("a.i_account = ?", params["i_account"]) if "i_account" in params else (
        "a.id = ?", params["id"])  # fmt: skip
    row = store.db.execute(f"SELECT {ACCOUNT_COLUMNS} WHERE {where}", (arg,)).fetchone()
    if row is None:
        return {}
    return {"account_info": account_infos(store, [tuple(row)], with_aliases=True)[0]}


def get_alias_list(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    master = store.account(params["i_master_account"], allow_closed=True)[0]
    return store.listing(
        "alias_list",
        params,
        "SELECT COUNT(*) FROM accounts WHERE i_master_account = ?",
        "SELECT i_account, id FROM accounts WHERE i_master_account = ? ORDER BY i_account",
        (master,),
        lambda rows: [{"i_account": r[0], "id": r[1]} for r in rows],
    )


READS: dict[str, Any] = {
    "Product/get_product_list": get_product_list,
    "Customer/get_customer_list": get_customer_list,
    "Customer/get_customer_info": get_customer_info,
    "Customer/get_customer_agreement_info": get_customer_agreement_info,
    "DID/get_number_list": get_number_list,
    "Account/get_account_list": get_account_list,
    "Account/get_account_info": get_account_info,
    "Account/get_alias_list": get_alias_list,
    "Customer/get_extensions_list": get_extensions_list,
}


def bind(store: Database, table: dict[str, Any]) -> dict[str, Method]:
    """The methods of ``table`` bound to ``store``: callables of the params alone."""
    return {name: _bound(store, function) for name, function in table.items()}


def _bound(store: Database, function: Any) -> Method:
    return lambda params: function(store, params)  # type: ignore[no-any-return]
