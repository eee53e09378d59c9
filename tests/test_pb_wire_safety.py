"""Credentials go nowhere else: no redirect is followed, session tokens are scrubbed like the
password, and every request has a total deadline (a server trickling bytes cannot hold a run)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reconciler.backends.portabilling.client import (
    ClientSettings,
    Credentials,
    PortaBillingClient,
    TransportError,
    endpoint_of,
)
from tests.helpers import run_cli
from tests.pb_stub import Stub, customer

PASSWORD = "redirect-me-not-9f3a"


class Loopback:
    """A bare HTTP server on loopback whose handler a test writes; it records every request."""

    def __init__(self, handle: Any) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append((self.path, dict(self.headers), body))
                handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"portabilling+http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def other_host() -> Iterator[Loopback]:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        data = b'{"access_token": "stolen"}'
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    server = Loopback(answer)
    yield server
    server.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_one_clear_error_and_nothing_reaches_the_other_host(
    other_host: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    monkeypatch.chdir(tmp_path)

    def redirect(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", f"http://127.0.0.1:{other_host.port}{handler.path}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    first = Loopback(redirect)
    try:
        spec = tmp_path / "abc.yaml"
        spec.write_text("version: 1\ncustomer: {id: 46170, name: ABC}\n")
        env = {"PORTABILLING_LOGIN": "api", "PORTABILLING_PASSWORD": PASSWORD}
        result = run_cli("--backend", first.url, "plan", str(spec), env=env)
    finally:
        first.close()
    assert result.code == 1, result
    assert f"answered a redirect (HTTP {status})" in result.err
    assert "never followed" in result.err
    assert "Traceback" not in result.err
    assert other_host.requests == []  # no request, so no credential, reached the other server
    assert len(first.requests) == 1  # and the login was not sent twice
    assert PASSWORD not in result.out + result.err


def test_tokens_echoed_in_a_fault_are_never_printed(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    access, refresh, session_id = "acc-7d1e5b0c9a", "ref-42c0ffee11", "sess-0b5e55ed77"
    stub = Stub(customer())
    stub.overrides.append(
        lambda m, p, n: (
            (200, {"access_token": access, "refresh_token": refresh, "session_id": session_id,
                   "expires_in": 900})
            if m == "Session/login"
            else (
                500,
                {
                    "faultcode": f"Server.Generic.internal_{access}",
                    "faultstring": f"bad token {access} (refresh {refresh}, session {session_id})",
                },
            )
            if m == "Customer/get_customer_info"
            else False
        )
    )
    try:
        spec = tmp_path / "abc.yaml"
        spec.write_text("version: 1\ncustomer: {id: 46170, name: ABC}\n")
        result = run_cli("--backend", stub.url, "plan", str(spec), env=stub.env)
    finally:
        stub.close()
    assert result.code == 1, result
    assert "bad token ***" in result.out + result.err
    for secret in (access, refresh, session_id):
        assert secret not in result.out + result.err


def _trickle(where: str) -> Any:
    """A handler that sends its answer one byte every 0.2 s, in the headers or the body."""

    def handle(handler: BaseHTTPRequestHandler) -> None:
        body = b'{"access_token": "slow", "expires_in": 900}' + b" " * 200
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n".encode()
            + b"X-Padding: "
            + b"x" * 200
            + b"\r\n\r\n"
        )
        data = head + body
        start = data.index(b"X-Padding") if where == "headers" else len(head)
        try:
            handler.wfile.write(data[:start])
            handler.wfile.flush()
            for byte in data[start:]:
                time.sleep(0.2)
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
        except OSError:
            pass  # the client gave up, as it should
        handler.close_connection = True

    return handle


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_server_trickling_bytes_cannot_hold_a_request_past_its_deadline(where: str) -> None:
    server = Loopback(_trickle(where))
    settings = ClientSettings(
        connect_timeout=1.0, read_timeout=5.0, total_timeout=1.0, read_attempts=1, backoff=0.001
    )
    client = PortaBillingClient(endpoint_of(server.url), Credentials("api", "pw"), settings)
    started = time.monotonic()
    try:
        with pytest.raises(TransportError, match="deadline passed"):
            client.read("Product/get_product_list", {})
    finally:
        client.close()
        server.close()
    # Each byte arrives well within the 5 s read timeout: only the 1 s deadline ends it.
    assert time.monotonic() - started < 3.0


def test_the_deadline_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    server = Loopback(_trickle("body"))
    spec = tmp_path / "abc.yaml"
    spec.write_text("version: 1\ncustomer: {id: 46170, name: ABC}\n")
    env = {
        "PORTABILLING_LOGIN": "api",
        "PORTABILLING_PASSWORD": "pw",
        "PORTABILLING_TOTAL_TIMEOUT": "1",
    }
    started = time.monotonic()
    try:
        result = run_cli("--backend", server.url, "plan", str(spec), env=env)
    finally:
        server.close()
    assert result.code == 1, result
    assert "deadline passed" in result.err
    assert "not retried" in result.err  # a login is never sent twice
    assert time.monotonic() - started < 10.0
    bad = run_cli("--backend", server.url, "plan", str(spec),
                  env={**env, "PORTABILLING_TOTAL_TIMEOUT": "soon"})
    assert bad.code != 0
    assert "PORTABILLING_TOTAL_TIMEOUT" in bad.err
