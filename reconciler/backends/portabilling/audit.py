"""What a PortaBilling apply keeps on this machine: a lock per customer and the audit log.

PortaBilling keeps no audit table for us, so every change that reaches billing is appended to a
local JSON-lines file: ``RECONCILER_AUDIT_LOG``, or ``.reconciler/audit-<host>_<port>.jsonl``.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.backends.base import AuditEntry
from reconciler.errors import BackendError, LockTimeout

ENV_AUDIT_LOG = "RECONCILER_AUDIT_LOG"
LOCK_DIR = os.path.join(".reconciler", "locks")


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


class AuditLog:
    """Applied changes as JSON lines in a local file: one AuditEntry per line, oldest first."""

    def __init__(self, path: str) -> None:
        self.path = path

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

    def append(self, entries: list[AuditEntry]) -> None:
        if not entries:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        text = "".join(
            json.dumps(e.to_dict(), sort_keys=True, ensure_ascii=False) + "\n" for e in entries
        )
        try:
            with open(self.path, "a", encoding="utf-8") as out:
                fcntl.flock(out.fileno(), fcntl.LOCK_EX)
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise BackendError(f"cannot write the audit log {self.path}: {exc.strerror}") from None

    def read(self, customer_id: int | None = None) -> list[AuditEntry]:
        try:
            with open(self.path, encoding="utf-8") as source:
                lines = source.readlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise BackendError(f"cannot read the audit log {self.path}: {exc.strerror}") from None
        entries = []
        for line in lines:
            try:
                data = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash mid-write: the rest is still history
            if customer_id is not None and data.get("customer") != customer_id:
                continue
            entries.append(
                AuditEntry(
                    data["time"],
                    data["customer"],
                    data["op"],
                    data["account"],
                    data["change"],
                    data["fingerprint"],
                    data.get("git_commit"),
                )
            )
        return entries
