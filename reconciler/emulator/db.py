"""The emulator's billing database: tables shaped the way PortaBilling's API shows its objects,
and the lookups every API method shares (a customer, an open account, a product, the agreement).

Accounts and aliases share one table and one ID space, as on a real server: an alias (DID) is an
account of its own whose ``i_master_account`` points at the account it belongs to. A customer
extension links an extension number and its name to an account. Add-ons carry the dates a real
server shows; one whose ``addon_effective_to`` has passed is listed but no longer assigned.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from reconciler.emulator.profile import V3, WireProfile

_DDL = """
CREATE TABLE IF NOT EXISTS products (
  i_product INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, addon_priority INTEGER NOT NULL
);
-- i_role is the customer's self-care role: 2 may block its extensions, 3 may not.
CREATE TABLE IF NOT EXISTS customers (
  i_customer INTEGER PRIMARY KEY, name TEXT NOT NULL, i_role INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agreement (
  i_customer INTEGER NOT NULL, i_product INTEGER NOT NULL, max_offered_quantity INTEGER NOT NULL,
  PRIMARY KEY (i_customer, i_product)
);
CREATE TABLE IF NOT EXISTS numbers (
  i_did_number INTEGER PRIMARY KEY AUTOINCREMENT, number TEXT NOT NULL UNIQUE,
  i_customer INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS numbers_by_customer ON numbers (i_customer, i_did_number);
-- Accounts and aliases share one ID space: an ID (or DID) is held by one row at most.
CREATE TABLE IF NOT EXISTS accounts (
  i_account INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  i_customer INTEGER NOT NULL,
  i_product INTEGER,
  billing_model INTEGER NOT NULL DEFAULT 1,
  firstname TEXT NOT NULL DEFAULT '',
  blocked TEXT NOT NULL DEFAULT 'N',
  blocked_by TEXT,
  note TEXT NOT NULL DEFAULT '',
  bill_status TEXT NOT NULL DEFAULT 'O',
  i_master_account INTEGER
);
CREATE INDEX IF NOT EXISTS accounts_by_customer ON accounts (i_customer, i_account);
CREATE INDEX IF NOT EXISTS accounts_by_master ON accounts (i_master_account);
CREATE TABLE IF NOT EXISTS addons (
  i_account INTEGER NOT NULL, i_product INTEGER NOT NULL,
  addon_effective_from TEXT NOT NULL, addon_effective_to TEXT,
  PRIMARY KEY (i_account, i_product)
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

SCHEMA_VERSION = 3  # of the tables above; an emulator database of another version is rebuilt

TABLES = ("extensions", "addons", "accounts", "numbers", "agreement", "customers", "products")

# Self-care roles: which one may block is a server's configuration; the emulator fixes these two.
ROLE_MAY_BLOCK = 2
ROLE_MAY_NOT_BLOCK = 3

OPEN, INACTIVE, CLOSED = "O", "I", "C"

# An add-on row is assigned while it has no end date or its end date is still ahead. Dates are
# "YYYY-MM-DD HH:MM:SS" in the server's time zone, which compare correctly as text (except in
# the hour a daylight-saving change repeats, as on a real server that keeps local times).
ACTIVE_ADDON = "(x.addon_effective_to IS NULL OR x.addon_effective_to > ?)"


def now_stamp(zone: tzinfo, offset_s: float = 0.0) -> str:
    """Now (plus ``offset_s``) as billing writes dates: local time of the server's zone."""
    return datetime.fromtimestamp(time.time() + offset_s, zone).strftime("%Y-%m-%d %H:%M:%S")


class Fault(Exception):
    """A PortaBilling fault: HTTP 500 with {"faultcode", "faultstring"}."""

    def __init__(self, faultcode: str, faultstring: str) -> None:
        super().__init__(faultstring)
        self.faultcode = faultcode
        self.faultstring = faultstring


Method = Callable[[dict[str, Any]], dict[str, Any]]


class Database:
    """The connection and the lookups shared by the API methods (reads.py, writes.py).

    ``page_cap`` is the most items one page of any list holds. ``legacy_blocking_field`` keeps the
    first wire contract's ``customer_info.extension_blocking`` next to ``i_role``. ``profile``
    says how answers look where servers differ (profile.py).
    """

    def __init__(
        self,
        path: str = ":memory:",
        *,
        page_cap: int = 100,
        legacy_blocking_field: bool = True,
        profile: WireProfile = V3,
    ) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if self.db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            # A file from an older emulator: its tables are only a copy of a state file, which
            # is loaded again on start, so they are rebuilt rather than migrated.
            for table in TABLES:
                self.db.execute(f"DROP TABLE IF EXISTS {table}")
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self.db.executescript(_DDL)
        self.page_cap = page_cap
        self.legacy_blocking_field = legacy_blocking_field
        self.profile = profile

    def now(self, offset_s: float = 0.0) -> str:
        return now_stamp(self.profile.zone, offset_s)

    def close(self) -> None:
        self.db.close()

    # ---- lookups that fault when the object is missing ------------------------------------------

    def customer(self, i_customer: int) -> tuple[int, str, int]:
        """(i_customer, name, i_role) of a customer, or the fault a server answers."""
        row = self.db.execute(
            "SELECT i_customer, name, i_role FROM customers WHERE i_customer = ?", (i_customer,)
        ).fetchone()
        if row is None:
            raise Fault("Server.Customer.not_found", f"customer {i_customer} not found")
        return row[0], row[1], row[2]

    def account(self, i_account: int, *, allow_closed: bool = False) -> tuple[int, int, Any]:
        """(i_account, i_customer, i_product) of a real (non-alias) account; a terminated one
        is a fault unless ``allow_closed`` (an inactive one, never used yet, is not)."""
        row = self.db.execute(
            "SELECT i_account, i_customer, i_product, bill_status FROM accounts "
            "WHERE i_account = ? AND i_master_account IS NULL",
            (i_account,),
        ).fetchone()
        if row is None:
            raise Fault("Server.Account.not_found", f"account {i_account} not found")
        if row[3] == CLOSED and not allow_closed:
            raise Fault("Server.Account.account_terminated", f"account {i_account} is terminated")
        return row[0], row[1], row[2]

    def product(self, i_product: int, *, addon: bool) -> int:
        row = self.db.execute(
            "SELECT addon_priority FROM products WHERE i_product = ?", (i_product,)
        ).fetchone()
        if row is None:
            raise Fault("Server.Product.not_found", f"product {i_product} not found")
        if (row[0] > 0) != addon:
            kind = "an add-on" if addon else "a main product"
            raise Fault("Server.Product.wrong_product_type", f"product {i_product} is not {kind}")
        return i_product

    def check_agreement(self, i_customer: int, i_product: int) -> None:
        """A product newly assigned must be in the agreement and within its quantity (0 is
        unlimited); assignments a customer already holds are never judged again."""
        row = self.db.execute(
            "SELECT max_offered_quantity FROM agreement WHERE i_customer = ? AND i_product = ?",
            (i_customer, i_product),
        ).fetchone()
        if row is None:
            raise Fault(
                "Server.Customer.product_not_in_agreement",
                f"product {i_product} is not in the agreement",
            )
        if row[0] and self.in_use(i_customer, i_product) + 1 > row[0]:
            raise Fault(
                "Server.Customer.quantity_exceeded",
                f"product {i_product}: quantity {row[0]} reached",
            )

    def in_use(self, i_customer: int, i_product: int) -> int:
        """Live (open or inactive) accounts of the customer that hold the product as main
        product or live add-on."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM accounts a WHERE a.i_customer = ? AND a.bill_status != 'C' "
            "AND a.i_master_account IS NULL AND (a.i_product = ? OR EXISTS (SELECT 1 FROM addons x "
            f"WHERE x.i_account = a.i_account AND x.i_product = ? AND {ACTIVE_ADDON}))",
            (i_customer, i_product, i_product, self.now()),
        ).fetchone()
        return int(row[0])

    def id_holder(self, account_id: str) -> tuple[int, int, Any] | None:
        """(i_account, i_customer, i_master_account) of the row holding an account ID or DID."""
        row = self.db.execute(
            "SELECT i_account, i_customer, i_master_account FROM accounts WHERE id = ?",
            (account_id,),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    # ---- lists ----------------------------------------------------------------------------------

    def listing(
        self,
        key: str,
        params: dict[str, Any],
        count_sql: str,
        page_sql: str,
        args: tuple[Any, ...],
        shape: Callable[[list[tuple[Any, ...]]], list[dict[str, Any]]],
    ) -> dict[str, Any]:
        """One page of a list, never longer than ``page_cap`` whatever ``limit`` asks, with the
        ``total`` of the whole list (a client reads until it has that many or a page is empty)."""
        if "offset" in params and "limit" not in params:
            # A client that pages without a limit relies on one server's default page size.
            raise Fault(
                "Client.Validation.missing_parameter", "offset needs limit: send both or neither"
            )
        limit = min(int(params.get("limit") or self.page_cap), self.page_cap)
        offset = int(params.get("offset") or 0)
        rows = self.db.execute(page_sql + " LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        return {key: shape(rows), "total": self.db.execute(count_sql, args).fetchone()[0]}

    def grouped(self, select: str, key: str, ids: list[int]) -> dict[int, list[tuple[Any, ...]]]:
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
