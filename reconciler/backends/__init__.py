"""Backends by URL: ``sqlite:///PATH`` (embedded) and ``portabilling+https://HOST[:PORT]``.

This is the one place a backend URL is read. Its scheme names the backend class (imported only
when needed: a SQLite run never loads the PortaBilling client); the rest is its location, which
the backend checks when it opens (a database file; a server, whose rules live with the
PortaBilling endpoint); its resolved form tells whether two URLs name one backend, which is how
a saved plan is matched to the backend it was made for.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from reconciler.backends.base import Backend, Capabilities
from reconciler.errors import UsageError

__all__ = [
    "DEFAULT_BACKEND",
    "Backend",
    "BackendKind",
    "BackendSettings",
    "BackendURL",
    "Capabilities",
    "open_backend",
    "parse_backend_url",
    "resolve_backend_url",
]

DEFAULT_BACKEND = "sqlite:///.reconciler/billing.db"


@dataclass(frozen=True)
class BackendSettings:
    lock_timeout: float = 30.0
    parallelism: int = 8


@dataclass(frozen=True)
class BackendKind:
    """One kind of backend: the URL prefixes that name it and where its class lives."""

    name: str
    prefixes: tuple[str, ...]
    module: str
    class_name: str

    def backend_class(self) -> type[Backend]:
        module = importlib.import_module(self.module)
        backend_class: type[Backend] = getattr(module, self.class_name)
        return backend_class


SQLITE = BackendKind("sqlite", ("sqlite:///",), "reconciler.backends.sqlite", "SqliteBackend")
PORTABILLING = BackendKind(
    "portabilling",
    ("portabilling+https://", "portabilling+http://"),
    "reconciler.backends.portabilling.backend",
    "PortaBillingBackend",
)
KINDS = (SQLITE, PORTABILLING)


@dataclass(frozen=True)
class BackendURL:
    """A backend URL as parsed: its kind, its parts, and its resolved form."""

    url: str
    kind: BackendKind
    prefix: str

    @property
    def path(self) -> str:
        """What follows the scheme: ``sqlite:///rel/path`` -> ``rel/path``, ``sqlite:////abs``
        -> ``/abs`` (a database file); for a server, ``HOST[:PORT][/PREFIX]``."""
        return self.url[len(self.prefix) :]

    @property
    def parts(self) -> SplitResult:
        """The URL split into scheme, network location, path, query and fragment."""
        return urlsplit(self.url)

    @property
    def resolved(self) -> str:
        """The URL with a sqlite path made absolute, so two spellings of one database compare
        equal; a server's URL without a trailing slash."""
        if self.kind is SQLITE:
            return self.prefix + os.path.abspath(self.path)
        return self.url.rstrip("/")

    def backend_class(self) -> type[Backend]:
        return self.kind.backend_class()

    @property
    def capabilities(self) -> Capabilities:
        return self.backend_class().capabilities


def parse_backend_url(url: str) -> BackendURL:
    """The backend ``url`` names; UsageError (naming the forms accepted) if it names none."""
    for kind in KINDS:
        for prefix in kind.prefixes:
            if url.startswith(prefix):
                return BackendURL(url, kind, prefix)
    raise UsageError(
        f"unknown backend {url!r}: use sqlite:///PATH or portabilling+https://HOST[:PORT]"
    )


def open_backend(
    url: str, settings: BackendSettings | None = None, *, create: bool = False
) -> Backend:
    """The backend at ``url``; ``create`` (``state load``) makes an empty one where allowed."""
    where = parse_backend_url(url)
    backend_class = where.backend_class()
    if create and not backend_class.capabilities.state_files:
        raise UsageError("`state load` works on the embedded sqlite backend only")
    return backend_class.open(where, settings or BackendSettings(), create=create)


def resolve_backend_url(url: str) -> str:
    """``url`` resolved (see ``BackendURL.resolved``); a URL naming no backend (read from a
    saved plan) only loses its trailing slash, so it matches no backend that opens."""
    try:
        return parse_backend_url(url).resolved
    except UsageError:
        return url.rstrip("/")
