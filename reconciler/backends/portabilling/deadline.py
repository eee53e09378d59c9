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

import heapq
import itertools
import socket
import threading
import time
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


class _Watchdog:
    """One thread that fires every deadline of the process, earliest first.

    A thread per request (``threading.Timer``) costs a thread start and stop for every call, which
    a plan of a thousand customers pays five thousand times; one sleeping thread with a heap of
    deadlines costs a heap push and a flag instead. A cancelled deadline stays in the heap, marked
    inactive, until it comes up (or the heap is mostly dead weight and is rebuilt).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[list[Any]] = []  # [when, order, watch, active]
        self._order = itertools.count()
        self._cancelled = 0
        self._thread: threading.Thread | None = None

    def add(self, seconds: float, watch: Watch) -> list[Any]:
        entry = [time.monotonic() + seconds, next(self._order), watch, True]
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="request-deadlines",
                                                daemon=True)
                self._thread.start()
            if self._heap[0] is entry:
                self._cond.notify()  # a new earliest deadline: wake the sleeper to wait less
        return entry

    def cancel(self, entry: list[Any]) -> None:
        with self._cond:
            if not entry[3]:
                return
            entry[3] = False
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                self._heap = [e for e in self._heap if e[3]]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and not self._heap[0][3]:
                    heapq.heappop(self._heap)
                    self._cancelled -= 1
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                entry = heapq.heappop(self._heap)
                entry[3] = False
                self._cond.release()
                try:
                    entry[2].fire()
                finally:
                    self._cond.acquire()


_WATCHDOG = _Watchdog()


@contextmanager
def deadline(seconds: float) -> Iterator[Watch]:
    """Watch the requests this thread sends inside the block; raise DeadlineExceeded when the
    deadline cut one short (whatever error the cut connection raised)."""
    watch = Watch()
    _current.watch = watch
    entry = _WATCHDOG.add(seconds, watch)
    try:
        yield watch
    except (requests.RequestException, OSError):
        if watch.fired:
            raise DeadlineExceeded(f"no full answer within {seconds:g} s") from None
        raise
    finally:
        _WATCHDOG.cancel(entry)
        _current.watch = None
