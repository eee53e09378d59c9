"""Sessions as servers run them: access and refresh tokens, lockout after failed logins, the
operating mode of a read-only site, and an emulator that listens on loopback only. These state
the second contract's (v2) shapes; tests/test_emulator_v3.py states the realistic defaults."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator import EmulatorServer, NotLoopback, run_emulator
from reconciler.emulator.testing import state_from_yaml
from reconciler.statefile import BillingState
from tests.cli_capture import run_cli
from tests.emulator_support import LOGIN, PASSWORD, STATE, account, call, fault, login, post

DEMO_STATE = Path(__file__).resolve().parent.parent / "specs" / "demo-billing-state.yaml"


@pytest.fixture
def state(tmp_path: Path) -> BillingState:
    return state_from_yaml(STATE, str(tmp_path))


@pytest.fixture
def server(state: BillingState) -> Iterator[EmulatorServer]:
    with EmulatorServer(state, login=LOGIN, password=PASSWORD, wire="v2") as running:
        yield running


def login_answer(server: EmulatorServer, password: str = PASSWORD) -> dict[str, object]:
    return post(server, "Session/login", {"login": LOGIN, "password": password}).json()  # type: ignore[no-any-return]


# ---- tokens --------------------------------------------------------------------------------------


def test_login_hands_out_an_access_token_a_refresh_token_and_its_lifetime(
    server: EmulatorServer,
) -> None:
    answer = login_answer(server)
    assert set(answer) == {"access_token", "refresh_token", "expires_in"}
    assert answer["expires_in"] == 900 and answer["access_token"] != answer["refresh_token"]
    assert call(server, str(answer["access_token"]), "Product/get_product_list", {})["total"] == 5
    assert server.logins == 1


def test_a_refresh_token_renews_the_session_once(server: EmulatorServer) -> None:
    first = login_answer(server)
    renewed = call(server, "", "Session/refresh_access_token",
                   {"refresh_token": first["refresh_token"]})
    assert set(renewed) == {"access_token", "refresh_token", "expires_in"}
    assert renewed["access_token"] != first["access_token"]
    assert call(server, renewed["access_token"], "Product/get_product_list", {})["total"] == 5
    used = fault(server, None, "Session/refresh_access_token",
                 {"refresh_token": first["refresh_token"]})
    assert used["faultcode"] == "Server.Session.refresh_failed"
    assert server.refreshes == 2 and server.logins == 1


def test_expired_access_tokens_are_refused_while_refresh_tokens_still_renew(
    server: EmulatorServer,
) -> None:
    first = login_answer(server)
    server.expire_tokens()
    refused = fault(server, str(first["access_token"]), "Product/get_product_list", {})
    assert refused["faultcode"] == "Server.Session.check_auth_failed"
    renewed = call(server, "", "Session/refresh_access_token",
                   {"refresh_token": first["refresh_token"]})
    assert call(server, renewed["access_token"], "Product/get_product_list", {})["total"] == 5
    server.expire_refresh_tokens()
    gone = fault(server, None, "Session/refresh_access_token",
                 {"refresh_token": renewed["refresh_token"]})
    assert gone["faultcode"] == "Server.Session.refresh_failed"


def test_tokens_expire_after_their_seconds_or_their_calls(state: BillingState) -> None:
    with EmulatorServer(
        state, login=LOGIN, password=PASSWORD, token_ttl_seconds=0.3, wire="v2"
    ) as server:
        token = login(server)
        assert call(server, token, "Product/get_product_list", {})
        time.sleep(0.4)
        assert fault(server, token, "Product/get_product_list", {})["faultcode"] == (
            "Server.Session.check_auth_failed"
        )
    with EmulatorServer(
        state, login=LOGIN, password=PASSWORD, token_ttl_calls=2, wire="v2"
    ) as server:
        token = login(server)
        call(server, token, "Product/get_product_list", {})
        call(server, token, "Product/get_product_list", {})
        assert "check_auth" in fault(server, token, "Product/get_product_list", {})["faultcode"]


def test_login_takes_a_password_or_a_token_never_both(server: EmulatorServer) -> None:
    both = fault(server, None, "Session/login",
                 {"login": LOGIN, "password": PASSWORD, "token": "t"})
    assert both["faultcode"] == "Client.Validation.missing_parameter"
    assert server.failed_logins == {}  # a malformed login is not a failed one


# ---- lockout -------------------------------------------------------------------------------------


def test_three_failed_logins_lock_the_user_out_until_reset(server: EmulatorServer) -> None:
    for _ in range(3):
        refused = fault(server, None, "Session/login", {"login": LOGIN, "password": "wrong"})
        assert refused == {"faultcode": "Server.Session.auth_failed", "faultstring": "login failed"}
    assert server.failed_logins == {LOGIN: 3}
    locked = fault(server, None, "Session/login", {"login": LOGIN, "password": PASSWORD})
    assert locked["faultcode"] == "Server.Session.brute_force"
    assert "wrong" not in locked["faultstring"] and PASSWORD not in locked["faultstring"]
    server.reset_lockout()
    assert login(server)
    assert server.logins == 5


def test_a_successful_login_clears_the_failures_before_it(server: EmulatorServer) -> None:
    for _ in range(2):
        fault(server, None, "Session/login", {"login": LOGIN, "password": "wrong"})
    login(server)
    for _ in range(2):
        fault(server, None, "Session/login", {"login": LOGIN, "password": "wrong"})
    assert login(server)


# ---- operating mode ------------------------------------------------------------------------------


def test_a_normal_server_says_so(server: EmulatorServer) -> None:
    assert call(server, login(server), "Generic/get_session_data", {}) == {
        "operating_mode": "normal"
    }


@pytest.mark.parametrize(
    ("read_only", "mode", "faultcode"),
    [
        (True, "read_only", "Server.Generic.read_only_mode"),
        ("read_only_mode", "read_only", "Server.Generic.read_only_mode"),
        ("standalone_mode", "standalone", "Server.Generic.standalone_mode"),
        ("secondary_site", "secondary", "Server.Generic.secondary_site"),
    ],
)
def test_a_read_only_site_answers_reads_and_refuses_every_write(
    state: BillingState, read_only: object, mode: str, faultcode: str
) -> None:
    with EmulatorServer(
        state, login=LOGIN, password=PASSWORD, read_only=read_only, wire="v2"
    ) as server:  # type: ignore[arg-type]
        token = login(server)
        assert call(server, token, "Generic/get_session_data", {})["operating_mode"] == mode
        i_account = account(server, token, "ph46170x100")["i_account"]
        writes = [
            ("Account/update_account", {"account_info": {"i_account": i_account, "blocked": "N"}}),
            ("Account/terminate_account", {"i_account": i_account}),
            ("Account/add_alias",
             {"alias_info": {"i_master_account": i_account, "id": "12094555952"}}),
            ("Customer/add_customer_extension",
             {"i_customer": 46170, "id": "466", "name": "John", "i_product": 1}),
        ]  # fmt: skip
        for method, params in writes:
            assert fault(server, token, method, params)["faultcode"] == faultcode
        assert server.dump_state() == state
        assert server.write_counts == {m: 1 for m, _ in writes}


def test_a_site_can_turn_read_only_while_running(server: EmulatorServer) -> None:
    token = login(server)
    i_account = account(server, token, "ph46170x200")["i_account"]
    call(server, token, "Account/terminate_account", {"i_account": i_account})
    server.set_read_only(True)
    assert fault(server, token, "Account/terminate_account", {"i_account": 1})["faultcode"] == (
        "Server.Generic.read_only_mode"
    )


# ---- loopback only -------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com", ""])
def test_the_emulator_refuses_to_listen_beyond_loopback(host: str, state: BillingState) -> None:
    with pytest.raises(NotLoopback, match="loopback only"):
        EmulatorServer(state, host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_every_loopback_address_is_accepted(host: str, state: BillingState) -> None:
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        server = EmulatorServer(state, host=host, login=LOGIN, password=PASSWORD, wire="v2").start()
    except OSError as exc:  # an address family the machine lacks, not a refusal
        pytest.skip(f"cannot listen on {host}: {exc}")
    try:
        assert login_answer(server)["expires_in"] == 900
    finally:
        server.stop()
        server.store.close()


def test_the_emulator_command_refuses_a_public_host_with_exit_1() -> None:
    result = run_cli(["emulator", "--state", str(DEMO_STATE), "--host", "0.0.0.0", "--port", "0"])
    assert result.code == 1
    assert "loopback only" in result.err and "0.0.0.0" in result.err
    assert "Traceback" not in result.text and "serving" not in result.text


def test_the_emulator_command_serves_read_only_without_the_legacy_field() -> None:
    lines: list[str] = []
    thread = threading.Thread(
        target=run_emulator,
        kwargs={"state_file": str(DEMO_STATE), "port": 0, "announce": lines.append, "env": {},
                "stop_after": 1.0, "read_only": True, "legacy_blocking_field": False,
                "wire": "v2"},
    )  # fmt: skip
    thread.start()
    try:
        for _ in range(200):
            if lines:
                break
            time.sleep(0.01)
        url = lines[0].split(" at ")[1].replace("portabilling+", "")
        import requests

        token = requests.post(
            f"{url}/rest/Session/login",
            json={"params": {"login": "emulator", "password": "emulator"}},
            timeout=5,
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        mode = requests.post(f"{url}/rest/Generic/get_session_data", json={"params": {}},
                             headers=headers, timeout=5).json()  # fmt: skip
        info = requests.post(f"{url}/rest/Customer/get_customer_info",
                             json={"params": {"i_customer": 46170}}, headers=headers,
                             timeout=5).json()["customer_info"]  # fmt: skip
    finally:
        thread.join()
    assert mode == {"operating_mode": "read_only"}
    assert "i_role" in info and "extension_blocking" not in info
    assert any("read_only" in line for line in lines)
