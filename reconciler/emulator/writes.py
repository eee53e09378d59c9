"""The write methods of the emulated API. Each takes params already checked against its declared
shape (shapes.py), changes the database inside the caller's transaction and returns the answer,
or raises ``Fault`` (the caller then rolls the whole call back, as a server does)."""

from __future__ import annotations

from typing import Any

from reconciler.emulator.db import Database, Fault


def _block_fields(
    store: Database, info: dict[str, Any], method: str
) -> tuple[str, str | None] | None:
    """(blocked, blocked_by) to store, or None when the call leaves the block alone.

    Who blocked is recorded only from what the client sent: ``blocked: "Y"`` with
    ``blocked_by: "customer"`` is the customer's block; ``"Y"`` alone is a block with no known
    author (clients read that as the administrator's, unless the note sent with it carries the
    reconciler's marker); ``"N"`` clears both. A server that shows no ``blocked_by`` (v3) takes
    the field without judging it and never shows it again; the emulator still keeps it, so that a
    dump of its state says who blocked. The ``note`` is stored as sent, whatever it says.
    """
    if store.profile.blocked_by and "blocked_by" in info and info.get("blocked") != "Y":
        raise Fault(
            "Client.Validation.invalid_value",
            f'account_info.blocked_by goes only with account_info.blocked "Y" in {method}',
        )
    if "blocked" not in info:
        return None
    return ("Y", info.get("blocked_by")) if info["blocked"] == "Y" else ("N", None)


def add_account(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    info = params["account_info"]
    i_customer = store.customer(info["i_customer"])[0]
    account_id = info["id"]
    if store.id_holder(account_id) is not None:
        raise Fault("Server.Account.id_exists", f"an account with ID {account_id} already exists")
    i_product = store.product(info["i_product"], addon=False)
    addons = _distinct_addons(store, info.get("assigned_addons", []), "Account/add_account")
    for pid in [i_product, *addons]:
        store.check_agreement(i_customer, pid)
    blocked, blocked_by = _block_fields(store, info, "Account/add_account") or ("N", None)
    cursor = store.db.execute(
        "INSERT INTO accounts (id, i_customer, i_product, billing_model, firstname, blocked, "
        "blocked_by, note, bill_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (account_id, i_customer, i_product, info["billing_model"], info.get("firstname", ""),
         blocked, blocked_by, info.get("note", ""), store.profile.new_account_status),
    )  # fmt: skip
    i_account = int(cursor.lastrowid or 0)
    start = store.now()
    store.db.executemany(
        "INSERT INTO addons (i_account, i_product, addon_effective_from) VALUES (?, ?, ?)",
        [(i_account, pid, start) for pid in addons],
    )
    return {"i_account": i_account}


def _distinct_addons(store: Database, entries: list[dict[str, Any]], method: str) -> list[int]:
    seen: list[int] = []
    for index, entry in enumerate(entries):
        pid = store.product(entry["i_product"], addon=True)
        if pid in seen:
            raise Fault(
                "Client.Validation.duplicate_value",
                f"account_info.assigned_addons[{index}].i_product: product {pid} is listed twice "
                f"in {method}",
            )
        seen.append(pid)
    return seen


def add_customer_extension(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    """With ``i_product`` (v2) the server creates the extension's account itself (its ID in the
    profile's ``account_id_format``, ``ph{i_customer}x{id}`` by default); with ``i_account``
    (v1) it links an account that exists already. Either way the answer is ``{i_c_ext}``."""
    method = "Customer/add_customer_extension"
    if ("i_product" in params) == ("i_account" in params):
        raise Fault(
            "Client.Validation.missing_parameter",
            f"{method} needs exactly one of i_product (to create the extension's account) "
            "and i_account (to link an existing account)",
        )
    i_customer = store.customer(params["i_customer"])[0]
    ext_id = params["id"]
    if store.db.execute(
        "SELECT 1 FROM extensions WHERE i_customer = ? AND id = ?", (i_customer, ext_id)
    ).fetchone():
        raise Fault(
            "Server.Customer.extension_exists",
            f"customer {i_customer} has an extension {ext_id} already",
        )
    if "i_product" in params:
        i_account = _create_extension_account(store, i_customer, ext_id, params["i_product"])
    else:
        i_account, owner, _product = store.account(params["i_account"])
        if owner != i_customer:
            raise Fault(
                "Server.Customer.account_of_other_customer",
                "the account belongs to another customer",
            )
        if store.db.execute(
            "SELECT 1 FROM extensions WHERE i_account = ?", (i_account,)
        ).fetchone():
            raise Fault(
                "Server.Customer.account_has_extension", "the account already has an extension"
            )
    cursor = store.db.execute(
        "INSERT INTO extensions (i_customer, id, name, i_account) VALUES (?, ?, ?, ?)",
        (i_customer, ext_id, params["name"], i_account),
    )
    return {"i_c_ext": cursor.lastrowid}


def _create_extension_account(store: Database, i_customer: int, ext_id: str, i_product: int) -> int:
    account_id = store.profile.extension_account_id(i_customer, ext_id)
    holder = store.id_holder(account_id)
    if holder is not None:
        whose = "this customer" if holder[1] == i_customer else f"customer {holder[1]}"
        raise Fault(
            "Server.Account.id_exists",
            f"account ID {account_id} is taken by {whose}; link an existing account with i_account",
        )
    store.product(i_product, addon=False)
    store.check_agreement(i_customer, i_product)
    # The display name lives on the customer extension, not in the account's firstname.
    cursor = store.db.execute(
        "INSERT INTO accounts (id, i_customer, i_product, bill_status) VALUES (?, ?, ?, ?)",
        (account_id, i_customer, i_product, store.profile.new_account_status),
    )
    return int(cursor.lastrowid or 0)


def update_customer_extension(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    i_customer = store.customer(params["i_customer"])[0]
    i_c_ext = params["i_c_ext"]
    found = store.db.execute(
        "UPDATE extensions SET name = ? WHERE i_c_ext = ? AND i_customer = ?",
        (params["name"], i_c_ext, i_customer),
    ).rowcount
    if not found:
        raise Fault("Server.Customer.extension_not_found", f"extension {i_c_ext} not found")
    return {"i_c_ext": i_c_ext}


def update_account(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    info = params["account_info"]
    i_account, i_customer, current_product = store.account(info["i_account"])
    block = _block_fields(store, info, "Account/update_account")
    if "i_product" in info:
        pid = store.product(info["i_product"], addon=False)
        if pid != current_product:
            store.check_agreement(i_customer, pid)
        store.db.execute("UPDATE accounts SET i_product = ? WHERE i_account = ?", (pid, i_account))
    if "assigned_addons" in info:
        _replace_addons(store, i_account, i_customer, info["assigned_addons"])
    if block is not None:
        store.db.execute(
            "UPDATE accounts SET blocked = ?, blocked_by = ? WHERE i_account = ?",
            (*block, i_account),
        )
    for column in ("firstname", "note"):
        if column in info:
            store.db.execute(
                f"UPDATE accounts SET {column} = ? WHERE i_account = ?", (info[column], i_account)
            )
    return {"i_account": i_account}


def _replace_addons(
    store: Database, i_account: int, i_customer: int, entries: list[dict[str, Any]]
) -> None:
    """``entries`` is the account's whole add-on list. An add-on it keeps keeps its dates unless
    the entry gives others; one that is new, or whose end date had passed, starts now (and is
    judged against the agreement, as every new assignment is)."""
    now = store.now()
    held = {
        pid: (start, end)
        for pid, start, end in store.db.execute(
            "SELECT i_product, addon_effective_from, addon_effective_to FROM addons "
            "WHERE i_account = ?",
            (i_account,),
        )
    }
    rows = []
    for pid, entry in zip(
        _distinct_addons(store, entries, "Account/update_account"), entries, strict=True
    ):
        old = held.get(pid)
        live = old is not None and (old[1] is None or old[1] > now)
        start = entry.get("addon_effective_from", old[0] if old is not None and live else now)
        end = entry["addon_effective_to"] if "addon_effective_to" in entry else (
            old[1] if old is not None and live else None)  # fmt: skip
        if not live and (end is None or end > now):
            store.check_agreement(i_customer, pid)
        rows.append((i_account, pid, start, end))
    store.db.execute("DELETE FROM addons WHERE i_account = ?", (i_account,))
    store.db.executemany(
        "INSERT INTO addons (i_account, i_product, addon_effective_from, addon_effective_to) "
        "VALUES (?, ?, ?, ?)",
        rows,
    )


def add_alias(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    info = params["alias_info"]
    master, i_customer, _product = store.account(info["i_master_account"])
    did = info["id"]
    if store.id_holder(did) is not None:
        raise Fault("Server.Account.duplicate_alias", f"{did} is already in use")
    if not store.db.execute(
        "SELECT 1 FROM numbers WHERE number = ? AND i_customer = ?", (did, i_customer)
    ).fetchone():
        raise Fault("Server.DID.number_not_owned", f"{did} is not in the customer's DID pool")
    cursor = store.db.execute(
        "INSERT INTO accounts (id, i_customer, billing_model, i_master_account)"
        " VALUES (?, ?, 2, ?)",
        (did, i_customer, master),
    )
    if store.profile.add_alias_answer == "empty":
        return {}
    return {"i_account": cursor.lastrowid}


def delete_alias(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    i_alias = params["alias_info"]["i_account"]
    row = store.db.execute(
        "SELECT id FROM accounts WHERE i_account = ? AND i_master_account IS NOT NULL", (i_alias,)
    ).fetchone()
    if row is None:
        raise Fault("Server.Account.alias_not_found", f"alias {i_alias} not found")
    store.db.execute("DELETE FROM accounts WHERE i_account = ?", (i_alias,))
    _release(store, params, [row[0]])
    return {}


def terminate_account(store: Database, params: dict[str, Any]) -> dict[str, Any]:
    i_account = store.account(params["i_account"])[0]
    store.db.execute("UPDATE accounts SET bill_status = 'C' WHERE i_account = ?", (i_account,))
    # A terminated account's DIDs are its aliases no more; its extension record is kept (so its
    # name is still known), as the embedded backend keeps a terminated account's name.
    dids = [
        r[0]
        for r in store.db.execute("SELECT id FROM accounts WHERE i_master_account = ?",
                                  (i_account,))
    ]
    store.db.execute("DELETE FROM accounts WHERE i_master_account = ?", (i_account,))
    _release(store, params, dids)
    return {}


def _release(store: Database, params: dict[str, Any], dids: list[str]) -> None:
    """A DID that stops being an alias stays in the customer's pool, unless the server
    releases it: ``release_assigned_did: 1`` asks for that, ``0`` forbids it, and without
    either the server does what it is configured to (the profile's ``release_dids``)."""
    if params.get("release_assigned_did", 1 if store.profile.release_dids else 0):
        store.db.executemany("DELETE FROM numbers WHERE number = ?", [(did,) for did in dids])


WRITES: dict[str, Any] = {
    "Account/add_account": add_account,
    "Customer/add_customer_extension": add_customer_extension,
    "Customer/update_customer_extension": update_customer_extension,
    "Account/update_account": update_account,
    "Account/add_alias": add_alias,
    "Account/delete_alias": delete_alias,
    "Account/terminate_account": terminate_account,
}
