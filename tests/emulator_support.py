"""Talking to the emulator the way a client developer pokes a server: raw JSON over HTTP."""

from __future__ import annotations

import http.client
import json
from typing import Any

import requests

from reconciler.emulator import EmulatorServer

LOGIN, PASSWORD = "api", "pw"

# Two customers: ABC may block its extensions (self-care role 2), Globex may not (role 3).
STATE = """
products:
  - {id: 1, name: Cloud PBX service, type: main}
  - {id: 2, name: Auto attendant, type: main}
  - {id: 3, name: Call recording, type: addon}
  - {id: 4, name: Voicemail to email, type: addon}
  - {id: 7, name: SIP trunk, type: main}
customers:
  - id: 46170
    name: ABC
    self_care: {block_extensions: true}
    agreement:
      - {product: Auto attendant, quantity: 2}
      - {product: Cloud PBX service, quantity: 0}
      - {product: Call recording, quantity: 2}
      - {product: Voicemail to email, quantity: 0}
    dids: ["12094555948", "12094555949", "12094555950", "12094555951", "12094555952"]
  - id: 70001
    name: Globex
    self_care: {block_extensions: false}
    agreement:
      - {product: SIP trunk, quantity: 1}
      - {product: Cloud PBX service, quantity: 0}
    dids: []
accounts:
  - {id: ph46170x100, customer: 46170, name: Reception, product: Cloud PBX service,
     addons: [Call recording, Voicemail to email], dids: ["12094555950", "12094555951"]}
  - {id: ph46170x200, customer: 46170, name: Sales, product: Cloud PBX service,
     addons: [Call recording], dids: []}
  - {id: ph46170x300, customer: 46170, name: Locked, product: Cloud PBX service,
     addons: [], dids: [], blocked_by: admin}
  - {id: ph46170x400, customer: 46170, name: Gone, product: Cloud PBX service,
     addons: [], dids: [], status: terminated}
  - {id: ph46170aa1, customer: 46170, name: Main menu, product: Auto attendant,
     addons: [], dids: ["12094555948"]}
  - {id: ph46170x999, customer: 70001, name: Taken elsewhere, product: Cloud PBX service,
     addons: [], dids: []}
"""


def base_url(server: EmulatorServer) -> str:
    return server.url.replace("portabilling+", "")


def post(
    server: EmulatorServer, method: str, params: Any, token: str | None = None
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(
        f"{base_url(server)}/rest/{method}", json={"params": params}, headers=headers, timeout=5
    )


def login(server: EmulatorServer) -> str:
    answer = post(server, "Session/login", {"login": LOGIN, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def call(server: EmulatorServer, token: str, method: str, params: Any) -> dict[str, Any]:
    """The answer of a call that must succeed."""
    answer = post(server, method, params, token)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def fault(server: EmulatorServer, token: str | None, method: str, params: Any) -> dict[str, str]:
    """The fault of a call that must fail the way a server refuses: HTTP 500 with a faultcode."""
    answer = post(server, method, params, token)
    assert answer.status_code == 500, answer.text
    body = answer.json()
    assert set(body) == {"faultcode", "faultstring"}, body
    return body  # type: ignore[no-any-return]


def account(server: EmulatorServer, token: str, account_id: str) -> dict[str, Any]:
    info = call(server, token, "Account/get_account_info", {"id": account_id})
    return info["account_info"]  # type: ignore[no-any-return]


class Connection:
    """One kept-alive HTTP connection, to show that an answer did not close it."""

    def __init__(self, server: EmulatorServer) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        self.http.connect()
        self.socket = self.http.sock

    def send(self, method: str, body: bytes, token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http.request("POST", f"/rest/{method}", body=body, headers=headers)
        response = self.http.getresponse()
        data = response.read()
        assert not response.will_close, "the server closed the connection"
        return response.status, json.loads(data)

    @property
    def reused(self) -> bool:
        return self.http.sock is self.socket

    def close(self) -> None:
        self.http.close()
