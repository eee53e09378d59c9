"""Backends by URL: ``sqlite:///PATH`` (embedded) and ``portabilling+https://HOST[:PORT]``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from reconciler.backends.base import Backend
from reconciler.errors import UsageError

DEFAULT_BACKEND = "sqlite:///.reconciler/billing.db"


@dataclass(frozen=True)
class BackendSettings:
    lock_timeout: float = 30.0
    parallelism: int = 8


def open_backend(url: str, settings: BackendSettings | None = None, *, create: bool = False) -> Backend:
    settings = settings or BackendSettings()
    if url.startswith("sqlite:///"):
        from reconciler.backends.sqlite import SqliteBackend

        return SqliteBackend(url, create=create, lock_timeout=settings.lock_timeout)
    if url.startswith(("portabilling+https://", "portabilling+http://")):
        if create:
            raise UsageError("`state load` works on the embedded sqlite backend only")
        from reconciler.backends.portabilling.backend import PortaBillingBackend

        return PortaBillingBackend(url, parallelism=settings.parallelism, lock_timeout=settings.lock_timeout)
    raise UsageError(
        f"unknown backend {url!r}: use sqlite:///PATH or portabilling+https://HOST[:PORT]"
    )


def resolve_backend_url(url: str) -> str:
    """The URL with a sqlite path made absolute, so two spellings of one database compare equal."""
    if url.startswith("sqlite:///"):
        return "sqlite:///" + os.path.abspath(url[len("sqlite:///") :])
    return url.rstrip("/")
