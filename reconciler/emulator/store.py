"""The emulator's billing data: an SQLite database shaped the way PortaBilling's API shows it.

Accounts have an ``i_account``; an alias (DID) is an account of its own whose ``i_master_account``
points at the account it belongs to; a customer extension links an extension number and its name
to an account. ``load_state`` and ``dump_state`` translate from and to ``BillingState``, so a
state file served by the emulator dumps back unchanged.

The API methods live in ``Store.call``: each takes the call's params and returns its response,
or raises ``Fault``. The caller serialises calls (one lock), as a database would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from reconciler.backends import pb_fields
from reconciler.model import OPEN, TERMINATED, Account, Customer, Product, managed_key, managed_kind
from reconciler.statefile import BillingState

_DDL = """
CREATE TABLE IF NOT EXISTS products (
  i_product INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, addon_priority INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS customers (
  i_customer INTEGER PRIMARY KEY, name TEXT NOT NULL, extension_blocking TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agreement (
  i_customer INTEGER NOT NULL, i_product INTEGER NOT NULL, max_offered_quantity INTEGER NOT NULL,
  PRIMARY KEY (i_customer, i_product)
);
CREATE TABLE IF NOT EXISTS numbers (
  i_did_number INTEGER PRIMARY KEY AUTOINCREMENT, number TEXT NOT NULL UNIQUE, i_customer INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS numbers_by_customer ON numbers (i_customer, i_did_number);
-- Accounts and aliases share one ID space: an ID (or DID) is held by one row at most.
CREATE TABLE IF NOT EXISTS accounts (
  i_account INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  i_customer INTEGER NOT NULL,
  i_product INTEGER,
  firstname TEXT NOT NULL DEFAULT '',
  blocked TEXT NOT NULL DEFAULT 'N',
  blocked_by TEXT,
  bill_status TEXT NOT NULL DEFAULT 'O',
  i_master_account INTEGER
);
CREATE INDEX IF NOT EXISTS accounts_by_customer ON accounts (i_customer, i_account);
CREATE INDEX IF NOT EXISTS accounts_by_master ON accounts (i_master_account);
CREATE TABLE IF NOT EXISTS addons (
  i_account INTEGER NOT NULL, i_product INTEGER NOT NULL, PRIMARY KEY (i_account, i_product)
);
CREATE TABLE IF NOT EXISTS extensions (
  i_c_ext INTEGER PRIMARY KEY AUTOINCREMENT,
  i_customer INTEGER NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  i_account INTEGER UNIQUE,
  UNIQUE (i_customer, id)
);
"""

_TABLES = ("extensions", "addons", "accounts", "numbers", "agreement", "customers", "products")


class Fault(Exception):
    """A PortaBilling fault: HTTP 500 with {"faultcode", "faultstring"}."""

    def __init__(self, faultcode: str, faultstring: str) -> None:
        super().__init__(faultstring)
        self.faultcode = faultcode
        self.faultstring = faultstring


def _require(params: dict[str, Any], name: str, kind: type = int) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise Fault("Client.Validation.missing_parameter", f"parameter {name} is required")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise Fault(
            "Client.Validation.invalid_parameter", f"parameter {name} is not valid"
        ) from None


class Store:
    def __init__(self, path: str = ":memory:", *, page_cap: int = 100) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.executescript(_DDL)
        self.page_cap = page_cap
        self.methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "Product/get_product_list": self.get_product_list,
            "Customer/get_customer_info": self.get_customer_info,
            "Customer/get_customer_agreement_info": self.get_customer_agreement_info,
            "DID/get_number_list": self.get_number_list,
            "Account/get_account_list": self.get_account_list,
            "Account/get_account_info": self.get_account_info,
            pb_fields.ALIAS_LIST_METHOD: self.get_alias_list,
            "Customer/get_extensions_list": self.get_extensions_list,
            "Account/add_account": self.add_account,
            "Customer/add_customer_extension": self.add_customer_extension,
            "Customer/update_customer_extension": self.update_customer_extension,
            "Account/update_account": self.update_account,
            "Account/add_alias": self.add_alias,
            "Account/delete_alias": self.delete_alias,
            "Account/terminate_account": self.terminate_account,
        }

    def close(self) -> None:
        self.db.close()

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = self.methods.get(method)
        if handler is None:
            raise Fault("Client.Service.unknown_method", f"no method {method}")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            answer = handler(params)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return answer

    # ---- BillingState in and out -----------------------------------------------------------------

    def load_state(self, state: BillingState) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for table in _TABLES:
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM sqlite_sequence")
            db.executemany(
                "INSERT INTO products (i_product, name, addon_priority) VALUES (?, ?, ?)",
                [(p.id, p.name, 0 if p.type == "main" else 10) for p in state.products],
            )
            ids = {p.name: p.id for p in state.products}
            for customer in state.customers:
                db.execute(
                    "INSERT INTO customers (i_customer, name, extension_blocking) VALUES (?, ?, ?)",
                    (customer.id, customer.name, "Y" if customer.block_extensions else "N"),
                )
                db.executemany(
                    "INSERT INTO agreement (i_customer, i_product, max_offered_quantity) VALUES (?, ?, ?)",
                    [(customer.id, ids[name], qty) for name, qty in customer.agreement],
                )
                db.executemany(
                    "INSERT INTO numbers (number, i_customer) VALUES (?, ?)",
                    [(did, customer.id) for did in sorted(customer.dids)],
                )
            for account in sorted(state.accounts, key=lambda a: (a.customer, a.id)):
                self._load_account(account, ids)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _load_account(self, account: Account, ids: dict[str, int]) -> None:
        blocked = account.blocked_by is not None
        cursor = self.db.execute(
            "INSERT INTO accounts (id, i_customer, i_product, firstname, blocked, blocked_by, bill_status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                account.id,
                account.customer,
                ids.get(account.product) if account.product else None,
                account.name,
                "Y" if blocked else "N",
                account.blocked_by,
                "C" if account.status == TERMINATED else "O",
            ),
        )
        i_account = cursor.lastrowid
        self.db.executemany(
            "INSERT INTO addons (i_account, i_product) VALUES (?, ?)",
            [(i_account, ids[name]) for name in account.addons],
        )
        for did in account.dids:
            self.db.execute(
                "INSERT INTO accounts (id, i_customer, i_master_account) VALUES (?, ?, ?)",
                (did, account.customer, i_account),
            )
        key = managed_key(account.id)
        if key is not None and managed_kind(account.id, account.customer) == "extension":
            self.db.execute(
                "INSERT INTO extensions (i_customer, id, name, i_account) VALUES (?, ?, ?, ?)",
                (account.customer, key[1], account.name, i_account),
            )

    def dump_state(self) -> BillingState:
        db = self.db
        products = tuple(
            Product(r[0], r[1], "main" if r[2] == 0 else "addon")
            for r in db.execute(
                "SELECT i_product, name, addon_priority FROM products ORDER BY i_product"
            )
        )
        names = {p.id: p.name for p in products}
        customers = []
        for i_customer, name, blocking in db.execute(
            "SELECT i_customer, name, extension_blocking FROM customers ORDER BY i_customer"
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
                for r in db.execute(
                    "SELECT number FROM numbers WHERE i_customer = ?", (i_customer,)
                )
            )
            customers.append(Customer(i_customer, name, blocking == "Y", tuple(agreement), pool))
        accounts = [
            self._dump_account(row, names)
            for row in db.execute(
                "SELECT a.i_account, a.id, a.i_customer, a.i_product, a.firstname, a.blocked, a.blocked_by, "
                "a.bill_status, e.name FROM accounts a LEFT JOIN extensions e ON e.i_account = a.i_account "
                "WHERE a.i_master_account IS NULL"
            ).fetchall()
        ]
        return BillingState(
            products, tuple(customers), tuple(sorted(accounts, key=lambda a: (a.customer, a.id)))
        )

    def _dump_account(self, row: tuple[Any, ...], names: dict[int, str]) -> Account:
        (
            i_account,
            account_id,
            i_customer,
            i_product,
            firstname,
            blocked,
            blocked_by,
            bill_status,
            ext_name,
        ) = row
        addons = sorted(
            names[r[0]]
            for r in self.db.execute(
                "SELECT i_product FROM addons WHERE i_account = ?", (i_account,)
            )
        )
        dids = sorted(
            r[0]
            for r in self.db.execute(
                "SELECT id FROM accounts WHERE i_master_account = ?", (i_account,)
            )
        )
        return Account(
            id=account_id,
            customer=i_customer,
            name=ext_name if ext_name is not None else firstname,
            product=names.get(i_product) if i_product is not None else None,
            addons=tuple(addons),
            dids=tuple(dids),
            blocked_by=(blocked_by or "admin") if blocked == "Y" else None,
            status=TERMINATED if bill_status in pb_fields.TERMINATED_BILL_STATUSES else OPEN,
        )

    def invariant_problems(self) -> list[str]:
        """Things a correct billing never shows: used by tests after every apply."""
        db = self.db
        problems = []
        for account_id, count in db.execute(
            "SELECT id, COUNT(*) FROM accounts GROUP BY id HAVING COUNT(*) > 1"
        ):
            problems.append(f"{account_id} exists {count} times")
        for did, master in db.execute(
            "SELECT a.id, a.i_master_account FROM accounts a LEFT JOIN accounts m ON m.i_account = a.i_master_account "
            "WHERE a.i_master_account IS NOT NULL AND (m.i_account IS NULL OR m.bill_status != 'O')"
        ):
            problems.append(f"DID {did} is an alias of a missing or terminated account {master}")
        for (i_c_ext,) in db.execute(
            "SELECT e.i_c_ext FROM extensions e LEFT JOIN accounts a ON a.i_account = e.i_account WHERE a.i_account IS NULL"
        ):
            problems.append(f"customer extension {i_c_ext} points at no account")
        return problems

    def unlinked_extensions(self) -> list[str]:
        """Open extension accounts that no customer extension points to (an apply stopped between
        add_account and add_customer_extension; the next apply links them)."""
        found = []
        for account_id, i_customer in self.db.execute(
            "SELECT a.id, a.i_customer FROM accounts a LEFT JOIN extensions e ON e.i_account = a.i_account "
            "WHERE a.i_master_account IS NULL AND a.bill_status = 'O' AND e.i_c_ext IS NULL"
        ):
            if managed_kind(account_id, i_customer) == "extension":
                found.append(account_id)
        return sorted(found)

    # ---- reads ----------------------------------------------------------------------------------------

    def _page(self, params: dict[str, Any]) -> tuple[int, int]:
        limit = int(params.get("limit") or self.page_cap)
        offset = int(params.get("offset") or 0)
        return max(0, min(limit, self.page_cap)), max(0, offset)

    def _customer_row(self, i_customer: int) -> tuple[Any, ...]:
        row = self.db.execute(
            "SELECT i_customer, name, extension_blocking FROM customers WHERE i_customer = ?",
            (i_customer,),
        ).fetchone()
        if row is None:
            raise Fault("Server.Customer.customer_not_found", f"customer {i_customer} not found")
        return tuple(row)

    def get_product_list(self, params: dict[str, Any]) -> dict[str, Any]:
        rows = self.db.execute(
            "SELECT i_product, name, addon_priority FROM products ORDER BY i_product"
        )
        return {
            "product_list": [
                {"i_product": r[0], "name": r[1], "addon_priority": r[2]} for r in rows
            ]
        }

    def get_customer_info(self, params: dict[str, Any]) -> dict[str, Any]:
        i_customer = _require(params, "i_customer")
        row = self.db.execute(
            "SELECT i_customer, name, extension_blocking FROM customers WHERE i_customer = ?",
            (i_customer,),
        ).fetchone()
        if row is None:
            return {}  # PortaBilling answers an unknown customer with no customer_info
        return {
            "customer_info": {
                "i_customer": row[0],
                "name": row[1],
                pb_fields.CUSTOMER_EXTENSION_BLOCKING: row[2],
            }
        }

    def get_customer_agreement_info(self, params: dict[str, Any]) -> dict[str, Any]:
        i_customer = self._customer_row(_require(params, "i_customer"))[0]
        conditions = [
            {pb_fields.CONDITION_PRODUCT: r[0], pb_fields.CONDITION_QUANTITY: r[1]}
            for r in self.db.execute(
                "SELECT i_product, max_offered_quantity FROM agreement WHERE i_customer = ? ORDER BY i_product",
                (i_customer,),
            )
        ]
        return {
            "agreement_info": {"i_customer": i_customer, pb_fields.AGREEMENT_CONDITIONS: conditions}
        }

    def _listing(
        self,
        key: str,
        params: dict[str, Any],
        count_sql: str,
        page_sql: str,
        args: tuple[Any, ...],
        shape: Callable[[list[tuple[Any, ...]]], list[dict[str, Any]]],
    ) -> dict[str, Any]:
        limit, offset = self._page(params)
        rows = self.db.execute(page_sql + " LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        answer: dict[str, Any] = {key: shape(rows)}
        if params.get("get_total"):
            answer["total"] = self.db.execute(count_sql, args).fetchone()[0]
        return answer

    def get_number_list(self, params: dict[str, Any]) -> dict[str, Any]:
        i_customer = self._customer_row(_require(params, "i_customer"))[0]
        return self._listing(
            "number_list",
            params,
            "SELECT COUNT(*) FROM numbers WHERE i_customer = ?",
            "SELECT i_did_number, number FROM numbers WHERE i_customer = ? ORDER BY i_did_number",
            (i_customer,),
            lambda rows: [{"i_did_number": r[0], "number": r[1]} for r in rows],
        )

    def get_extensions_list(self, params: dict[str, Any]) -> dict[str, Any]:
        i_customer = self._customer_row(_require(params, "i_customer"))[0]
        return self._listing(
            "extensions_list",
            params,
            "SELECT COUNT(*) FROM extensions WHERE i_customer = ?",
            "SELECT i_c_ext, id, name, i_account FROM extensions WHERE i_customer = ? ORDER BY i_c_ext",
            (i_customer,),
            lambda rows: [
                {"i_c_ext": r[0], "id": r[1], "name": r[2], "i_account": r[3]} for r in rows
            ],
        )

    _ACCOUNT_COLUMNS = (
        "a.i_account, a.id, a.i_customer, a.i_product, a.firstname, a.blocked, a.blocked_by, a.bill_status, "
        "e.id, e.name FROM accounts a LEFT JOIN extensions e ON e.i_account = a.i_account"
    )

    def _account_infos(
        self, rows: list[tuple[Any, ...]], *, with_aliases: bool
    ) -> list[dict[str, Any]]:
        """The accounts of ``rows`` as the API shows them; add-ons and aliases are read for all
        of them at once (two queries a page, not two an account)."""
        ids = [row[0] for row in rows]
        addons = self._grouped("SELECT i_account, i_product FROM addons", "i_account", ids)
        aliases = (
            self._grouped(
                "SELECT i_master_account, i_account, id FROM accounts", "i_master_account", ids
            )
            if with_aliases
            else {}
        )
        infos = []
        for (
            i_account,
            account_id,
            i_customer,
            i_product,
            firstname,
            blocked,
            blocked_by,
            bill_status,
            ext_id,
            ext_name,
        ) in rows:
            info: dict[str, Any] = {
                "i_account": i_account,
                "id": account_id,
                "i_customer": i_customer,
                "i_product": i_product,
                "assigned_addons": [{"i_product": r[0]} for r in addons.get(i_account, ())],
                "blocked": blocked,
                "bill_status": bill_status,
                "firstname": firstname,
                "extension_id": ext_id,
                "extension_name": ext_name,
            }
            if blocked_by:
                info[pb_fields.BLOCKED_BY] = blocked_by
            if with_aliases:
                info[pb_fields.ALIAS_LIST] = [
                    {pb_fields.ALIAS_I_ACCOUNT: r[0], pb_fields.ALIAS_ID: r[1]}
                    for r in aliases.get(i_account, ())
                ]
            infos.append(info)
        return infos

    def _grouped(self, select: str, key: str, ids: list[int]) -> dict[int, list[tuple[Any, ...]]]:
        """Rows of ``select`` whose ``key`` is one of ``ids``, by key, each group in the order of
        the remaining columns. ``ids`` go in chunks: SQLite caps the parameters of a query."""
        groups: dict[int, list[tuple[Any, ...]]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                f"{select} WHERE {key} IN ({marks}) ORDER BY {key}, 2", chunk
            ):
                groups.setdefault(row[0], []).append(row[1:])
        return groups

    def _aliases(self, i_account: int) -> list[dict[str, Any]]:
        return [
            {pb_fields.ALIAS_I_ACCOUNT: r[0], pb_fields.ALIAS_ID: r[1]}
            for r in self.db.execute(
                "SELECT i_account, id FROM accounts WHERE i_master_account = ? ORDER BY i_account",
                (i_account,),
            )
        ]

    def get_account_list(self, params: dict[str, Any]) -> dict[str, Any]:
        i_customer = self._customer_row(_require(params, "i_customer"))[0]
        with_aliases = bool(params.get("with_aliases"))
        return self._listing(
            "account_list",
            params,
            "SELECT COUNT(*) FROM accounts WHERE i_customer = ? AND i_master_account IS NULL",
            f"SELECT {self._ACCOUNT_COLUMNS} WHERE a.i_customer = ? AND a.i_master_account IS NULL "
            "ORDER BY a.i_account",
            (i_customer,),
            lambda rows: self._account_infos(rows, with_aliases=with_aliases),
        )

    def get_account_info(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("i_account") not in (None, ""):
            where, arg = "a.i_account = ?", _require(params, "i_account")
        else:
            where, arg = "a.id = ?", _require(params, "id", str)
        row = self.db.execute(
            f"SELECT {self._ACCOUNT_COLUMNS} WHERE {where} AND a.i_master_account IS NULL", (arg,)
        ).fetchone()
        if row is None:
            return {}
        return {"account_info": self._account_infos([tuple(row)], with_aliases=True)[0]}

    def get_alias_list(self, params: dict[str, Any]) -> dict[str, Any]:
        master = self._open_account(_require(params, pb_fields.ALIAS_LIST_PARAM), allow_closed=True)
        return {pb_fields.ALIAS_LIST: self._aliases(master[0])}

    # ---- writes -------------------------------------------------------------------------------------------

    def _open_account(self, i_account: int, *, allow_closed: bool = False) -> tuple[Any, ...]:
        row = self.db.execute(
            "SELECT i_account, i_customer, i_product, bill_status FROM accounts "
            "WHERE i_account = ? AND i_master_account IS NULL",
            (i_account,),
        ).fetchone()
        if row is None:
            raise Fault("Server.Account.account_not_found", f"account {i_account} not found")
        if row[3] != "O" and not allow_closed:
            raise Fault("Server.Account.account_terminated", f"account {i_account} is terminated")
        return tuple(row)

    def _product(self, i_product: Any, *, addon: bool) -> int:
        try:
            pid = int(i_product)
        except (TypeError, ValueError):
            raise Fault("Client.Validation.invalid_parameter", "i_product is not valid") from None
        row = self.db.execute(
            "SELECT addon_priority FROM products WHERE i_product = ?", (pid,)
        ).fetchone()
        if row is None:
            raise Fault("Server.Product.product_not_found", f"product {pid} not found")
        if (row[0] > 0) != addon:
            kind = "an add-on" if addon else "a main product"
            raise Fault("Server.Product.wrong_product_type", f"product {pid} is not {kind}")
        return pid

    def _check_agreement(self, i_customer: int, i_product: int, *, newly: bool) -> None:
        """A product newly assigned must be in the agreement and within its quantity."""
        if not newly:
            return
        row = self.db.execute(
            "SELECT max_offered_quantity FROM agreement WHERE i_customer = ? AND i_product = ?",
            (i_customer, i_product),
        ).fetchone()
        if row is None:
            raise Fault(
                "Server.Customer.product_not_in_agreement",
                f"product {i_product} is not in the agreement",
            )
        in_use = self.db.execute(
            "SELECT COUNT(*) FROM accounts a WHERE a.i_customer = ? AND a.bill_status = 'O' AND a.i_master_account IS NULL "
            "AND (a.i_product = ? OR EXISTS (SELECT 1 FROM addons x WHERE x.i_account = a.i_account AND x.i_product = ?))",
            (i_customer, i_product, i_product),
        ).fetchone()[0]
        if row[0] and in_use + 1 > row[0]:
            raise Fault(
                "Server.Customer.quantity_exceeded",
                f"product {i_product}: quantity {row[0]} reached",
            )

    def add_account(self, params: dict[str, Any]) -> dict[str, Any]:
        info = params.get("account_info") or {}
        i_customer = self._customer_row(_require(info, "i_customer"))[0]
        account_id = _require(info, "id", str)
        if self.db.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone():
            raise Fault(
                "Server.Account.duplicate_id", f"an account with ID {account_id} already exists"
            )
        i_product = self._product(info.get("i_product"), addon=False)
        addons = sorted(
            {
                self._product(a.get("i_product"), addon=True)
                for a in info.get("assigned_addons") or []
            }
        )
        for pid in [i_product, *addons]:
            self._check_agreement(i_customer, pid, newly=True)
        blocked = str(info.get("blocked", "N")).upper() == "Y"
        cursor = self.db.execute(
            "INSERT INTO accounts (id, i_customer, i_product, firstname, blocked, blocked_by) VALUES (?, ?, ?, ?, ?, ?)",
            (
                account_id,
                i_customer,
                i_product,
                str(info.get("firstname") or ""),
                "Y" if blocked else "N",
                (info.get(pb_fields.BLOCKED_BY) or "customer") if blocked else None,
            ),
        )
        i_account = cursor.lastrowid
        self.db.executemany(
            "INSERT INTO addons (i_account, i_product) VALUES (?, ?)",
            [(i_account, p) for p in addons],
        )
        return {"i_account": i_account}

    def add_customer_extension(self, params: dict[str, Any]) -> dict[str, Any]:
        i_customer = self._customer_row(_require(params, "i_customer"))[0]
        ext_id = _require(params, "id", str)
        account = self._open_account(_require(params, "i_account"))
        if account[1] != i_customer:
            raise Fault(
                "Server.Customer.account_of_other_customer",
                "the account belongs to another customer",
            )
        if self.db.execute(
            "SELECT 1 FROM extensions WHERE i_customer = ? AND id = ?", (i_customer, ext_id)
        ).fetchone():
            raise Fault("Server.Customer.duplicate_extension", f"extension {ext_id} already exists")
        if self.db.execute(
            "SELECT 1 FROM extensions WHERE i_account = ?", (account[0],)
        ).fetchone():
            raise Fault(
                "Server.Customer.account_has_extension", "the account already has an extension"
            )
        cursor = self.db.execute(
            "INSERT INTO extensions (i_customer, id, name, i_account) VALUES (?, ?, ?, ?)",
            (i_customer, ext_id, str(params.get("name") or ""), account[0]),
        )
        return {"i_c_ext": cursor.lastrowid}

    def update_customer_extension(self, params: dict[str, Any]) -> dict[str, Any]:
        i_customer = self._customer_row(_require(params, "i_customer"))[0]
        i_c_ext = _require(params, "i_c_ext")
        found = self.db.execute(
            "UPDATE extensions SET name = ? WHERE i_c_ext = ? AND i_customer = ?",
            (str(params.get("name") or ""), i_c_ext, i_customer),
        ).rowcount
        if not found:
            raise Fault("Server.Customer.extension_not_found", f"extension {i_c_ext} not found")
        return {"i_c_ext": i_c_ext}

    def update_account(self, params: dict[str, Any]) -> dict[str, Any]:
        info = params.get("account_info") or {}
        i_account, i_customer, current_product, _ = self._open_account(_require(info, "i_account"))
        if "i_product" in info:
            pid = self._product(info["i_product"], addon=False)
            self._check_agreement(i_customer, pid, newly=pid != current_product)
            self.db.execute(
                "UPDATE accounts SET i_product = ? WHERE i_account = ?", (pid, i_account)
            )
        if "assigned_addons" in info:
            wanted = {
                self._product(a.get("i_product"), addon=True) for a in info["assigned_addons"] or []
            }
            held = {
                r[0]
                for r in self.db.execute(
                    "SELECT i_product FROM addons WHERE i_account = ?", (i_account,)
                )
            }
            for pid in sorted(wanted - held):
                self._check_agreement(i_customer, pid, newly=True)
            self.db.execute("DELETE FROM addons WHERE i_account = ?", (i_account,))
            self.db.executemany(
                "INSERT INTO addons (i_account, i_product) VALUES (?, ?)",
                [(i_account, p) for p in sorted(wanted)],
            )
        if "blocked" in info:
            blocked = str(info["blocked"]).upper() == "Y"
            self.db.execute(
                "UPDATE accounts SET blocked = ?, blocked_by = ? WHERE i_account = ?",
                (
                    "Y" if blocked else "N",
                    (info.get(pb_fields.BLOCKED_BY) or "customer") if blocked else None,
                    i_account,
                ),
            )
        if "firstname" in info:
            self.db.execute(
                "UPDATE accounts SET firstname = ? WHERE i_account = ?",
                (str(info["firstname"] or ""), i_account),
            )
        return {"i_account": i_account}

    def add_alias(self, params: dict[str, Any]) -> dict[str, Any]:
        info = params.get("alias_info") or {}
        master, i_customer, _, _ = self._open_account(_require(info, "i_master_account"))
        did = _require(info, "id", str)
        if self.db.execute("SELECT 1 FROM accounts WHERE id = ?", (did,)).fetchone():
            raise Fault("Server.Account.duplicate_alias", f"{did} is already in use")
        if not self.db.execute(
            "SELECT 1 FROM numbers WHERE number = ? AND i_customer = ?", (did, i_customer)
        ).fetchone():
            raise Fault("Server.DID.number_not_owned", f"{did} is not in the customer's DID pool")
        cursor = self.db.execute(
            "INSERT INTO accounts (id, i_customer, i_master_account) VALUES (?, ?, ?)",
            (did, i_customer, master),
        )
        return {"i_account": cursor.lastrowid}

    def delete_alias(self, params: dict[str, Any]) -> dict[str, Any]:
        info = params.get("alias_info") or {}
        i_alias = _require(info, "i_account")
        found = self.db.execute(
            "DELETE FROM accounts WHERE i_account = ? AND i_master_account IS NOT NULL", (i_alias,)
        ).rowcount
        if not found:
            raise Fault("Server.Account.alias_not_found", f"alias {i_alias} not found")
        return {"success": 1}

    def terminate_account(self, params: dict[str, Any]) -> dict[str, Any]:
        i_account = self._open_account(_require(params, "i_account"))[0]
        self.db.execute("UPDATE accounts SET bill_status = 'C' WHERE i_account = ?", (i_account,))
        # A terminated account's DIDs go back to the pool; its extension record is kept (so its
        # name is still known), as the embedded backend keeps a terminated account's name.
        self.db.execute("DELETE FROM accounts WHERE i_master_account = ?", (i_account,))
        return {"success": 1}
