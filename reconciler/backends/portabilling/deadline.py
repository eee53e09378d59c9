"""A total deadline for one HTTP request, answer included.

The per-read timeout alone cannot bound a request: a server that sends one byte every few seconds
resets it with each byte, and could hold a run for ever. So each request is watched: when its
deadline passes, the watch shuts the request's socket down, the blocked read returns, and the
request fails as timed out (``DeadlineExceeded``, a ``requests.Timeout``: a read is retried, a
write's outcome is unknown and read back).

The socket is found through the connection classes of the HTTP adapter, which record the
connection a request goes out on in a thread-local ``Watch``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class DeadlineExceeded(requests.Timeout):
    """The request was not answered in full within its total deadline."""


class Watch:
    """One request under watch: the connection it uses, and whether its deadline fired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: Any = None
        self.fired = False

    def attach(self, connection: Any) -> None:
        with self._lock:
            self._connection = connection
            fired = self.fired
        if fired:
            _shut(connection)

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            connection = self._connection
        if connection is not None:
            _shut(connection)


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    try:
        # The plain socket's shutdown, also for a TLS socket: the reading thread then sees the
        # connection end, and nothing of the TLS object is changed under it.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Current(threading.local):
    watch: Watch | None = None


_current = _Current()


class _Watched:
    """Mixed into urllib3's connection classes: tell the current watch which connection (and so
    which socket) its request uses."""

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        if _current.watch is not None:
            _current.watch.attach(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        if _current.watch is not None:
            _current.watch.attach(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def watched_adapter(**kwargs: Any) -> HTTPAdapter:
    """An HTTPAdapter whose connections report to the current watch."""
    adapter = HTTPAdapter(**kwargs)
    adapter.poolmanager.pool_classes_by_scheme = {
        "http": _WatchedHTTPPool,
        "https": _WatchedHTTPSPool,
    }
    return adapter


@contextmanager
def deadline(seconds: float) -> Iterator[Watch]:
    """Watch the requests this thread sends inside the block; raise DeadlineExceeded when the
    deadline cut one short (whatever error the cut connection raised)."""
    watch = Watch()
    timer = threading.Timer(seconds, watch.fire)
    timer.daemon = True
    _current.watch = watch
    timer.start()
    try:
        yield watch
    except (requests.RequestException, OSError):
        if watch.fired:
            raise DeadlineExceeded(f"no full answer within {seconds:g} s") from None
        raise
    finally:
        timer.cancel()
        _current.watch = None
