"""The PortaBilling backend: billing state read and changed through PortaBilling's JSON API.

Reading a customer costs a handful of calls (customer, agreement, and the paged lists of DIDs,
accounts and extensions); many customers are read concurrently. A customer's changes cannot be
one transaction here, so apply holds a local lock per (server, customer), writes one change at
a time and keeps ``done`` exact (see ``writes``). Once the server says it is read-only (a
disaster-recovery site, maintenance), no further customer is written in this run.

The parts: ``client`` (transport, retries, paging) with ``session`` (tokens) and
``config`` (URL, credentials, settings); ``reads`` (one customer into a CustomerState);
``writes`` and ``ops`` (the changes); ``audit`` (lock and audit log); ``fields``
(every assumed field name, with its evidence).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

from reconciler.backends import BackendSettings, BackendURL
from reconciler.backends.base import AuditEntry, Backend, Capabilities, CustomerSession
from reconciler.backends.portabilling.audit import ENV_AUDIT_LOG, LOCK_DIR, AuditLog, exclusive_lock
from reconciler.backends.portabilling.client import (
    ClientSettings,
    Credentials,
    Endpoint,
    PortaBillingClient,
    endpoint_of,
)
from reconciler.backends.portabilling.config import blocking_roles_from_env
from reconciler.backends.portabilling.ops import perform
from reconciler.backends.portabilling.reads import (
    RawCustomer,
    catalogue_from,
    fetch_customer,
    read_catalogue,
)
from reconciler.backends.portabilling.writes import PortaBillingSession
from reconciler.errors import UsageError
from reconciler.model import Catalogue, CustomerState

if TYPE_CHECKING:
    from reconciler.doctor_report import DoctorReport

__all__ = [
    "ENV_AUDIT_LOG",
    "AuditLog",
    "PortaBillingBackend",
    "RawCustomer",
    "catalogue_from",
    "exclusive_lock",
    "fetch_customer",
]


class _EnvCredentials:
    """Credentials read from the environment when first needed, not when the backend opens:
    ``history`` reads only the local audit log and needs none."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    @property
    def login(self) -> str:
        return Credentials.from_env(self.env).login

    def login_params(self) -> dict[str, str]:
        return Credentials.from_env(self.env).login_params()

    def secrets(self) -> list[str]:
        try:
            return Credentials.from_env(self.env).secrets()
        except UsageError:
            return []


class PortaBillingBackend(Backend):
    # Change by change (no transaction spans a customer's calls); customers read concurrently;
    # `reconciler doctor` checks the server.
    capabilities = Capabilities(concurrent_reads=True, diagnostics=True)
    description = "a PortaBilling server"
    audit: AuditLog  # the local JSON-lines file, which also holds the lock helpers

    def __init__(
        self,
        url: str,
        *,
        parallelism: int = 8,
        lock_timeout: float = 30.0,
        settings: ClientSettings | None = None,
        credentials: Credentials | None = None,
        env: Mapping[str, str] | None = None,
        lock_dir: str = LOCK_DIR,
        audit_path: str | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.url = url
        self.endpoint: Endpoint = endpoint_of(url)
        self.client = PortaBillingClient(
            self.endpoint,
            credentials or _EnvCredentials(env),  # type: ignore[arg-type]
            settings or ClientSettings.from_env(env),
        )
        self.blocking_roles = blocking_roles_from_env(env)
        self.parallelism = max(1, parallelism)
        self.lock_timeout = lock_timeout
        self.lock_dir = lock_dir
        default_audit = os.path.join(".reconciler", f"audit-{self.endpoint.key}.jsonl")
        self.audit = AuditLog(audit_path or env.get(ENV_AUDIT_LOG) or default_audit)
        self._catalogue: Catalogue | None = None
        self._catalogue_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def open(cls, where: BackendURL, settings: BackendSettings, *, create: bool = False) -> Backend:
        return cls(where.url, parallelism=settings.parallelism, lock_timeout=settings.lock_timeout)

    @classmethod
    def diagnose(
        cls,
        url: str,
        *,
        customer_id: int | None,
        spec_customer: Callable[[], int | None],
        env: Mapping[str, str],
    ) -> DoctorReport:
        from reconciler.backends.portabilling.doctor import run_doctor

        return run_doctor(url, customer_id=customer_id, spec_customer=spec_customer, env=env)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.client.close()

    # ---- reading --------------------------------------------------------------------------------

    def catalogue(self) -> Catalogue:
        # Read once per backend instance: a plan over a thousand customers needs it once.
        with self._catalogue_lock:
            if self._catalogue is None:
                self._catalogue = read_catalogue(self.client)
            return self._catalogue

    def read_customer(self, customer_id: int, catalogue: Catalogue) -> CustomerState | None:
        raw = fetch_customer(self.client, customer_id, self.blocking_roles)
        return None if raw is None else raw.state(catalogue)

    def read_customers(
        self, customer_ids: Iterable[int], catalogue: Catalogue
    ) -> Iterator[tuple[int, CustomerState | None]]:
        ids = list(customer_ids)
        if self.parallelism == 1 or len(ids) <= 1:
            yield from super().read_customers(ids, catalogue)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.parallelism, thread_name_prefix="portabilling"
            )
        futures: list[Future[CustomerState | None]] = [
            self._pool.submit(self.read_customer, cid, catalogue) for cid in ids
        ]
        try:
            for customer_id, future in zip(ids, futures, strict=True):
                yield customer_id, future.result()
        finally:
            for future in futures:
                future.cancel()

    # ---- apply -----------------------------------------------------------------------------------

    @contextmanager
    def customer_session(self, customer_id: int, catalogue: Catalogue) -> Iterator[CustomerSession]:
        # After a read-only fault nothing more is written in this run, for any customer: the
        # session is refused before it reads or locks anything.
        if self.client.read_only is not None:
            raise self.client.read_only
        path = os.path.join(self.lock_dir, f"{self.endpoint.key}-{customer_id}.lock")
        with exclusive_lock(
            path, self.lock_timeout, f"customer {customer_id} on {self.endpoint.base}"
        ):
            yield PortaBillingSession(
                self.client, customer_id, catalogue, self.audit, perform, self.blocking_roles
            )

    def history(self, customer_id: int | None = None) -> list[AuditEntry]:
        return self.audit.read(customer_id)

    def audit_location(self) -> str:
        # PortaBilling keeps no audit table for us: the log is a local JSON-lines file.
        return os.path.abspath(self.audit.path)

    def audit_exists(self) -> bool:
        return os.path.exists(self.audit.path)

    def check_audit_writable(self) -> None:
        self.audit.check_writable()
