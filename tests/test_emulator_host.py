"""The emulator answers only requests meant for it: a loopback ``Host`` with its own port and a
JSON body. A web page that makes a browser post to it (a DNS-rebinding name such as
``evil.example`` resolving to 127.0.0.1, or a plain HTML form) gets a 4xx and changes nothing."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorServer
from reconciler.emulator.testing import state_from_yaml
from tests.emulator_support import LOGIN, PASSWORD, STATE, login

DELETE_BODY = json.dumps({"params": {"i_account": 1}}).encode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmulatorServer]:
    state = state_from_yaml(STATE, str(tmp_path))
    with EmulatorServer(state, login=LOGIN, password=PASSWORD, wire="v3") as running:
        yield running


def send(
    server: EmulatorServer, method: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """POST with exactly these headers (http.client adds no Host of its own here)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.putrequest("POST", f"/rest/{method}", skip_host=True, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def terminate(server: EmulatorServer, token: str, **headers: str) -> tuple[int, dict[str, Any]]:
    """Terminate account 1 (ph46170aa1): a write whose effect a dump shows."""
    base = {"Host": f"127.0.0.1:{server.port}", "Content-Type": "application/json",
            "Authorization": f"Bearer {token}"}  # fmt: skip
    return send(server, "Account/terminate_account", DELETE_BODY, {**base, **headers})


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}", "127.0.0.1:1",
     "10.0.0.5:{port}", "0.0.0.0:{port}", "localhost:{port}0", "::1:{port}", "[::1]:x",
     "localhost.:{port}"],
)  # fmt: skip
def test_a_request_for_another_host_is_refused_and_changes_nothing(
    server: EmulatorServer, host: str
) -> None:
    token = login(server)
    before, calls = server.dump_state(), server.calls
    status, answer = terminate(server, token, Host=host.format(port=server.port))
    assert status == 421, answer
    assert answer["faultcode"] == "Client.Request.host_not_allowed"
    assert f"127.0.0.1:{server.port}" in answer["faultstring"]
    assert server.dump_state() == before and server.calls == calls


def test_a_request_without_a_host_header_is_refused(server: EmulatorServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b'POST /rest/Product/get_product_list HTTP/1.0\r\nContent-Type: '
                    b'application/json\r\nContent-Length: 14\r\n\r\n{"params": {}}')  # fmt: skip
        head = raw.recv(65536).split(b"\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 421")


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}",
                                  "[::1]:{port}", "127.0.0.2:{port}"])  # fmt: skip
def test_every_loopback_name_with_the_emulators_port_is_answered(
    server: EmulatorServer, host: str
) -> None:
    token = login(server)
    status, answer = terminate(server, token, Host=host.format(port=server.port))
    assert (status, answer) == (200, {})
    assert {a.id: a.status for a in server.dump_state().accounts}["ph46170aa1"] == "terminated"


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/jsonp"],
)  # fmt: skip
def test_a_body_not_declared_json_is_refused_and_changes_nothing(
    server: EmulatorServer, content_type: str | None
) -> None:
    token = login(server)
    before, calls = server.dump_state(), server.calls
    headers = {"Host": f"127.0.0.1:{server.port}", "Authorization": f"Bearer {token}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    status, answer = send(server, "Account/terminate_account", DELETE_BODY, headers)
    assert status == 415, answer
    assert answer["faultcode"] == "Client.Request.unsupported_media_type"
    assert server.dump_state() == before and server.calls == calls


def test_json_with_a_charset_is_json(server: EmulatorServer) -> None:
    token = login(server)
    status, _answer = terminate(server, token,
                                **{"Content-Type": "Application/JSON; charset=utf-8"})
    assert status == 200


@pytest.mark.parametrize("body", [b"", b"   ", b"params=1", b'{"params": {"i_account": 1}'])
def test_a_body_that_is_not_json_is_a_bad_request(server: EmulatorServer, body: bytes) -> None:
    token = login(server)
    before, calls = server.dump_state(), server.calls
    headers = {"Host": f"127.0.0.1:{server.port}", "Content-Type": "application/json",
               "Authorization": f"Bearer {token}"}  # fmt: skip
    status, answer = send(server, "Account/terminate_account", body, headers)
    assert status == 400, answer
    assert answer["faultcode"] == "Client.Request.invalid_json"
    assert server.dump_state() == before and server.calls == calls
