"""The third wire contract (v3), the emulator's realistic default, at the wire level: raw JSON over
HTTP, one test per behaviour, each also against the variant a server may show instead."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from reconciler.emulator import EmulatorServer
from reconciler.emulator.profile import V2, V3, wire_profile
from reconciler.emulator.testing import state_from_yaml
from reconciler.statefile import BillingState
from tests.cli_capture import run_cli
from tests.emulator_support import LOGIN, PASSWORD, STATE, account, base_url, call, fault, post

REPO = Path(__file__).resolve().parent.parent
DEMO_STATE = REPO / "specs" / "demo-billing-state.yaml"


@pytest.fixture
def state(tmp_path: Path) -> BillingState:
    return state_from_yaml(STATE, str(tmp_path))


def serve(state: BillingState, **variants: Any) -> EmulatorServer:
    """An emulator speaking v3 (named, so the suite's default for older clients does not
    apply) with the given variants."""
    return EmulatorServer(state, login=LOGIN, password=PASSWORD, wire="v3", **variants)


@pytest.fixture
def server(state: BillingState) -> Iterator[EmulatorServer]:
    with serve(state) as running:
        yield running


def login_answer(server: EmulatorServer) -> dict[str, Any]:
    answer = post(server, "Session/login", {"login": LOGIN, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


@pytest.fixture
def token(server: EmulatorServer) -> str:
    return str(login_answer(server)["access_token"])


def claims(jwt: str) -> dict[str, Any]:
    header, payload, signature = jwt.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["typ"] == "JWT"
    assert signature
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def i_account(server: EmulatorServer, token: str, account_id: str) -> int:
    return int(account(server, token, account_id)["i_account"])


def pool(server: EmulatorServer, token: str) -> set[str]:
    numbers = call(server, token, "DID/get_number_list", {"i_customer": 46170})["number_list"]
    return {n["number"] for n in numbers}


# ---- the default is v3 ---------------------------------------------------------------------------


def run_command(*options: str) -> tuple[list[str], dict[str, Any]]:
    """Start ``reconciler emulator`` as a user does (a process of its own, nothing of the test
    suite's set-up), log in over raw HTTP, stop it: (its first lines, the login answer)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "emulator", "--state", str(DEMO_STATE), "--port", "0",
         *options],
        stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        assert process.stderr is not None
        lines = [process.stderr.readline() for _ in range(4)]
        url = lines[0].split(" at ")[1].strip().replace("portabilling+", "")
        answer = requests.post(
            f"{url}/rest/Session/login",
            json={"params": {"login": "emulator", "password": "emulator"}},
            timeout=5,
        ).json()
    finally:
        process.terminate()
        process.wait(timeout=10)
    return lines, answer


def test_the_emulator_command_speaks_v3_unless_told_otherwise() -> None:
    lines, answer = run_command()
    assert set(answer) == {"session_id", "access_token", "refresh_token", "expires_at"}
    assert lines[3].strip() == "wire: v3", lines
    assert wire_profile("v3") == V3 and wire_profile("v2") == V2


def test_the_emulator_command_takes_a_profile_and_variants() -> None:
    lines, answer = run_command("--wire", "v2", "--tokens", "both", "--release-dids",
                                "--time-zone", "Europe/Prague")  # fmt: skip
    assert lines[3].strip() == (
        "wire: v2 with tokens=both, release_dids=True, time_zone=Europe/Prague"
    ), lines
    assert set(answer) == {"session_id", "access_token", "refresh_token", "expires_at",
                           "expires_in"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--account-id-format", "{customer}-{id}"], "account_id_format '{customer}-{id}' must"),
        (["--time-zone", "Mars/Olympus"], "time_zone 'Mars/Olympus' is not a time zone name"),
        (["--tokens", "forever"], "'forever' is not one of"),
    ],
)
def test_a_bad_wire_option_is_one_message_and_exit_1(options: list[str], message: str) -> None:
    result = run_cli(["emulator", "--state", str(DEMO_STATE), "--port", "0", *options])
    assert result.code == 1 and message in result.err, result.err
    assert "Traceback" not in result.text and "serving" not in result.text


# ---- blocks --------------------------------------------------------------------------------------


def test_no_answer_says_who_blocked_and_a_sent_blocked_by_is_taken_and_ignored(
    server: EmulatorServer, token: str
) -> None:
    locked = account(server, token, "ph46170x300")  # the state file's administrator block
    assert locked["blocked"] == "Y" and "blocked_by" not in locked
    reception = i_account(server, token, "ph46170x100")
    call(server, token, "Account/update_account",
         {"account_info": {"i_account": reception, "blocked": "Y",
                           "blocked_by": "customer"}})  # fmt: skip
    listed = call(server, token, "Account/get_account_list",
                  {"i_customer": 46170, "get_only_real_accounts": 1})["account_list"]  # fmt: skip
    assert all("blocked_by" not in a for a in listed)
    assert {a["id"]: a["blocked"] for a in listed}["ph46170x100"] == "Y"
    # A v2 server refused blocked_by without a block; a real one does not judge it.
    call(server, token, "Account/update_account",
         {"account_info": {"i_account": reception, "blocked": "N",
                           "blocked_by": "customer"}})  # fmt: skip
    assert account(server, token, "ph46170x100")["blocked"] == "N"


def test_the_v2_variant_shows_who_blocked(state: BillingState) -> None:
    with serve(state, blocked_by=True) as server:
        token = str(login_answer(server)["access_token"])
        assert account(server, token, "ph46170x300")["blocked_by"] == "admin"


def test_an_accounts_note_is_kept_shown_and_validated(server: EmulatorServer, token: str) -> None:
    reception = i_account(server, token, "ph46170x100")
    assert account(server, token, "ph46170x100")["note"] == ""
    call(server, token, "Account/update_account",
         {"account_info": {"i_account": reception, "blocked": "Y",
                           "note": "two\nlines"}})  # fmt: skip
    listed = call(server, token, "Account/get_account_list", {"i_customer": 46170})["account_list"]
    assert all("note" in row for row in listed)  # alias rows too
    assert {a["id"]: a["note"] for a in listed}["ph46170x100"] == "two\nlines"
    # A block the state file gives the administrator carries no note.
    assert account(server, token, "ph46170x300")["note"] == ""
    call(server, token, "Account/add_account", {"account_info": {
        "i_customer": 46170, "id": "aa-2", "i_product": 2, "i_account_role": 1,
        "billing_model": 1, "note": "made by hand"}})  # fmt: skip
    assert account(server, token, "aa-2")["note"] == "made by hand"
    refused = fault(server, token, "Account/update_account",
                    {"account_info": {"i_account": reception, "note": 7}})  # fmt: skip
    assert refused["faultcode"] == "Client.Validation.invalid_type"
    assert "account_info.note must be a string" in refused["faultstring"]
    assert account(server, token, "ph46170x100")["note"] == "two\nlines"


def test_a_server_that_hides_notes_keeps_them_unseen(state: BillingState) -> None:
    with serve(state, notes=False) as server:
        token = str(login_answer(server)["access_token"])
        reception = i_account(server, token, "ph46170x100")
        call(server, token, "Account/update_account",
             {"account_info": {"i_account": reception, "note": "hidden"}})  # fmt: skip
        listed = call(server, token, "Account/get_account_list", {"i_customer": 46170})
        assert all("note" not in row for row in listed["account_list"])
        assert "note" not in account(server, token, "ph46170x100")


# ---- tokens --------------------------------------------------------------------------------------


def test_a_login_answers_a_session_a_jwt_a_refresh_token_and_expires_at(
    server: EmulatorServer,
) -> None:
    before = time.time()
    answer = login_answer(server)
    assert set(answer) == {"session_id", "access_token", "refresh_token", "expires_at"}
    exp = claims(answer["access_token"])["exp"]
    assert before + 899 <= exp <= time.time() + 901
    # expires_at is the JWT's exp in the server's time zone (UTC here).
    at = datetime.strptime(answer["expires_at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert at.timestamp() == exp


def test_expires_at_is_in_the_servers_time_zone(state: BillingState) -> None:
    with serve(state, time_zone="Asia/Kolkata") as server:
        answer = login_answer(server)
    exp = claims(answer["access_token"])["exp"]
    local = datetime.strptime(answer["expires_at"], "%Y-%m-%d %H:%M:%S")
    assert local.replace(tzinfo=ZoneInfo("Asia/Kolkata")).timestamp() == exp
    assert local != datetime.fromtimestamp(exp, UTC).replace(tzinfo=None)


@pytest.mark.parametrize(
    ("tokens", "keys"),
    [
        ("expires_in", {"access_token", "refresh_token", "expires_in"}),
        ("both", {"session_id", "access_token", "refresh_token", "expires_at", "expires_in"}),
        ("jwt", {"session_id", "access_token", "refresh_token"}),
    ],
)
def test_each_token_variant_answers_its_fields(
    state: BillingState, tokens: str, keys: set[str]
) -> None:
    with serve(state, tokens=tokens) as server:
        answer = login_answer(server)
    assert set(answer) == keys
    assert claims(answer["access_token"])["exp"] > time.time()
    if "expires_in" in answer:
        assert answer["expires_in"] == 900


def test_a_refresh_answers_a_new_pair_and_the_used_token_is_spent(server: EmulatorServer) -> None:
    first = login_answer(server)
    renewed = call(server, "", "Session/refresh_access_token",
                   {"refresh_token": first["refresh_token"]})  # fmt: skip
    assert set(renewed) == {"access_token", "refresh_token", "expires_at"}
    call(server, renewed["access_token"], "Product/get_product_list", {})
    again = fault(server, None, "Session/refresh_access_token",
                  {"refresh_token": first["refresh_token"]})  # fmt: skip
    assert again["faultcode"] == "Server.Session.refresh_failed"


def test_a_refresh_without_a_new_refresh_token_keeps_the_old_one_good(state: BillingState) -> None:
    with serve(state, refresh_without_token=True) as server:
        first = login_answer(server)
        for _ in range(3):
            renewed = call(server, "", "Session/refresh_access_token",
                           {"refresh_token": first["refresh_token"]})  # fmt: skip
            assert set(renewed) == {"access_token", "expires_at"}
            call(server, renewed["access_token"], "Product/get_product_list", {})
        assert server.logins == 1 and server.refreshes == 3


# ---- auth faults ---------------------------------------------------------------------------------


def test_each_refused_token_gets_the_code_real_servers_give(
    server: EmulatorServer, token: str
) -> None:
    url = f"{base_url(server)}/rest/Product/get_product_list"

    def code(headers: dict[str, str]) -> str:
        answer = requests.post(url, json={"params": {}}, headers=headers, timeout=5)
        assert answer.status_code == 500, answer.text
        return str(answer.json()["faultcode"])

    assert code({}) == "Client.check_auth.envelope_missed"
    assert code({"Authorization": "Bearer not-a-jwt"}) == (
        "Client.Session.check_auth.failed_to_process_jwt"
    )
    header, payload, _signature = token.split(".")
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(b'x' * 32).decode().rstrip('=')}"
    assert code({"Authorization": f"Bearer {forged}"}) == (
        "Client.Session.check_auth.failed_to_process_access_token"
    )
    server.expire_tokens()
    assert code({"Authorization": f"Bearer {token}"}) == "Server.Session.check_auth.auth_failed"


def test_the_v2_auth_variant_answers_one_code(state: BillingState) -> None:
    with serve(state, auth_faults="v2") as server:
        assert fault(server, None, "Product/get_product_list", {})["faultcode"] == (
            "Server.Session.check_auth_failed"
        )
        assert fault(server, "nonsense", "Product/get_product_list", {})["faultcode"] == (
            "Server.Session.check_auth_failed"
        )


@pytest.mark.parametrize(
    ("style", "expected"),
    [("bare", "standalone_mode"), ("namespaced", "Server.Generic.standalone_mode")]
)
def test_read_only_faults_come_bare_or_namespaced(
    state: BillingState, style: str, expected: str
) -> None:
    variants = {} if style == "bare" else {"read_only_faults": style}  # bare is the default
    with serve(state, read_only="standalone_mode", **variants) as server:
        token = str(login_answer(server)["access_token"])
        before = server.dump_state()
        refused = fault(server, token, "Account/terminate_account",
                        {"i_account": i_account(server, token, "ph46170x200")})  # fmt: skip
        assert refused["faultcode"] == expected
        assert server.dump_state() == before
        mode = call(server, token, "Generic/get_session_data", {})
        assert mode["operating_mode"] == "standalone"


# ---- agreement -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "conditions"),
    [
        ("agreement_info", lambda a: a["agreement_info"]["agreement_condition_list"]),
        ("customer_agreement_info",
         lambda a: a["customer_agreement_info"]["agreement_condition_list"]),
        ("agreement_condition_list", lambda a: a["agreement_condition_list"]),
        ("unknown", lambda a: a["agreement"]["agreement_condition_list"]),
    ],
)
def test_the_agreement_answer_comes_in_each_shape(
    state: BillingState, shape: str, conditions: Any
) -> None:
    with serve(state, agreement_shape=shape) as server:
        token = str(login_answer(server)["access_token"])
        answer = call(server, token, "Customer/get_customer_agreement_info", {"i_customer": 46170})
    assert len(answer) == 1
    assert {(c["i_product"], c["max_offered_quantity"]) for c in conditions(answer)} == {
        (2, 2), (1, 0), (3, 2), (4, 0)
    }


# ---- created extensions --------------------------------------------------------------------------


def new_extension(server: EmulatorServer, token: str, ext: str = "466") -> dict[str, Any]:
    """Create an extension and find its account through i_c_ext, as a v3 client does."""
    created = call(server, token, "Customer/add_customer_extension",
                   {"i_customer": 46170, "id": ext, "name": "Support", "i_product": 1})  # fmt: skip
    assert set(created) == {"i_c_ext"}
    listed = call(server, token, "Customer/get_extensions_list", {"i_customer": 46170})
    entry = next(e for e in listed["extensions_list"] if e["i_c_ext"] == created["i_c_ext"])
    info = call(server, token, "Account/get_account_info", {"i_account": entry["i_account"]})
    return info["account_info"]  # type: ignore[no-any-return]


def test_a_created_extension_is_found_through_its_i_c_ext(server: EmulatorServer,
                                                          token: str) -> None:
    info = new_extension(server, token)
    assert (info["id"], info["bill_status"], info["extension_id"]) == ("ph46170x466", "O", "466")


@pytest.mark.parametrize(
    ("template", "expected"),
    [("{i_customer}-{id}", "46170-466"), ("ext{id}@{i_customer}", "ext466@46170")]
)
def test_a_server_may_generate_another_account_id(
    state: BillingState, template: str, expected: str
) -> None:
    with serve(state, account_id_format=template) as server:
        token = str(login_answer(server)["access_token"])
        assert new_extension(server, token)["id"] == expected
        assert expected in {a.id for a in server.dump_state().accounts}


@pytest.mark.parametrize("template", ["ph{i_customer}", "{id}-{name}", "{id"])
def test_an_account_id_format_without_the_extension_or_with_other_fields_is_refused(
    state: BillingState, template: str
) -> None:
    with pytest.raises(ValueError, match="account_id_format"):
        serve(state, account_id_format=template)


def test_a_new_account_may_start_inactive_and_is_still_managed(state: BillingState) -> None:
    with serve(state, new_account_status="I") as server:
        token = str(login_answer(server)["access_token"])
        info = new_extension(server, token)
        assert info["bill_status"] == "I"
        # Inactive is not terminated: it takes changes and counts against the agreement.
        call(server, token, "Account/update_account",
             {"account_info": {"i_account": info["i_account"], "blocked": "Y"}})  # fmt: skip
        attendant = call(server, token, "Account/add_account", {"account_info": {
            "i_customer": 46170, "id": "ph46170aa2", "i_product": 2, "i_account_role": 1,
            "billing_model": 1}})  # fmt: skip
        assert account(server, token, "ph46170aa2")["bill_status"] == "I"
        over = fault(server, token, "Account/add_account", {"account_info": {
            "i_customer": 46170, "id": "ph46170aa3", "i_product": 2, "i_account_role": 1,
            "billing_model": 1}})  # fmt: skip
        assert over["faultcode"] == "Server.Customer.quantity_exceeded"
        assert attendant["i_account"] and server.invariant_problems() == []


# ---- aliases and DIDs ----------------------------------------------------------------------------


def test_add_alias_answers_its_i_account_or_nothing(state: BillingState) -> None:
    for answer_style, keys in (("i_account", {"i_account"}), ("empty", set())):
        with serve(state, add_alias_answer=answer_style) as server:
            token = str(login_answer(server)["access_token"])
            master = i_account(server, token, "ph46170x200")
            answer = call(server, token, "Account/add_alias",
                          {"alias_info": {"i_master_account": master,
                                          "id": "12094555949"}})  # fmt: skip
            assert set(answer) == keys
            aliases = call(server, token, "Account/get_alias_list", {"i_master_account": master})
            assert [a["id"] for a in aliases["alias_list"]] == ["12094555949"]


def aliases_of(server: EmulatorServer, token: str, account_id: str) -> dict[str, int]:
    master = i_account(server, token, account_id)
    listed = call(server, token, "Account/get_alias_list", {"i_master_account": master})
    return {a["id"]: a["i_account"] for a in listed["alias_list"]}


@pytest.mark.parametrize(
    ("release_dids", "sent", "released"),
    [
        (False, {}, False),  # the default: the DID stays in the pool
        (False, {"release_assigned_did": 1}, True),
        (True, {}, True),  # a server that releases by default
        (True, {"release_assigned_did": 0}, False),  # ...unless told not to
    ],
)
def test_a_removed_alias_leaves_its_did_in_the_pool_unless_released(
    state: BillingState, release_dids: bool, sent: dict[str, int], released: bool
) -> None:
    with serve(state, release_dids=release_dids) as server:
        token = str(login_answer(server)["access_token"])
        alias = aliases_of(server, token, "ph46170x100")["12094555950"]
        call(server, token, "Account/delete_alias", {"alias_info": {"i_account": alias}, **sent})
        assert ("12094555950" not in pool(server, token)) == released
        assert "12094555950" not in aliases_of(server, token, "ph46170x100")


@pytest.mark.parametrize(("release_dids", "sent", "released"),
                         [(False, {}, False), (True, {}, True),
                          (True, {"release_assigned_did": 0}, False)])  # fmt: skip
def test_a_terminated_account_leaves_its_dids_in_the_pool_unless_released(
    state: BillingState, release_dids: bool, sent: dict[str, int], released: bool
) -> None:
    with serve(state, release_dids=release_dids) as server:
        token = str(login_answer(server)["access_token"])
        master = i_account(server, token, "ph46170x100")
        call(server, token, "Account/terminate_account", {"i_account": master, **sent})
        kept = {"12094555950", "12094555951"} & pool(server, token)
        assert kept == (set() if released else {"12094555950", "12094555951"})
        assert server.invariant_problems() == []


# ---- the server's time zone ----------------------------------------------------------------------


def test_session_data_tells_the_time_zone_and_add_on_dates_are_in_it(state: BillingState) -> None:
    with serve(state, time_zone="Asia/Kolkata") as server:
        token = str(login_answer(server)["access_token"])
        data = call(server, token, "Generic/get_session_data", {})
        assert data == {"operating_mode": "normal", "time_zone_name": "Asia/Kolkata"}
        sales = i_account(server, token, "ph46170x200")
        call(server, token, "Account/update_account", {"account_info": {
            "i_account": sales,
            "assigned_addons": [{"i_product": 3}, {"i_product": 4}]}})  # fmt: skip
        addons = account(server, token, "ph46170x200")["assigned_addons"]
    added = next(a for a in addons if a["i_product"] == 4)
    start = datetime.strptime(added["addon_effective_from"], "%Y-%m-%d %H:%M:%S")
    local_now = datetime.now(ZoneInfo("Asia/Kolkata")).replace(tzinfo=None)
    assert abs(start - local_now) < timedelta(seconds=30)  # UTC would be 5.5 hours off


def test_a_server_may_keep_its_time_zone_to_itself(state: BillingState) -> None:
    with serve(state, time_zone="Europe/Prague", session_time_zone=False) as server:
        token = str(login_answer(server)["access_token"])
        assert call(server, token, "Generic/get_session_data", {}) == {"operating_mode": "normal"}


def test_an_unknown_time_zone_or_variant_is_refused(state: BillingState) -> None:
    with pytest.raises(ValueError, match="time_zone 'Mars/Olympus'"):
        serve(state, time_zone="Mars/Olympus")
    with pytest.raises(ValueError, match="not a wire variant: blocked"):
        serve(state, blocked=True)
    with pytest.raises(ValueError, match="wire must be one of v2, v3"):
        EmulatorServer(state, wire="v4")
