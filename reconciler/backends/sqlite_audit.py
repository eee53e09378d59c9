"""The embedded backend's audit log: the ``audit`` table of the billing database, hash-chained.

Appends happen inside the customer's IMMEDIATE transaction, so SQLite's write lock serialises
them: the head read there is the head the new rows chain onto, whoever else applies. A broken
chain refuses the append, and the transaction (the customer's billing changes with it) rolls back.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from reconciler.auditchain import (
    NEW_CHAIN,
    AuditChainBroken,
    ChainCheck,
    Problem,
    Stored,
    refusal,
    restart_change,
    restart_prev,
    seal,
)
from reconciler.backends.base import AuditEntry
from reconciler.errors import LockTimeout, ReconcilerError

_COLUMNS = "seq, time, customer_id, op, account, change, fingerprint, git_commit, prev, hash"
# What json.dumps(change, sort_keys=True) writes, without building an encoder for every entry.
_AUDIT_JSON = json.JSONEncoder(sort_keys=True)


def _stored(row: tuple[Any, ...]) -> Stored:
    seq, time, customer, op, account, change, fingerprint, git_commit, prev, hash_ = row
    where = f"entry {seq}"
    try:
        change_value = json.loads(change)
    except (TypeError, ValueError) as exc:
        return Stored(where, None, hash_, f"its change is not JSON ({exc})", time=str(time))
    body: dict[str, Any] = {
        "time": time, "customer": customer, "op": op, "account": account, "change": change_value,
        "fingerprint": fingerprint, "git_commit": git_commit,
    }
    if prev is not None:
        body["prev"] = prev
    return Stored(where, body, hash_)


class AuditTable:
    """The ``audit`` table as an AuditStore; what this run verified is kept (seq and last row)."""

    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self.db = db
        self.path = path
        self.chain = ChainCheck()
        self._seq = 0  # the last row this run verified
        self._last: Stored | None = None
        # Rows this run inserted in a transaction not known to be committed yet: (first seq,
        # last seq, last hash). Once they are found committed they count as verified unread.
        self._pending: tuple[int, int, str] | None = None

    def location(self) -> str:
        return f"the audit table of {os.path.abspath(self.path)}"

    def _rows(self, after: int) -> Iterator[tuple[int, Stored]]:
        cursor = self.db.execute(
            f"SELECT {_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq", (after,)  # noqa: S608
        )
        for row in cursor:
            yield row[0], _stored(row)

    def records(self) -> Iterator[Stored]:
        for _seq, record in self._rows(0):
            yield record

    def _catch_up(self) -> ChainCheck:
        """Verify the rows added since this run last looked (all of them the first time)."""
        self._take_own_rows()
        if self._last is not None and self.chain.problem is None:
            # The last row verified must still be there as it was: a cheap guard against a
            # rewrite behind this run's back (the full check is `history --verify`).
            query = f"SELECT {_COLUMNS} FROM audit WHERE seq = ?"  # noqa: S608
            row = self.db.execute(query, (self._seq,)).fetchone()
            if row is None or _stored(row) != self._last:
                self.chain.problem = Problem(self._last.where, self._last.label(),
                                             "was changed or removed while this run was "
                                             "using the log")
        for seq, record in self._rows(self._seq):
            self.chain.feed(record)
            self._seq, self._last = seq, record
        return self.chain

    def _take_own_rows(self) -> None:
        # This run's own rows, sealed onto the head it had verified under the write lock, need no
        # reading back once committed: a big apply would otherwise hash each entry twice.
        pending, self._pending = self._pending, None
        if pending is None or self.chain.problem is not None:
            return
        first, last, head = pending
        row = self.db.execute(f"SELECT {_COLUMNS} FROM audit WHERE seq = ?", (last,)).fetchone()  # noqa: S608
        if row is None or row[-1] != head or first != self._seq + 1:
            return  # rolled back (or not what was written): read normally
        self.chain.extend_own(last - first + 1, head, f"entry {last}")
        self._seq, self._last = last, _stored(row)

    def _refusal(self) -> str:
        return refusal(self.chain.verdict(), self.location())

    def verify(self) -> None:
        if self._catch_up().problem is not None:
            raise AuditChainBroken(self._refusal())

    def head(self) -> tuple[int, str]:
        chain = self._catch_up()
        if chain.problem is not None:
            raise AuditChainBroken(self._refusal())
        return chain.count, chain.head

    def append(self, entries: list[AuditEntry]) -> None:
        """Chain ``entries`` onto the head; called inside the customer's transaction."""
        if not entries:
            return
        if self._catch_up().problem is not None:
            raise AuditChainBroken(self._refusal())
        sealed = seal(entries, self.chain.head)
        self._insert(sealed)
        last = self.db.execute("SELECT last_insert_rowid()").fetchone()[0]
        if sealed[-1].hash is not None:
            self._pending = (last - len(sealed) + 1, last, sealed[-1].hash)

    def _insert(self, entries: list[AuditEntry]) -> None:
        encode = _AUDIT_JSON.encode
        self.db.executemany(
            "INSERT INTO audit (time, customer_id, op, account, change, fingerprint, git_commit, "
            "prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (e.time, e.customer, e.op, e.account, encode(e.change), e.fingerprint, e.git_commit,
                 e.prev, e.hash)
                for e in entries
            ],
        )

    def new_chain(self, reason: str) -> AuditEntry:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LockTimeout(f"{self.path}: the database is busy ({exc})") from exc
        try:
            chain = self._catch_up()
            if chain.problem is None:
                raise ReconcilerError(
                    f"the audit log ({self.location()}) is whole ({chain.count} entries, head "
                    f"{chain.head}): there is no broken chain to replace"
                )
            change = restart_change(reason, chain)
            entry = AuditEntry(
                datetime.now(UTC).isoformat(timespec="seconds"), 0, NEW_CHAIN, "", change, "",
                os.environ.get("GITHUB_SHA") or None,
            )
            sealed = seal([entry], restart_prev(chain))
            self._insert(sealed)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return sealed[0]
