"""The embedded backend: billing state in a real SQLite database, shaped as PortaBilling holds it.

Reads are per customer (indexed by customer), so planning one customer costs the same whatever
else the database holds. Apply writes one customer inside one IMMEDIATE transaction: SQLite's
write lock keeps two applies from interleaving, and a crash rolls the customer back whole.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import groupby
from typing import Any, assert_never

from reconciler.auditchain import check
from reconciler.backends import SQLITE, BackendSettings, BackendURL, parse_backend_url
from reconciler.backends.base import AuditEntry, Backend, Capabilities, CustomerSession
from reconciler.backends.sqlite_audit import AuditTable
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
)
from reconciler.errors import BackendError, BackendNotFound, LockTimeout, UsageError
from reconciler.model import (
    OPEN,
    TERMINATED,
    Account,
    Catalogue,
    Customer,
    CustomerState,
    Product,
    managed_kind,
)
from reconciler.statefile import BillingState

# 2: the audit table's hash chain (prev, hash). A version-1 database is upgraded in place when
# opened: the two columns are added, and its earlier rows, having no hash, verify as written
# before the chain until an operator starts one (`history --new-chain`).
SCHEMA_VERSION = 2

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS products (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL CHECK (type IN ('main', 'addon'))
);
CREATE TABLE IF NOT EXISTS customers (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  block_extensions INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS agreement (
  customer_id INTEGER NOT NULL REFERENCES customers (id),
  product_id INTEGER NOT NULL REFERENCES products (id),
  quantity INTEGER NOT NULL CHECK (quantity >= 0),
  PRIMARY KEY (customer_id, product_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS did_pool (
  number TEXT PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers (id)
);
CREATE INDEX IF NOT EXISTS did_pool_by_customer ON did_pool (customer_id);
CREATE TABLE IF NOT EXISTS accounts (
  id TEXT PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers (id),
  name TEXT NOT NULL,
  product_id INTEGER REFERENCES products (id),
  blocked_by TEXT CHECK (blocked_by IN ('admin', 'customer')),
  status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'terminated'))
);
CREATE INDEX IF NOT EXISTS accounts_by_customer ON accounts (customer_id);
CREATE TABLE IF NOT EXISTS account_addons (
  account_id TEXT NOT NULL REFERENCES accounts (id),
  product_id INTEGER NOT NULL REFERENCES products (id),
  PRIMARY KEY (account_id, product_id)
) WITHOUT ROWID;
-- A DID is an alias of at most one account: the primary key is the invariant.
CREATE TABLE IF NOT EXISTS aliases (
  did TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts (id)
);
CREATE INDEX IF NOT EXISTS aliases_by_account ON aliases (account_id);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time TEXT NOT NULL,
  customer_id INTEGER NOT NULL,
  op TEXT NOT NULL,
  account TEXT NOT NULL,
  change TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  git_commit TEXT,
  prev TEXT,
  hash TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_customer ON audit (customer_id, seq);
"""

DEFAULT_LOCK_TIMEOUT = 30.0
_TABLES = frozenset(
    {
        "meta", "products", "customers", "agreement", "did_pool", "accounts", "account_addons",
        "aliases", "audit",
    }
)


def sqlite_path(url: str) -> str:
    """'sqlite:///rel/path' -> 'rel/path'; 'sqlite:////abs/path' -> '/abs/path'."""
    try:
        where: BackendURL | None = parse_backend_url(url)
    except UsageError:
        where = None
    if where is None or where.kind is not SQLITE:
        raise BackendError(f"not a sqlite URL: {url}")
    if not where.path:
        raise BackendError(f"{url}: the URL names no database file")
    return where.path


class SqliteBackend(Backend):
    # One IMMEDIATE transaction per customer, audit rows included; the whole state is a file.
    capabilities = Capabilities(transactions=True, state_files=True)
    description = "the embedded sqlite backend"

    def __init__(
        self, url: str, *, create: bool = False, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    ):
        self.url = url
        self.path = sqlite_path(url)
        self.lock_timeout = lock_timeout
        if not create and not os.path.isfile(self.path):
            raise BackendNotFound(
                f"{self.path}: no billing database here "
                "(create one with `reconciler state load FILE`)"
            )
        if create:
            folder = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=lock_timeout, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            if create:
                self.db.executescript(_DDL)
                self._add_audit_chain()
                self.db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            else:
                self._check_schema()
        except sqlite3.DatabaseError as exc:
            raise BackendError(f"{self.path}: not a usable billing database ({exc})") from exc
        self._catalogue: Catalogue | None = None
        self.audit_table = AuditTable(self.db, self.path)
        self.audit = self.audit_table

    def _check_schema(self) -> None:
        row = self.db.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
        if row is None or int(row[0]) not in (1, SCHEMA_VERSION):
            raise BackendError(f"{self.path}: not a billing database of this version")
        rows = self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        tables = {r[0] for r in rows}
        missing = sorted(_TABLES - tables)
        if missing:
            raise BackendError(
                f"{self.path}: not a usable billing database "
                f"(missing tables: {', '.join(missing)}); "
                "load a state with `reconciler state load FILE`"
            )
        if int(row[0]) == 1:
            self._upgrade_from_1()

    def _add_audit_chain(self) -> None:
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(audit)")}
        for column in ("prev", "hash"):
            if column not in columns:
                self.db.execute(f"ALTER TABLE audit ADD COLUMN {column} TEXT")

    def _upgrade_from_1(self) -> None:
        """Version 1 had no hash chain: add its columns in place (one transaction)."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self._add_audit_chain()
            self.db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )
            self.db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise BackendError(
                f"{self.path}: this billing database predates the audit log's hash chain and could "
                f"not be upgraded in place ({exc}); make the file and its folder writable and run "
                "the command again (the upgrade adds two columns to the audit table)"
            ) from None

    @classmethod
    def open(cls, where: BackendURL, settings: BackendSettings, *, create: bool = False) -> Backend:
        return cls(where.url, create=create, lock_timeout=settings.lock_timeout)

    def close(self) -> None:
        self.db.close()

    # ---- reading ------------------------------------------------------------------------------

    def catalogue(self) -> Catalogue:
        if self._catalogue is None:
            rows = self.db.execute("SELECT id, name, type FROM products ORDER BY id").fetchall()
            self._catalogue = Catalogue(tuple(Product(r[0], r[1], r[2]) for r in rows))
        return self._catalogue

    def read_customer(self, customer_id: int, catalogue: Catalogue) -> CustomerState | None:
        return _read_customer(self.db, customer_id, catalogue)

    def customer_ids(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM customers ORDER BY id")]

    # ---- whole state ----------------------------------------------------------------------------

    def load_state(self, state: BillingState) -> None:
        """Replace all billing state with ``state`` in one transaction; the audit log is kept."""
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LockTimeout(f"{self.path}: the database is busy ({exc})") from exc
        try:
            for table in (
                "aliases", "account_addons", "accounts", "did_pool", "agreement", "customers",
                "products",
            ):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            db.executemany(
                "INSERT INTO products (id, name, type) VALUES (?, ?, ?)",
                [(p.id, p.name, p.type) for p in state.products],
            )
            ids = {p.name: p.id for p in state.products}
            db.executemany(
                "INSERT INTO customers (id, name, block_extensions) VALUES (?, ?, ?)",
                [(c.id, c.name, int(c.block_extensions)) for c in state.customers],
            )
            db.executemany(
                "INSERT INTO agreement (customer_id, product_id, quantity) VALUES (?, ?, ?)",
                [(c.id, ids[name], qty) for c in state.customers for name, qty in c.agreement],
            )
            db.executemany(
                "INSERT INTO did_pool (number, customer_id) VALUES (?, ?)",
                [(did, c.id) for c in state.customers for did in c.dids],
            )
            db.executemany(
                _INSERT_ACCOUNT,
                [
                    (
                        a.id, a.customer, a.name, ids.get(a.product) if a.product else None,
                        a.blocked_by, a.status,
                    )
                    for a in state.accounts
                ],
            )
            db.executemany(
                "INSERT INTO account_addons (account_id, product_id) VALUES (?, ?)",
                [(a.id, ids[name]) for a in state.accounts for name in a.addons],
            )
            db.executemany(
                "INSERT INTO aliases (did, account_id) VALUES (?, ?)",
                [(did, a.id) for a in state.accounts for did in a.dids],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._catalogue = None

    def dump_state(self) -> BillingState:
        catalogue = self.catalogue()
        customers = []
        accounts: list[Account] = []
        for customer_id in self.customer_ids():
            state = self.read_customer(customer_id, catalogue)
            assert state is not None
            customers.append(state.customer)
            accounts.extend(state.accounts)
        return BillingState(catalogue.products, tuple(customers), tuple(accounts))

    # ---- apply --------------------------------------------------------------------------------

    @contextmanager
    def customer_session(self, customer_id: int, catalogue: Catalogue) -> Iterator[CustomerSession]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LockTimeout(
                f"{self.path}: another apply holds the database lock; "
                f"waited {self.lock_timeout:g} s "
                f"for customer {customer_id} ({exc})"
            ) from exc
        session = _SqliteSession(self.db, customer_id, catalogue, self.audit_table)
        try:
            yield session
        except BaseException:
            self.db.execute("ROLLBACK")
            session.written.clear()
            raise
        else:
            self.db.execute("COMMIT")

    def audit_location(self) -> str:
        # The audit table lives in the billing database itself, in each customer's transaction.
        return f"the audit table of {os.path.abspath(self.path)}"

    def audit_exists(self) -> bool:
        return True  # a database that opened has its audit table (checked by _check_schema)

    def history(self, customer_id: int | None = None) -> list[AuditEntry]:
        _chain, entries, _unreadable = check(self.audit_table.records())
        return [e for e in entries if customer_id is None or e.customer == customer_id]


def _read_customer(
    db: sqlite3.Connection, customer_id: int, catalogue: Catalogue
) -> CustomerState | None:
    row = db.execute(
        "SELECT id, name, block_extensions FROM customers WHERE id = ?", (customer_id,)
    ).fetchone()
    if row is None:
        return None
    agreement = db.execute(
        "SELECT p.name, a.quantity FROM agreement a JOIN products p ON p.id = a.product_id "
        "WHERE a.customer_id = ? ORDER BY p.name",
        (customer_id,),
    ).fetchall()
    pool = frozenset(
        r[0]
        for r in db.execute("SELECT number FROM did_pool WHERE customer_id = ?", (customer_id,))
    )
    customer = Customer(row[0], row[1], bool(row[2]), tuple((n, q) for n, q in agreement), pool)

    addons: dict[str, list[str]] = {}
    for account_id, product_id in db.execute(
        "SELECT x.account_id, x.product_id FROM account_addons x "
        "JOIN accounts a ON a.id = x.account_id WHERE a.customer_id = ?",
        (customer_id,),
    ):
        product = catalogue.by_id(product_id)
        addons.setdefault(account_id, []).append(product.name if product else str(product_id))
    dids: dict[str, list[str]] = {}
    for did, account_id in db.execute(
        "SELECT x.did, x.account_id FROM aliases x JOIN accounts a ON a.id = x.account_id "
        "WHERE a.customer_id = ?",
        (customer_id,),
    ):
        dids.setdefault(account_id, []).append(did)
    accounts = []
    for account_id, name, product_id, blocked_by, status in db.execute(
        "SELECT id, name, product_id, blocked_by, status FROM accounts "
        "WHERE customer_id = ? ORDER BY id",
        (customer_id,),
    ):
        product = catalogue.by_id(product_id) if product_id is not None else None
        accounts.append(
            Account(
                id=account_id,
                customer=customer_id,
                name=name,
                product=product.name if product else None,
                addons=tuple(sorted(addons.get(account_id, ()))),
                dids=tuple(sorted(dids.get(account_id, ()))),
                blocked_by=blocked_by,
                status=status,
            )
        )
    # Accounts elsewhere whose IDs carry this customer's managed pattern: never to be touched.
    prefix = f"ph{customer_id}"
    foreign = frozenset(
        r[0]
        for r in db.execute(
            "SELECT id FROM accounts WHERE id >= ? AND id < ? AND customer_id != ?",
            (prefix, prefix + "\U0010ffff", customer_id),
        )
        if managed_kind(r[0], customer_id) is not None
    )
    foreign_dids = frozenset(
        r[0]
        for r in db.execute(
            "SELECT x.did FROM aliases x JOIN did_pool d ON d.number = x.did "
            "JOIN accounts a ON a.id = x.account_id WHERE d.customer_id = ? AND a.customer_id != ?",
            (customer_id, customer_id),
        )
    )
    return CustomerState(customer, tuple(accounts), catalogue, foreign, foreign_dids)


# The statements a session writes with (see _SqliteSession._writes).
_INSERT_ACCOUNT = (
    "INSERT INTO accounts (id, customer_id, name, product_id, blocked_by, status) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_ADDON = "INSERT INTO account_addons (account_id, product_id) VALUES (?, ?)"
_DELETE_ADDON = "DELETE FROM account_addons WHERE account_id = ? AND product_id = ?"
_SET_PRODUCT = "UPDATE accounts SET product_id = ? WHERE id = ? AND customer_id = ?"
_SET_NAME = "UPDATE accounts SET name = ? WHERE id = ? AND customer_id = ?"
_SET_BLOCKED = "UPDATE accounts SET blocked_by = ? WHERE id = ? AND customer_id = ?"
_INSERT_ALIAS = "INSERT INTO aliases (did, account_id) VALUES (?, ?)"
_DELETE_ALIAS = "DELETE FROM aliases WHERE did = ? AND account_id = ?"
_DELETE_ALIASES = "DELETE FROM aliases WHERE account_id = ?"
_TERMINATE = f"UPDATE accounts SET status = '{TERMINATED}' WHERE id = ? AND customer_id = ?"


class _SqliteSession(CustomerSession):
    def __init__(
        self, db: sqlite3.Connection, customer_id: int, catalogue: Catalogue, audit: AuditTable
    ) -> None:
        self.db = db
        self.audit = audit
        self.customer_id = customer_id
        self.catalogue = catalogue
        self.written: list[Change] = []

    @property
    def done(self) -> list[Change]:
        return list(self.written)

    def read(self) -> CustomerState | None:
        return _read_customer(self.db, self.customer_id, self.catalogue)

    def _product_id(self, name: str | None) -> int:
        product = None if name is None else self.catalogue.by_name(name)
        if product is None:
            raise BackendError(f"no product named {name!r} in billing")
        return product.id

    def execute(
        self,
        changes: list[Change],
        *,
        on_written: Callable[[Change], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        # One transaction per customer: the customer is the unit of writing here, so ``stop``
        # is honoured between customers by the caller, and the audit rows join the transaction.
        # Runs of the same kind of change are written with one executemany per statement: plans
        # are sorted by op, so a customer's hundred creations cost one statement, not a hundred.
        try:
            for _kind, run in groupby(changes, key=type):
                batch = list(run)
                statements: dict[str, list[tuple[Any, ...]]] = {}
                for item in batch:
                    for sql, rows in self._writes(item):
                        statements.setdefault(sql, []).extend(rows)
                for sql, rows in statements.items():
                    self.db.executemany(sql, rows)
                self.written.extend(batch)
        except sqlite3.IntegrityError as exc:
            raise BackendError(
                f"billing refused a change for customer {self.customer_id}: {exc}"
            ) from exc

    def _writes(self, item: Change) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """The statements (with their rows) that write ``item``, always the same ones per kind."""
        cid, account = self.customer_id, item.account
        match item:
            case CreateAccount():
                blocked = "customer" if item.blocked else None
                product = self._product_id(item.product)
                return [
                    (_INSERT_ACCOUNT, [(account, cid, item.name, product, blocked, OPEN)]),
                    (_INSERT_ADDON, [(account, self._product_id(a)) for a in item.addons]),
                ]
            case SetProduct():
                return [(_SET_PRODUCT, [(self._product_id(item.to), account, cid)])]
            case SetName():
                return [(_SET_NAME, [(item.to, account, cid)])]
            case AddAddon():
                return [(_INSERT_ADDON, [(account, self._product_id(item.product))])]
            case RemoveAddon():
                return [(_DELETE_ADDON, [(account, self._product_id(item.product))])]
            case AddAlias():
                return [(_INSERT_ALIAS, [(item.did, account)])]
            case RemoveAlias():
                return [(_DELETE_ALIAS, [(item.did, account)])]
            case Block():
                return [(_SET_BLOCKED, [("customer", account, cid)])]
            case Unblock():
                return [(_SET_BLOCKED, [(None, account, cid)])]
            case TerminateAccount():
                return [(_TERMINATE, [(account, cid)]), (_DELETE_ALIASES, [(account,)])]
            case _:
                assert_never(item)

    def record(self, entries: list[AuditEntry]) -> None:
        # Chained onto the head read inside this transaction (SQLite's write lock is held).
        self.audit.append(entries)
