"""The emulator validates like a server: every malformed request is a fault naming the parameter,
never a silent coercion and never a dropped connection."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorServer
from reconciler.emulator.reads import READS
from reconciler.emulator.shapes import SHAPES
from reconciler.emulator.testing import state_from_yaml
from reconciler.emulator.validation import Shapes
from reconciler.emulator.writes import WRITES
from tests.emulator_support import LOGIN, PASSWORD, STATE, Connection, account, call, fault, login

EMULATOR = Path(__file__).resolve().parent.parent / "reconciler" / "emulator"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmulatorServer]:
    state = state_from_yaml(STATE, str(tmp_path))
    with EmulatorServer(state, page_cap=2, login=LOGIN, password=PASSWORD, wire="v2") as running:
        yield running


@pytest.fixture
def token(server: EmulatorServer) -> str:
    return login(server)


def reception(server: EmulatorServer, token: str) -> int:
    return int(account(server, token, "ph46170x100")["i_account"])


# ---- each malformed kind is a fault naming what is wrong -----------------------------------------


def test_a_misspelt_nested_parameter_is_a_fault_naming_its_path(
    server: EmulatorServer, token: str
) -> None:
    before = server.dump_state()
    answer = fault(
        server, token, "Account/update_account",
        {"account_info": {"i_account": reception(server, token), "i_acount": 5, "blocked": "Y"}},
    )  # fmt: skip
    assert answer == {
        "faultcode": "Client.Validation.unknown_parameter",
        "faultstring": "account_info.i_acount is not a parameter of Account/update_account",
    }
    assert server.dump_state() == before


def test_a_parameter_nothing_reads_is_refused_not_ignored(
    server: EmulatorServer, token: str
) -> None:
    # i_account_role belongs to add_account; sent with an update it would be silently dropped.
    answer = fault(
        server, token, "Account/update_account",
        {"account_info": {"i_account": reception(server, token), "i_account_role": 1}},
    )  # fmt: skip
    assert answer["faultcode"] == "Client.Validation.unknown_parameter"
    assert "account_info.i_account_role" in answer["faultstring"]
    top = fault(server, token, "Customer/get_customer_info", {"i_customer": 46170, "x": 1})
    assert top["faultstring"] == "x is not a parameter of Customer/get_customer_info"


@pytest.mark.parametrize(
    ("value", "shown"),
    [("46170", 'a string ("46170")'), (46170.9, "a number (46170.9)"),
     (46170.0, "a number (46170.0)"), (True, "a boolean (true)"), (None, "null")],
)  # fmt: skip
def test_an_integer_parameter_takes_a_json_integer_only(
    server: EmulatorServer, token: str, value: Any, shown: str
) -> None:
    answer = fault(server, token, "Customer/get_customer_info", {"i_customer": value})
    assert answer == {
        "faultcode": "Client.Validation.invalid_type",
        "faultstring": f"i_customer must be an integer, not {shown} in Customer/get_customer_info",
    }


def test_a_missing_required_parameter_is_a_fault(server: EmulatorServer, token: str) -> None:
    answer = fault(server, token, "Account/add_alias", {"alias_info": {"id": "12094555952"}})
    assert answer == {
        "faultcode": "Client.Validation.missing_parameter",
        "faultstring": "alias_info.i_master_account is required by Account/add_alias",
    }
    assert fault(server, token, "Account/terminate_account", {})["faultcode"] == (
        "Client.Validation.missing_parameter"
    )


@pytest.mark.parametrize("blocked", ["y", "yes", "1", True, 1])
def test_blocked_is_exactly_y_or_n(server: EmulatorServer, token: str, blocked: Any) -> None:
    before = server.dump_state()
    answer = fault(
        server, token, "Account/update_account",
        {"account_info": {"i_account": reception(server, token), "blocked": blocked}},
    )  # fmt: skip
    assert answer["faultcode"] in ("Client.Validation.invalid_value",
                                   "Client.Validation.invalid_type")
    assert answer["faultstring"].startswith("account_info.blocked")
    assert server.dump_state() == before


def test_blocked_by_without_a_block_is_a_fault(server: EmulatorServer, token: str) -> None:
    answer = fault(
        server, token, "Account/update_account",
        {"account_info": {"i_account": reception(server, token), "blocked": "N",
                          "blocked_by": "customer"}},
    )  # fmt: skip
    assert answer["faultcode"] == "Client.Validation.invalid_value"
    assert "account_info.blocked_by" in answer["faultstring"]
    admin = fault(
        server, token, "Account/update_account",
        {"account_info": {"i_account": reception(server, token), "blocked": "Y",
                          "blocked_by": "admin"}},
    )  # fmt: skip
    assert admin["faultcode"] == "Client.Validation.invalid_value"


def test_an_offset_without_its_limit_is_a_fault(server: EmulatorServer, token: str) -> None:
    answer = fault(server, token, "DID/get_number_list", {"i_customer": 46170, "offset": 2})
    assert answer == {
        "faultcode": "Client.Validation.missing_parameter",
        "faultstring": "offset needs limit: send both or neither",
    }


# ---- malformed requests never drop the connection ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body", "faultcode"),
    [
        ("DID/get_number_list", b'{"params": {"i_customer": 46170, "limit": "ten", "offset": 0}}',
         "Client.Validation.invalid_type"),
        ("Account/update_account",
         b'{"params": {"account_info": {"i_account": 1, "assigned_addons": {"i_product": 3}}}}',
         "Client.Validation.invalid_type"),
        ("Account/update_account",
         b'{"params": {"account_info": {"i_account": 1, "assigned_addons": [3]}}}',
         "Client.Validation.invalid_type"),
        ("Product/get_product_list", b'{"params": [1, 2]}', "Client.Validation.invalid_type"),
        ("Product/get_product_list", b'{"params": {}, "parms": {}}',
         "Client.Validation.unknown_parameter"),
        ("Product/get_product_list", b"[]", "Client.Validation.invalid_type"),
        ("Product/get_product_list", b"{not json", "Client.Request.invalid_json"),
        ("Product/get_product_list", b'{"params": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
         "Client.Request.invalid_json"),
        ("Account/no_such_method", b'{"params": {}}', "Client.Service.unknown_method"),
    ],
)  # fmt: skip
def test_a_malformed_request_gets_a_fault_on_a_connection_that_stays_open(
    server: EmulatorServer, token: str, method: str, body: bytes, faultcode: str
) -> None:
    connection = Connection(server)
    try:
        status, answer = connection.send(method, body, token)
        # A body that is no JSON at all is a bad request (400); a JSON one is a call, refused
        # with a fault (500) as a server refuses it.
        expected = 400 if faultcode == "Client.Request.invalid_json" else 500
        assert (status, answer["faultcode"]) == (expected, faultcode), answer
        status, products = connection.send("Product/get_product_list", b'{"params": {}}', token)
        assert status == 200 and products["total"] == 5
        assert connection.reused
    finally:
        connection.close()


def test_a_crash_inside_a_method_is_a_server_fault_not_a_dropped_connection(
    server: EmulatorServer, token: str
) -> None:
    def broken(params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError(f"bug while reading {params}")

    server.store.methods["Product/get_product_list"] = broken
    connection = Connection(server)
    try:
        status, answer = connection.send("Product/get_product_list", b'{"params": {}}', token)
        assert status == 500
        assert answer == {
            "faultcode": "Server.Internal.unexpected_error",
            "faultstring": "the emulator failed on Product/get_product_list: RuntimeError",
        }
        status, _ = connection.send("Customer/get_customer_info",
                                    b'{"params": {"i_customer": 46170}}', token)
        assert status == 200 and connection.reused
    finally:
        connection.close()


def test_a_body_over_the_limit_is_refused_unread(server: EmulatorServer, token: str) -> None:
    connection = Connection(server)
    try:
        connection.http.putrequest("POST", "/rest/Product/get_product_list")
        connection.http.putheader("Content-Length", str(64 * 1024 * 1024))
        connection.http.endheaders()
        response = connection.http.getresponse()
        assert response.status == 413
        assert b"body_too_large" in response.read()
    finally:
        connection.close()


# ---- the emulator's knowledge is its own ---------------------------------------------------------


def test_the_emulator_does_not_share_the_clients_field_names() -> None:
    """A misspelt name in the client's fields module must fail a test, not be mirrored here."""
    for module in EMULATOR.glob("*.py"):
        tree = ast.parse(module.read_text(), str(module))
        imported = [
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        ] + [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names]  # fmt: skip
        assert not [name for name in imported if name.startswith("reconciler.backends")], module


def test_every_method_has_a_declared_shape_that_forbids_unknown_members() -> None:
    assert set(READS) | set(WRITES) <= set(SHAPES)

    def objects(schema: Any) -> Iterator[dict[str, Any]]:
        if isinstance(schema, dict):
            if schema.get("type") == "object":
                yield schema
            for value in schema.values():
                yield from objects(value)

    for method, schema in SHAPES.items():
        for shape in objects(schema):
            assert shape.get("additionalProperties") is False, method
    Shapes().check("Account/add_alias", {"alias_info": {"i_master_account": 1, "id": "1"}})


# Well-formed and malformed params of every kind: the compiled check that answers "valid" on the
# hot path must say what jsonschema says.
SAMPLES: list[tuple[str, Any]] = [
    ("Account/update_account", {"account_info": {"i_account": 1, "blocked": "Y",
                                                 "blocked_by": "customer"}}),
    ("Account/update_account", {"account_info": {"i_account": 1, "assigned_addons": [
        {"i_product": 3, "addon_effective_from": "2026-01-01 00:00:00",
         "addon_effective_to": None}]}}),
    ("Account/update_account", {"account_info": {"i_account": 1, "assigned_addons": [
        {"i_product": 3, "addon_effective_to": "tomorrow"}]}}),
    ("Account/update_account", {"account_info": {"i_account": 1, "assigned_addons": {}}}),
    ("Account/update_account", {"account_info": {"i_account": 1, "i_acount": 1}}),
    ("Account/update_account", {"account_info": {"i_account": 1.0}}),
    ("Account/update_account", {"account_info": {"i_account": 0}}),
    ("Account/update_account", {"account_info": {"i_account": 1, "blocked": "y"}}),
    ("Account/update_account", {}),
    ("Account/get_account_list", {"i_customer": 1, "limit": 10, "offset": 0, "get_total": 1,
                                  "with_aliases": 1, "get_only_real_accounts": 1}),
    ("Account/get_account_list", {"i_customer": 1, "limit": "10"}),
    ("Account/get_account_list", {"i_customer": 1, "with_aliases": True}),
    ("Account/get_account_list", {"i_customer": 1, "with_aliases": 2}),
    ("Customer/add_customer_extension",
     {"i_customer": 1, "id": "0466", "name": "A", "i_product": 1}),
    ("Customer/add_customer_extension", {"i_customer": 1, "id": 466, "name": "A", "i_product": 1}),
    ("Customer/add_customer_extension",
     {"i_customer": 1, "id": "4x6", "name": "A", "i_product": 1}),
    ("Account/add_account", {"account_info": {"i_customer": 1, "id": "ph1aa1", "i_product": 2,
                                              "i_account_role": 1, "billing_model": 1}}),
    ("Account/add_account", {"account_info": {"i_customer": 1, "id": "", "i_product": 2,
                                              "i_account_role": 1, "billing_model": 1}}),
    ("Account/add_account", {"account_info": {"i_customer": 1, "id": "x", "i_product": 2,
                                              "i_account_role": 2, "billing_model": 1}}),
    ("Session/login", {"login": "a", "password": "b"}),
    ("Session/login", {"login": "a", "pasword": "b"}),
    ("Generic/get_session_data", {"x": 1}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "params"), SAMPLES)
def test_the_fast_check_and_jsonschema_agree(method: str, params: Any) -> None:
    fast, authority = Shapes().is_valid(method, params)
    assert fast == authority


def test_a_write_with_a_block_sent_alone_records_no_author(
    server: EmulatorServer, token: str
) -> None:
    i_account = reception(server, token)
    call(server, token, "Account/update_account",
         {"account_info": {"i_account": i_account, "blocked": "Y"}})
    blocked = account(server, token, "ph46170x100")
    assert blocked["blocked"] == "Y" and "blocked_by" not in blocked
    call(server, token, "Account/update_account",
         {"account_info": {"i_account": i_account, "blocked": "Y",
                           "blocked_by": "customer"}})  # fmt: skip
    assert account(server, token, "ph46170x100")["blocked_by"] == "customer"
    call(server, token, "Account/update_account",
         {"account_info": {"i_account": i_account, "blocked": "N"}})
    unblocked = account(server, token, "ph46170x100")
    assert unblocked["blocked"] == "N" and "blocked_by" not in unblocked
