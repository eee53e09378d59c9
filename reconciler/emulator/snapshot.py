"""``BillingState`` in and out of the emulator's database, and what tests check about it.

A state file served by the emulator dumps back unchanged. An add-on whose end date has passed is
not assigned any more, so a dump leaves it out (the client must read it the same way).

A state file says who blocked an account, not what its note says: a ``blocked_by: customer``
account is loaded with the reconciler's marker as its note (the only way a server without
``blocked_by`` can tell it is the customer's block), every other account with an empty note. A
dump says who blocked as billing shows it: under a profile that shows ``blocked_by``, what the
state file or the blocking call said; otherwise (v3) the customer while the note carries the
marker, else the administrator. Notes themselves are not part of a state file.
"""

from __future__ import annotations

from typing import Any

from reconciler.emulator.accounts import CUSTOMER_BLOCK_NOTE
from reconciler.emulator.db import (
    ACTIVE_ADDON,
    CLOSED,
    OPEN,
    ROLE_MAY_BLOCK,
    ROLE_MAY_NOT_BLOCK,
    TABLES,
    Database,
)
from reconciler.model import OPEN as OPEN_STATUS
from reconciler.model import TERMINATED, Account, Customer, Product, managed_key, managed_kind
from reconciler.statefile import BillingState

ADDON_PRIORITY = 10  # what a loaded add-on product gets; main products have 0


def load_state(store: Database, state: BillingState) -> None:
    """Replace everything in the database with ``state`` (one transaction)."""
    db = store.db
    db.execute("BEGIN IMMEDIATE")
    try:
        for table in TABLES:
            db.execute(f"DELETE FROM {table}")
        db.execute("DELETE FROM sqlite_sequence")
        db.executemany(
            "INSERT INTO products (i_product, name, addon_priority) VALUES (?, ?, ?)",
            [(p.id, p.name, 0 if p.type == "main" else ADDON_PRIORITY) for p in state.products],
        )
        ids = {p.name: p.id for p in state.products}
        for customer in state.customers:
            role = ROLE_MAY_BLOCK if customer.block_extensions else ROLE_MAY_NOT_BLOCK
            db.execute(
                "INSERT INTO customers (i_customer, name, i_role) VALUES (?, ?, ?)",
                (customer.id, customer.name, role),
            )
            db.executemany(
                "INSERT INTO agreement (i_customer, i_product, max_offered_quantity) "
                "VALUES (?, ?, ?)",
                [(customer.id, ids[name], qty) for name, qty in customer.agreement],
            )
            db.executemany(
                "INSERT INTO numbers (number, i_customer) VALUES (?, ?)",
                [(did, customer.id) for did in sorted(customer.dids)],
            )
        start = store.now()
        for account in sorted(state.accounts, key=lambda a: (a.customer, a.id)):
            _load_account(store, account, ids, start)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _load_account(store: Database, account: Account, ids: dict[str, int], start: str) -> None:
    extension = managed_key(account.id) is not None and (
        managed_kind(account.id, account.customer) == "extension"
    )
    cursor = store.db.execute(
        "INSERT INTO accounts (id, i_customer, i_product, firstname, blocked, blocked_by, note, "
        "bill_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            account.id,
            account.customer,
            ids.get(account.product) if account.product else None,
            # An extension's name lives on its customer extension, as billing keeps it.
            "" if extension else account.name,
            "N" if account.blocked_by is None else "Y",
            account.blocked_by,
            CUSTOMER_BLOCK_NOTE if account.blocked_by == "customer" else "",
            CLOSED if account.status == TERMINATED else OPEN,
        ),
    )
    i_account = cursor.lastrowid
    store.db.executemany(
        "INSERT INTO addons (i_account, i_product, addon_effective_from) VALUES (?, ?, ?)",
        [(i_account, ids[name], start) for name in account.addons],
    )
    store.db.executemany(
        "INSERT INTO accounts (id, i_customer, billing_model, i_master_account)"
        " VALUES (?, ?, 2, ?)",
        [(did, account.customer, i_account) for did in account.dids],
    )
    if extension:
        key = managed_key(account.id)
        assert key is not None
        store.db.execute(
            "INSERT INTO extensions (i_customer, id, name, i_account) VALUES (?, ?, ?, ?)",
            (account.customer, key[1], account.name, i_account),
        )


def dump_state(store: Database) -> BillingState:
    db = store.db
    products = tuple(
        Product(r[0], r[1], "main" if r[2] == 0 else "addon")
        for r in db.execute("SELECT i_product, name, addon_priority FROM products "
                            "ORDER BY i_product")
    )
    names = {p.id: p.name for p in products}
    customers = []
    for i_customer, name, i_role in db.execute(
        "SELECT i_customer, name, i_role FROM customers ORDER BY i_customer"
    ).fetchall():
        agreement = sorted(
            (names[r[0]], r[1])
            for r in db.execute(
                "SELECT i_product, max_offered_quantity FROM agreement WHERE i_customer = ?",
                (i_customer,),
            )
        )
        pool = frozenset(
            r[0]
            for r in db.execute("SELECT number FROM numbers WHERE i_customer = ?", (i_customer,))
        )
        customers.append(
            Customer(i_customer, name, i_role == ROLE_MAY_BLOCK, tuple(agreement), pool)
        )
    now = store.now()
    addons = _by_account(
        db.execute(
            f"SELECT x.i_account, x.i_product FROM addons x WHERE {ACTIVE_ADDON}", (now,)
        ).fetchall()
    )
    dids = _by_account(
        db.execute(
            "SELECT i_master_account, id FROM accounts WHERE i_master_account IS NOT NULL"
        ).fetchall()
    )
    accounts = [
        _dump_account(
            row, names, addons.get(row[0], []), dids.get(row[0], []), store.profile.blocked_by
        )
        for row in db.execute(
            "SELECT a.i_account, a.id, a.i_customer, a.i_product, a.firstname, a.blocked, "
            "a.blocked_by, a.bill_status, e.name, a.note FROM accounts a "
            "LEFT JOIN extensions e ON e.i_account = a.i_account WHERE a.i_master_account IS NULL"
        ).fetchall()
    ]
    return BillingState(
        products, tuple(customers), tuple(sorted(accounts, key=lambda a: (a.customer, a.id)))
    )


def _by_account(rows: list[tuple[Any, Any]]) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = {}
    for key, value in rows:
        grouped.setdefault(key, []).append(value)
    return grouped


def _dump_account(
    row: tuple[Any, ...],
    names: dict[int, str],
    addon_ids: list[int],
    dids: list[str],
    show_blocked_by: bool,
) -> Account:
    (_i_account, account_id, i_customer, i_product, firstname, blocked, blocked_by, bill_status,
     ext_name, note) = row  # fmt: skip
    if not show_blocked_by or blocked_by is None:
        # What billing itself shows: without blocked_by, only the marker in the note tells a
        # customer's block, so a block made without it is the administrator's here as well.
        blocked_by = "customer" if CUSTOMER_BLOCK_NOTE in note else "admin"
    return Account(
        id=account_id,
        customer=i_customer,
        name=ext_name if ext_name is not None else firstname,
        product=names.get(i_product) if i_product is not None else None,
        addons=tuple(sorted(names[pid] for pid in addon_ids)),
        dids=tuple(sorted(dids)),
        blocked_by=blocked_by if blocked == "Y" else None,
        status=TERMINATED if bill_status == CLOSED else OPEN_STATUS,
    )


def expire_addon(store: Database, account_id: str, product_name: str) -> None:
    """Let an add-on's assignment end a day ago, as one that ran out in billing."""
    found = store.db.execute(
        "UPDATE addons SET addon_effective_to = ? WHERE i_account = "
        "(SELECT i_account FROM accounts WHERE id = ? AND i_master_account IS NULL) "
        "AND i_product = (SELECT i_product FROM products WHERE name = ?)",
        (store.now(-86400.0), account_id, product_name),
    ).rowcount
    if not found:
        raise KeyError(f"account {account_id} has no add-on {product_name!r}")


def set_note(store: Database, account_id: str, note: str) -> None:
    """Write an account's note, as an administrator does in the portal."""
    found = store.db.execute(
        "UPDATE accounts SET note = ? WHERE id = ? AND i_master_account IS NULL", (note, account_id)
    ).rowcount
    if not found:
        raise KeyError(f"no account {account_id}")


def invariant_problems(store: Database) -> list[str]:
    """Things a correct billing never shows: used by tests after every apply."""
    db = store.db
    problems = [
        f"{account_id} exists {count} times"
        for account_id, count in db.execute(
            "SELECT id, COUNT(*) FROM accounts GROUP BY id HAVING COUNT(*) > 1"
        )
    ]
    problems += [
        f"DID {did} is an alias of a missing or terminated account {master}"
        for did, master in db.execute(
            "SELECT a.id, a.i_master_account FROM accounts a "
            "LEFT JOIN accounts m ON m.i_account = a.i_master_account "
            "WHERE a.i_master_account IS NOT NULL AND (m.i_account IS NULL OR m.bill_status = 'C')"
        )
    ]
    problems += [
        f"customer extension {i_c_ext} points at no account"
        for (i_c_ext,) in db.execute(
            "SELECT e.i_c_ext FROM extensions e LEFT JOIN accounts a ON a.i_account = e.i_account "
            "WHERE a.i_account IS NULL"
        )
    ]
    return problems


def unlinked_extensions(store: Database) -> list[str]:
    """Live extension accounts that no customer extension points to (a v1 apply stopped between
    add_account and add_customer_extension; the next apply links them)."""
    found = []
    for account_id, i_customer in store.db.execute(
        "SELECT a.id, a.i_customer FROM accounts a "
        "LEFT JOIN extensions e ON e.i_account = a.i_account "
        "WHERE a.i_master_account IS NULL AND a.bill_status != 'C' AND e.i_c_ext IS NULL"
    ):
        if managed_kind(account_id, i_customer) == "extension":
            found.append(account_id)
    return sorted(found)
