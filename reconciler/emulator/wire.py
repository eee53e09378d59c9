"""The emulator's HTTP side: one kept-alive connection per thread, requests parsed by hand.

``POST /rest/{Service}/{method}`` with ``{"params": {...}}``; the answer is JSON, a fault is HTTP
500 ``{"faultcode", "faultstring"}``. Whatever a request holds, the handler answers it: a body
that is not ``{"params": {...}}`` is a client fault, and anything unexpected inside the emulator
is a ``Server.Internal`` fault, never a dropped connection (only an injected failure drops one on
purpose).

Only requests addressed to the emulator itself are answered: a ``Host`` header naming a loopback
host and the emulator's port, and a JSON body (``Content-Type: application/json``, parseable).
Anything else is a 4xx before the request reaches the emulator, so a web page that makes a
browser post to it (a DNS-rebinding name, a form) changes nothing.

This module knows the emulator only through ``Answering``: the server imports the wire, never
the other way round.
"""

from __future__ import annotations

import email.utils
import json
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Protocol

from reconciler.emulator.db import Fault
from reconciler.emulator.faults import (
    AFTER,
    BAD_GATEWAY,
    DROP,
    FAULT,
    TIMEOUT,
    UNAVAILABLE,
    Injection,
)
from reconciler.emulator.loopback import is_loopback


class Answering(Protocol):
    """What the HTTP side needs of the emulator behind it (server.py's EmulatorServer)."""

    latency_ms: float

    @property
    def injected_timeout_s(self) -> float: ...

    def count_call(self, method: str) -> None: ...

    def decide(self, method: str) -> Injection | None: ...

    def answer(
        self, method: str, params: dict[str, Any], authorization: str | None
    ) -> tuple[int, dict[str, Any]]: ...


class NotJSON(Fault):
    """A body that is no JSON document: refused as a bad request (400), not a server fault."""

    def __init__(self, faultstring: str) -> None:
        super().__init__("Client.Request.invalid_json", faultstring)


def request_params(body: bytes) -> dict[str, Any]:
    """The call's params from a ``{"params": {...}}`` body (no params: ``{}``), or the fault."""
    if not body.strip():
        raise NotJSON('the body is empty: send {"params": {...}}')
    try:
        document = json.loads(body)
    except ValueError:
        raise NotJSON("the body is not JSON") from None
    except RecursionError:
        raise NotJSON("the body nests deeper than is parsed") from None
    if not isinstance(document, dict):
        raise Fault("Client.Validation.invalid_type", 'the body must be {"params": {...}}')
    extra = sorted(str(key) for key in document if key != "params")
    if extra:
        raise Fault(
            "Client.Validation.unknown_parameter",
            f'{", ".join(extra)}: a request body holds only "params"',
        )
    params = document.get("params", {})
    if not isinstance(params, dict):
        raise Fault("Client.Validation.invalid_type", "params must be an object")
    return params


def internal_fault(method: str, exc: BaseException) -> dict[str, str]:
    """What a crash inside the emulator answers: a fault, so the client sees a server error and
    the connection stays up. Only the exception's type is named: its text may quote params."""
    return {
        "faultcode": "Server.Internal.unexpected_error",
        "faultstring": f"the emulator failed on {method}: {type(exc).__name__}",
    }


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # A client opening a connection per thread connects many at once: with the default backlog
    # of 5 the kernel drops the surplus SYNs, and each dropped one costs a second's retransmit.
    request_queue_size = 128
    emulator: Answering

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        family: socket.AddressFamily = socket.AF_INET,
    ) -> None:
        self.address_family = family  # read by the base class when it makes the socket
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


class Handler(BaseHTTPRequestHandler):
    """One kept-alive connection: requests parsed by hand, answers written in one piece.

    ``BaseHTTPRequestHandler`` parses every header block with the ``email`` package and writes
    the head and the body of an answer separately; at a few hundred calls a second that was
    most of the emulator's time, so the request line and headers are read here directly (the
    base class still sets the connection up: buffered reading, timeout, no Nagle delay).
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each answer is one write: no 40 ms delayed ACK
    server: HTTPServer
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
        refusal = _host_refusal(headers.get(b"host"), self.server.server_address[1])
        if refusal is not None:
            self._send(421, _client_fault("host_not_allowed", refusal), close=True)
            return
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
        if length > _MAX_BODY:
            # Not read at all: a client's bug must not make the emulator allocate gigabytes.
            self._send(413, _client_fault("body_too_large", "the body is over 16 MB"), close=True)
            return
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True  # the client went away mid-body
            return
        content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if content_type != b"application/json":
            # A browser posts a form or text/plain without asking first: refused unread.
            self._send(
                415,
                _client_fault(
                    "unsupported_media_type",
                    "the body must be JSON (Content-Type: application/json)"
                ),
            )
            return
        path = path.split("?", 1)[0]
        if not path.startswith("/rest/") or path.count("/") != 3:
            self._send(
                404, {"faultcode": "Client.Service.not_found", "faultstring": "no such API path"}
            )
            return
        method = path[6:]  # after "/rest/"
        try:
            self._call(method, body, headers)
        except Exception as exc:  # noqa: BLE001 - a server answers even its own bugs
            self._send(500, internal_fault(method, exc))

    def _call(self, method: str, body: bytes, headers: dict[bytes, bytes]) -> None:
        emulator = self.server.emulator
        refused: Fault | None = None
        try:
            params = request_params(body)
        except NotJSON as fault:
            self._send(400, {"faultcode": fault.faultcode, "faultstring": fault.faultstring})
            return
        except Fault as fault:
            refused = fault  # a JSON body of the wrong shape: a call, refused as a server does
        emulator.count_call(method)
        if emulator.latency_ms > 0:
            time.sleep(emulator.latency_ms / 1000.0)
        if refused is not None:
            self._send(500, {"faultcode": refused.faultcode, "faultstring": refused.faultstring})
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
            time.sleep(emulator.injected_timeout_s)
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
_MAX_BODY = 16 * 1024 * 1024
_JSON = json.JSONEncoder(separators=(",", ":"))


class _BadRequest(NamedTuple):
    status: int
    reason: str


def _client_fault(reason: str, text: str = "malformed request") -> dict[str, str]:
    return {"faultcode": f"Client.Request.{reason}", "faultstring": text}


def _host_refusal(host: bytes | None, port: int) -> str | None:
    """Why a request's Host header is not this emulator (None when it is): the host must be a
    loopback name or address and the port the emulator's own. A page served from another name
    that resolves to 127.0.0.1 (DNS rebinding) sends that name, and is refused here."""
    wanted = f"the emulator answers only Host 127.0.0.1:{port}, localhost:{port} or [::1]:{port}"
    if host is None:
        return f"no Host header: {wanted}"
    text = host.decode("latin-1")
    if text.startswith("["):
        name, _bracket, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
    else:
        name, colon, port_text = text.rpartition(":")
        if not colon:
            name, port_text = text, ""
    shown = text if len(text) <= 80 else text[:80] + "…"
    if port_text is None or not is_loopback(name) or (":" in name and not text.startswith("[")):
        return f"{wanted}, not {shown!r}"
    if (int(port_text) if port_text.isdigit() else 80 if port_text == "" else -1) != port:
        return f"{wanted}, not {shown!r}"
    return None


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
