"""What a PortaBilling apply keeps on this machine: a lock per customer and the audit log.

PortaBilling keeps no audit table for us, so every change that reaches billing is appended to a
local JSON-lines file: ``RECONCILER_AUDIT_LOG``, or ``.reconciler/audit-<host>_<port>.jsonl``.
Each line is one entry of the hash chain (reconciler.auditchain), its ``prev`` and ``hash`` fields
included. Appends hold an exclusive flock on the file while they read the head and write, so two
applies (on different customers) never fork the chain; readers hold a shared one.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from reconciler.auditchain import (
    NEW_CHAIN,
    AuditChainBroken,
    ChainCheck,
    Problem,
    Stored,
    check,
    refusal,
    restart_change,
    restart_prev,
    seal,
)
from reconciler.backends.base import AuditEntry
from reconciler.errors import BackendError, LockTimeout, ReconcilerError

ENV_AUDIT_LOG = "RECONCILER_AUDIT_LOG"
LOCK_DIR = os.path.join(".reconciler", "locks")
_TIME = re.compile(rb'"time":\s*"([^"\\]{1,40})"')  # to date a line that is no longer JSON


@contextmanager
def exclusive_lock(path: str, timeout: float, what: str) -> Iterator[None]:
    """An exclusive flock on ``path``, waited for at most ``timeout`` seconds.

    It keeps two applies on this machine (or on machines sharing the folder) from interleaving
    on one customer; applies from elsewhere against the same server are not seen.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another apply holds the lock of {what} ({path}); waited {timeout:g} s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)


def _stored(line: bytes, number: int) -> Stored:
    """One line of the file as a chain record (``line N``, counted from 1)."""
    where = f"line {number}"
    if not line.endswith(b"\n"):
        return Stored(where, None, None,
                      "it is cut short (no end of line): a write that did not finish")
    if not line.strip():
        return Stored(where, None, None, "it is empty")
    try:
        data = json.loads(line)
    except ValueError as exc:
        time = _TIME.search(line)
        return Stored(where, None, None, f"it is not JSON ({exc})",
                      time=time[1].decode("utf-8", "replace") if time else None)
    if not isinstance(data, dict):
        return Stored(where, None, None, "it is not a JSON object")
    stored_hash = data.pop("hash", None)
    return Stored(where, data, stored_hash if isinstance(stored_hash, str) else None)


def _lines(data: bytes) -> Iterator[bytes]:
    """``data`` split after each newline; a last piece without one is yielded as it is."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield data[start:end]
        start = end


class AuditLog:
    """Applied changes as JSON lines in a local file: one chained AuditEntry per line, oldest first.

    What this run verified is kept (the byte offset reached and the last line), so each append
    reads only what was added since; the first append (or ``verify``) reads the whole file once.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.chain = ChainCheck()
        self._offset = 0
        self._last_line = b""

    def location(self) -> str:
        return os.path.abspath(self.path)

    def check_writable(self) -> None:
        """Raise BackendError unless entries can be appended (creating the file and its folder)."""
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with open(self.path, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise BackendError(
                f"cannot write the audit log {os.path.abspath(self.path)}: {exc.strerror or exc} "
                "(set RECONCILER_AUDIT_LOG to a writable file)"
            ) from None

    # ---- reading --------------------------------------------------------------------------------

    def records(self) -> Iterator[Stored]:
        """Every line as a chain record, read afresh under a shared lock (nothing if no file)."""
        try:
            with open(self.path, "rb") as source:
                fcntl.flock(source.fileno(), fcntl.LOCK_SH)
                data = source.read()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BackendError(f"cannot read the audit log {self.path}: {exc.strerror}") from None
        for number, line in enumerate(_lines(data), start=1):
            yield _stored(line, number)

    def read(self, customer_id: int | None = None) -> list[AuditEntry]:
        """The entries that can be read (``history`` warns about the others), oldest first."""
        _chain, entries, _unreadable = check(self.records())
        return [e for e in entries if customer_id is None or e.customer == customer_id]

    # ---- the chain as this run knows it ----------------------------------------------------------

    @contextmanager
    def _locked(self, *, create: bool) -> Iterator[int | None]:
        flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0)
        try:
            if create:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            handle = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            yield None
            return
        except OSError as exc:
            raise BackendError(f"cannot write the audit log {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield handle
        finally:
            os.close(handle)  # releases the lock

    def _catch_up(self, handle: int | None) -> ChainCheck:
        """Verify what was added since this run last looked (the whole file the first time)."""
        chain = self.chain
        size = 0 if handle is None else os.fstat(handle).st_size
        if size < self._offset:
            if chain.problem is None:
                chain.problem = Problem(f"line {chain.count}", f"line {chain.count}",
                                        "the file is shorter than when this run read it "
                                        f"({size} bytes, {self._offset} before): "
                                        "entries were cut from its end")
            return chain
        if handle is None:
            return chain
        if self._last_line and chain.problem is None:
            start = self._offset - len(self._last_line)
            if os.pread(handle, len(self._last_line), start) != self._last_line:
                chain.problem = Problem(f"line {chain.count}", f"line {chain.count}",
                                        "was changed while this run was using the log")
        data = os.pread(handle, size - self._offset, self._offset) if size > self._offset else b""
        for line in _lines(data):
            chain.feed(_stored(line, chain.count + 1))
            self._offset += len(line)
            self._last_line = line
        return chain

    def _refusal(self) -> str:
        return refusal(self.chain.verdict(), self.location())

    def verify(self) -> None:
        with self._locked(create=False) as handle:
            if self._catch_up(handle).problem is not None:
                raise AuditChainBroken(self._refusal())

    def head(self) -> tuple[int, str]:
        with self._locked(create=False) as handle:
            chain = self._catch_up(handle)
        if chain.problem is not None:
            raise AuditChainBroken(self._refusal())
        return chain.count, chain.head

    # ---- appending ------------------------------------------------------------------------------

    def append(self, entries: list[AuditEntry]) -> None:
        """Chain ``entries`` onto the head and write them, fsynced, under the exclusive lock.

        On a broken chain they are written all the same (a change that reached billing is always
        recorded), after the break, and AuditChainBroken(recorded=True) tells apply to stop.
        """
        if not entries:
            return
        with self._locked(create=True) as handle:
            assert handle is not None
            chain = self._catch_up(handle)
            broken = chain.problem is not None
            sealed = seal(entries, restart_prev(chain) if broken else chain.head)
            self._write(handle, sealed)
        if broken:
            raise AuditChainBroken(self._refusal(), recorded=True)

    def new_chain(self, reason: str) -> AuditEntry:
        with self._locked(create=True) as handle:
            assert handle is not None
            chain = self._catch_up(handle)
            if chain.problem is None:
                raise ReconcilerError(
                    f"the audit log ({self.location()}) is whole ({chain.count} entries, head "
                    f"{chain.head}): there is no broken chain to replace"
                )
            entry = AuditEntry(
                datetime.now(UTC).isoformat(timespec="seconds"), 0, NEW_CHAIN, "",
                restart_change(reason, chain), "", os.environ.get("GITHUB_SHA") or None,
            )
            sealed = seal([entry], restart_prev(chain))
            self._write(handle, sealed)
        return sealed[0]

    def _write(self, handle: int, entries: list[AuditEntry]) -> None:
        text = "".join(
            json.dumps({**e.to_dict(), "prev": e.prev, "hash": e.hash}, sort_keys=True,
                       ensure_ascii=False)
            + "\n"
            for e in entries
        ).encode("utf-8")
        cut_short = bool(self._last_line) and not self._last_line.endswith(b"\n")
        if cut_short:
            text = b"\n" + text  # end a line cut short, so the new entry is a line of its own
        size = os.fstat(handle).st_size
        try:
            view = memoryview(text)
            while view:
                view = view[os.write(handle, view):]
            os.fsync(handle)
        except OSError as exc:
            # A half-written line would break the chain for every later run: take it back.
            try:
                os.ftruncate(handle, size)
            except OSError:
                pass
            raise BackendError(f"cannot write the audit log {self.path}: {exc.strerror}") from None
        if cut_short:
            # That line (already read, as cut short) now ends here; what follows is read back and
            # verified by the next catch-up, like every line this run writes.
            self._offset += 1
            self._last_line += b"\n"
