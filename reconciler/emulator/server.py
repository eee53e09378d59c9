"""The emulator's HTTP side: PortaBilling's JSON API on a loopback port.

``POST /rest/{Service}/{method}`` with ``{"params": {...}}``; ``Session/login`` hands out bearer
tokens that expire after a number of seconds or calls; faults are HTTP 500
``{"faultcode", "faultstring"}``. Injected failures (see faults.py) and added latency make a
client's retries, read-backs and re-logins happen on purpose.
"""

from __future__ import annotations

import email.utils
import json
import secrets
import socket
import ssl
import threading
import time
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Self

from reconciler.emulator.faults import (
    AFTER,
    BAD_GATEWAY,
    DROP,
    FAULT,
    TIMEOUT,
    UNAVAILABLE,
    FaultConfig,
    FaultInjector,
    Injection,
)
from reconciler.emulator.store import Fault, Store
from reconciler.statefile import BillingState

LOGIN_METHOD = "Session/login"
WRITE_METHODS = frozenset(
    {
        "Account/add_account",
        "Customer/add_customer_extension",
        "Customer/update_customer_extension",
        "Account/update_account",
        "Account/add_alias",
        "Account/delete_alias",
        "Account/terminate_account",
    }
)
AUTH_FAULT = "Server.Session.check_auth_failed"


class _Tokens:
    """Bearer tokens with an expiry time and, optionally, a number of calls they are good for."""

    def __init__(self, ttl_seconds: float | None, ttl_calls: int | None) -> None:
        self.ttl_seconds = ttl_seconds
        self.ttl_calls = ttl_calls
        self._tokens: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def issue(self) -> tuple[str, float]:
        token = secrets.token_hex(16)
        expires = time.time() + (self.ttl_seconds if self.ttl_seconds is not None else 86400.0)
        with self._lock:
            self._tokens[token] = [
                expires,
                float(self.ttl_calls) if self.ttl_calls is not None else float("inf"),
            ]
        return token, expires

    def use(self, token: str | None) -> bool:
        with self._lock:
            entry = self._tokens.get(token or "")
            if entry is None or entry[0] < time.time() or entry[1] <= 0:
                self._tokens.pop(token or "", None)
                return False
            entry[1] -= 1
            return True

    def expire_all(self) -> None:
        with self._lock:
            self._tokens.clear()


class EmulatorServer:
    """A PortaBilling emulator on ``host:port`` (port 0 picks a free one), for tests and demos.

    Use as a context manager, or ``start()`` / ``stop()``. ``url`` is the backend URL to give
    the reconciler; ``env()`` the credentials environment it expects.
    """

    def __init__(
        self,
        state: BillingState | None = None,
        *,
        db_path: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        page_cap: int = 100,
        token_ttl_calls: int | None = None,
        token_ttl_seconds: float | None = 3600.0,
        latency_ms: float = 0.0,
        faults: FaultConfig | None = None,
        login: str = "emulator",
        password: str | None = "emulator",
        token: str | None = None,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.store = Store(db_path or ":memory:", page_cap=page_cap)
        self.lock = threading.Lock()  # one call at a time touches the database
        if state is not None:
            self.store.load_state(state)
        self.host = host
        self.port = port
        self.login = login
        self.password = password
        self.token = token
        self.latency_ms = latency_ms
        self.tokens = _Tokens(token_ttl_seconds, token_ttl_calls)
        self._injector = FaultInjector(faults or FaultConfig())
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self.tls = tls  # (certificate file, key file): serve https, for TLS verification tests
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- life cycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.emulator = self
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="pb-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.store.close()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "portabilling+https" if self.tls is not None else "portabilling+http"
        return f"{scheme}://{host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The credentials environment the emulator accepts."""
        env = {"PORTABILLING_LOGIN": self.login}
        if self.password is not None:
            env["PORTABILLING_PASSWORD"] = self.password
        elif self.token is not None:
            env["PORTABILLING_TOKEN"] = self.token
        return env

    # ---- state, counts, faults -------------------------------------------------------------------

    def load_state(self, state: BillingState) -> None:
        with self.lock:
            self.store.load_state(state)

    def dump_state(self) -> BillingState:
        with self.lock:
            return self.store.dump_state()

    def invariant_problems(self) -> list[str]:
        with self.lock:
            return self.store.invariant_problems()

    def unlinked_extensions(self) -> list[str]:
        with self.lock:
            return self.store.unlinked_extensions()

    @property
    def call_counts(self) -> dict[str, int]:
        with self._counts_lock:
            return dict(self._counts)

    @property
    def calls(self) -> int:
        with self._counts_lock:
            return sum(self._counts.values())

    def reset_counts(self) -> None:
        with self._counts_lock:
            self._counts.clear()

    def set_faults(self, faults: FaultConfig) -> None:
        self._injector = FaultInjector(faults)

    @property
    def injected(self) -> dict[tuple[str, str], int]:
        """Failures injected so far under the current FaultConfig: (kind, phase) -> count."""
        return dict(self._injector.injected)

    def set_latency(self, latency_ms: float) -> None:
        self.latency_ms = latency_ms

    def expire_tokens(self) -> None:
        """Make every issued token invalid: the next call of a client gets an auth fault."""
        self.tokens.expire_all()

    # ---- one call ------------------------------------------------------------------------------------

    def _count(self, method: str) -> None:
        with self._counts_lock:
            self._counts[method] += 1

    def decide(self, method: str) -> Injection | None:
        return self._injector.decide(method, method in WRITE_METHODS)

    def answer(
        self, method: str, params: dict[str, Any], authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of one call."""
        if method == LOGIN_METHOD:
            return self._login(params)
        token = authorization[7:] if authorization and authorization.startswith("Bearer ") else None
        if not self.tokens.use(token):
            return 500, {
                "faultcode": AUTH_FAULT,
                "faultstring": "the session is missing, invalid or expired; log in",
            }
        try:
            with self.lock:
                return 200, self.store.call(method, params)
        except Fault as fault:
            return 500, {"faultcode": fault.faultcode, "faultstring": fault.faultstring}

    def _login(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        login_ok = params.get("login") == self.login
        by_password = self.password is not None and params.get("password") == self.password
        by_token = self.token is not None and params.get("token") == self.token
        if not (login_ok and (by_password or by_token)):
            # Like a real server, say nothing about which part was wrong.
            return 500, {"faultcode": "Server.Session.auth_failed", "faultstring": "login failed"}
        token, expires = self.tokens.issue()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        return 200, {"access_token": token, "expires_at": stamp}


def _params(body: bytes) -> dict[str, Any] | None:
    """The call's params from a ``{"params": {...}}`` body, or None when the body is not that."""
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return None
    params = document.get("params") if isinstance(document, dict) else None
    if params is None and isinstance(document, dict):
        return {}
    return params if isinstance(params, dict) else None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # A client opening a connection per thread connects many at once: with the default backlog
    # of 5 the kernel drops the surplus SYNs, and each dropped one costs a second's retransmit.
    request_queue_size = 128
    emulator: EmulatorServer

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """A stopped server answers nothing more, not even on kept-alive connections."""
        with self.connections_lock:
            connections, self.open_connections = self.open_connections, set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    """One kept-alive connection: requests parsed by hand, answers written in one piece.

    ``BaseHTTPRequestHandler`` parses every header block with the ``email`` package and writes
    the head and the body of an answer separately; at a few hundred calls a second that was
    most of the emulator's time, so the request line and headers are read here directly (the
    base class still sets the connection up: buffered reading, timeout, no Nagle delay).
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each answer is one write: no 40 ms delayed ACK
    server: _HTTPServer
    timeout = 60  # an idle keep-alive connection is closed after a minute

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: requests carry credentials, and tests want quiet output."""

    def handle_one_request(self) -> None:
        try:
            request = self._read_request()
        except OSError:
            request = None  # an idle client timed out, or the client went away
        if request is None:
            self.close_connection = True
            return
        if isinstance(request, _BadRequest):
            self._send(request.status, _client_fault(request.reason), close=True)
            return
        command, path, headers = request
        if command == "POST":
            self._post(path, headers)
        elif command == "GET":
            self._send(405, _client_fault("method_not_allowed", "use POST"))
        else:
            self._send(501, _client_fault("method_not_allowed", "use POST"), close=True)

    def _read_request(self) -> tuple[str, str, dict[bytes, bytes]] | _BadRequest | None:
        """The request line and headers (names lower-cased), or None at the end of the
        connection. Sets ``close_connection`` from the HTTP version and Connection header."""
        line = self.rfile.readline(_MAX_LINE + 1)
        while line in (b"\r\n", b"\n"):  # stray line ends between requests are allowed
            line = self.rfile.readline(_MAX_LINE + 1)
        if not line:
            return None
        if len(line) > _MAX_LINE:
            return _BadRequest(414, "request_line_too_long")
        words = line.split()
        if len(words) != 3 or not words[2].startswith(b"HTTP/1."):
            return _BadRequest(400, "bad_request_line")
        headers: dict[bytes, bytes] = {}
        for _ in range(_MAX_HEADERS + 1):
            header = self.rfile.readline(_MAX_LINE + 1)
            if header in (b"\r\n", b"\n"):
                break
            if not header:
                return None  # the client went away mid-request
            name, colon, value = header.partition(b":")
            if len(header) > _MAX_LINE or not colon:
                return _BadRequest(400, "bad_header")
            headers[name.strip().lower()] = value.strip()
        else:
            return _BadRequest(431, "too_many_headers")
        connection = headers.get(b"connection", b"").lower()
        if words[2] == b"HTTP/1.0":
            self.close_connection = connection != b"keep-alive"
        else:
            self.close_connection = connection == b"close"
            if headers.get(b"expect", b"").lower() == b"100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return words[0].decode("latin-1"), words[1].decode("latin-1"), headers

    def _post(self, path: str, headers: dict[bytes, bytes]) -> None:
        if b"transfer-encoding" in headers:
            self._send(411, _client_fault("length_required", "send a Content-Length"), close=True)
            return
        try:
            length = int(headers.get(b"content-length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send(400, _client_fault("bad_content_length"), close=True)
            return
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True  # the client went away mid-body
            return
        emulator = self.server.emulator
        path = path.split("?", 1)[0]
        if not path.startswith("/rest/") or path.count("/") != 3:
            self._send(
                404, {"faultcode": "Client.Service.not_found", "faultstring": "no such API path"}
            )
            return
        method = path[6:]  # after "/rest/"
        emulator._count(method)
        if emulator.latency_ms > 0:
            time.sleep(emulator.latency_ms / 1000.0)
        params = _params(body)
        if params is None:
            self._send(
                500,
                {
                    "faultcode": "Client.Request.invalid_json",
                    "faultstring": 'the body is not {"params": {...}}',
                },
            )
            return
        injection = emulator.decide(method)
        if injection is not None and injection.phase != AFTER:
            self._misbehave(injection)
            return
        authorization = headers.get(b"authorization")
        status, payload = emulator.answer(
            method, params, None if authorization is None else authorization.decode("latin-1")
        )
        if injection is not None:
            self._misbehave(injection)  # the change is made; the answer is lost
            return
        self._send(status, payload)

    def _send(self, status: int, payload: dict[str, Any], *, close: bool = False) -> None:
        data = _JSON.encode(payload).encode("utf-8")
        if close:
            self.close_connection = True
        head = _head(status, len(data), self.close_connection)
        try:
            self.wfile.write(head + data)
        except OSError:
            self.close_connection = True  # the client went away (it gave up waiting)

    def _misbehave(self, injection: Injection) -> None:
        emulator = self.server.emulator
        if injection.kind == FAULT:
            self._send(
                500,
                {"faultcode": "Server.Emulator.injected_fault", "faultstring": "injected fault"},
            )
        elif injection.kind in (BAD_GATEWAY, UNAVAILABLE):
            self._send(int(injection.kind), {"error": "injected gateway failure"}, close=True)
        elif injection.kind == TIMEOUT:
            time.sleep(emulator._injector.config.timeout_s)
            self._drop()
        elif injection.kind == DROP:
            self._drop()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# ---- the wire, made cheap ------------------------------------------------------------------------

_MAX_LINE = 65536
_MAX_HEADERS = 100
_JSON = json.JSONEncoder(separators=(",", ":"))


class _BadRequest(NamedTuple):
    status: int
    reason: str


def _client_fault(reason: str, text: str = "malformed request") -> dict[str, str]:
    return {"faultcode": f"Client.Request.{reason}", "faultstring": text}


class _DateHeader:
    """The ``Date`` header line, formatted once a second rather than once a call."""

    def __init__(self) -> None:
        self.second = -1
        self.line = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            # One assignment, so a thread that reads concurrently sees a whole line.
            self.line = f"Date: {email.utils.formatdate(now, usegmt=True)}\r\n".encode("ascii")
            self.second = now
        return self.line


_date_line = _DateHeader()
_FIXED_HEADERS = b"Server: pbx-reconciler-emulator\r\nContent-Type: application/json\r\n"


def _head(status: int, length: int, close: bool) -> bytes:
    """The status line and headers of an answer with a JSON body of ``length`` bytes."""
    return b"".join(
        (
            _STATUS_LINES.get(status) or _status_line(status),
            _FIXED_HEADERS,
            _date_line(),
            b"Content-Length: %d\r\n" % length,
            b"Connection: close\r\n\r\n" if close else b"\r\n",
        )
    )


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    line = f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")
    _STATUS_LINES[status] = line
    return line


_STATUS_LINES: dict[int, bytes] = {}
