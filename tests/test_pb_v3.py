"""Wire contract v3 against a loopback stub: each point where a real server differs from v2.

Who blocked an account without ``blocked_by``, tokens told by ``expires_at`` / a JWT ``exp``,
the v3 auth fault codes, the three agreement shapes, a created extension found through
``i_c_ext``, write answers without the expected key, DIDs kept in the pool, add-on dates in the
server's time zone. The same points run against the emulator's variants in
``test_pb_v3_emulator.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reconciler.backends.base import AuditEntry
from reconciler.backends.portabilling.backend import PortaBillingBackend
from reconciler.backends.portabilling.client import (
    BillingReadOnly,
    Credentials,
    PortaBillingClient,
    endpoint_of,
)
from reconciler.backends.portabilling.fields import BLOCK_MARKER
from reconciler.backends.portabilling.session import TokenSession
from reconciler.changes import (
    AddAlias,
    Block,
    CreateAccount,
    RemoveAlias,
    TerminateAccount,
    Unblock,
)
from tests.helpers import run_cli
from tests.pb_stub import FAST, Stub, account, customer


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)



def backend_for(stub: Stub, audit: str = "audit.jsonl", **env: str) -> PortaBillingBackend:
    return PortaBillingBackend(
        stub.url, env={**stub.env, **env}, settings=FAST, parallelism=4, audit_path=audit
    )


def fault(code: str, text: str = "refused") -> tuple[int, dict[str, str]]:
    return 500, {"faultcode": code, "faultstring": text}


def apply(backend: PortaBillingBackend, *items: Any) -> list[Any]:
    """Run changes the way apply does: each one audited the moment it is in billing."""
    written: list[Any] = []

    def audit(item: Any) -> None:
        written.append(item)
        backend.audit.append(
            [AuditEntry("2026-01-01T00:00:00Z", 46170, item.op, item.account, {}, "f", None)]
        )

    with backend.customer_session(46170, backend.catalogue()) as session:
        session.read()
        session.execute(list(items), on_written=audit)
    backend.close()
    return written


def blocked_by(backend: PortaBillingBackend, account_id: str) -> str | None:
    state = backend.read_customer(46170, backend.catalogue())
    backend.close()
    assert state is not None
    (found,) = [a for a in state.accounts if a.id == account_id]
    return found.blocked_by


# ---- 1. who blocked an account, without blocked_by -----------------------------------------------


def test_a_block_the_reconciler_made_is_its_own_on_a_fresh_runner_and_it_can_undo_it(
    stubs: Callable[..., Stub], tmp_path: Path
) -> None:
    abc = customer()
    abc["accounts"] = [account(1, "ph46170x100", note="VIP: call before changing")]
    stub = stubs(abc)
    stub.show_blocked_by = False  # like every real server
    apply(backend_for(stub, str(tmp_path / "runner-1" / "audit.jsonl")), Block("ph46170x100"))
    (block,) = stub.params_of("Account/update_account")
    # The marker goes in the same call as the block, beside the administrator's note.
    assert block["account_info"]["blocked"] == "Y"
    assert block["account_info"]["note"] == f"VIP: call before changing\n{BLOCK_MARKER}"

    # A fresh runner: another audit log, another backend, nothing local carried over.
    fresh = backend_for(stub, str(tmp_path / "runner-2" / "audit.jsonl"))
    assert blocked_by(fresh, "ph46170x100") == "customer"
    apply(backend_for(stub, str(tmp_path / "runner-2" / "audit.jsonl")), Unblock("ph46170x100"))
    row = abc["accounts"][0]
    assert row["blocked"] == "N"
    assert row["note"] == "VIP: call before changing"  # the marker went with the unblock
    assert blocked_by(backend_for(stub), "ph46170x100") is None


def test_block_then_unblock_from_two_fresh_runners_as_two_processes(
    stubs: Callable[..., Stub], tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    abc = customer()
    abc["accounts"] = [account(1, "ph46170x100")]
    abc["extensions"] = [{"i_c_ext": 500, "id": "100", "name": "Reception", "i_account": 1}]
    stub = stubs(abc)
    stub.show_blocked_by = False
    repo = Path(__file__).resolve().parent.parent

    def apply_from_a_fresh_runner(name: str, blocked: bool) -> subprocess.CompletedProcess[str]:
        runner = tmp_path / name  # its own checkout, its own (empty) .reconciler folder
        runner.mkdir()
        (runner / "abc.yaml").write_text(
            "version: 1\ncustomer: {id: 46170, name: ABC}\nextensions:\n"
            "  - {extension: '100', name: Reception, product: Cloud PBX service, "
            f"blocked: {str(blocked).lower()}}}\n"
        )
        env = {**os.environ, **stub.env, "PYTHONPATH": str(repo),
               "PORTABILLING_BLOCKING_ROLES": "2"}
        env.pop("RECONCILER_AUDIT_LOG", None)
        return subprocess.run(
            [sys.executable, "-m", "reconciler", "--backend", stub.url, "apply", "abc.yaml",
             "--auto-approve"],
            cwd=runner, env=env, capture_output=True, text=True, timeout=60,
        )

    first = apply_from_a_fresh_runner("runner-1", blocked=True)
    assert first.returncode == 0, first.stdout + first.stderr
    assert abc["accounts"][0]["blocked"] == "Y"
    second = apply_from_a_fresh_runner("runner-2", blocked=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert abc["accounts"][0]["blocked"] == "N"
    assert abc["accounts"][0]["note"] == ""
    assert list((tmp_path / "runner-1" / ".reconciler").glob("audit-*.jsonl"))


def test_a_block_nobody_marked_is_the_administrators_and_a_sent_blocked_by_wins(
    stubs: Callable[..., Stub],
) -> None:
    abc = customer()
    abc["accounts"] = [
        account(1, "ph46170x100", blocked="Y", note="fraud check"),
        account(2, "ph46170x200", blocked="Y", note=BLOCK_MARKER, blocked_by="admin"),
        account(3, "ph46170x300", blocked="N", note=BLOCK_MARKER),  # unblocked by someone else
    ]
    stub = stubs(abc)
    state = backend_for(stub).read_customer(46170, backend_for(stub).catalogue())
    assert state is not None
    assert [a.blocked_by for a in state.accounts] == ["admin", "admin", None]


def test_a_spec_cannot_claim_an_administrators_block(stubs: Callable[..., Stub],
                                                     tmp_path: Path) -> None:
    abc = customer()
    abc["accounts"] = [account(1, "ph46170x100", blocked="Y", firstname="", note="")]
    abc["extensions"] = [{"i_c_ext": 500, "id": "100", "name": "Reception", "i_account": 1}]
    stub = stubs(abc)
    stub.show_blocked_by = False
    spec = tmp_path / "abc.yaml"
    spec.write_text(
        "version: 1\ncustomer: {id: 46170, name: ABC}\n"
        "extensions:\n  - {extension: '100', name: Reception, product: Cloud PBX service, "
        "blocked: false}\n"
    )
    result = run_cli("--backend", stub.url, "apply", str(spec), "--auto-approve", env=stub.env)
    assert result.code == 1, result
    assert "admin_blocked" in result.out
    assert stub.writes() == []
    assert abc["accounts"][0]["blocked"] == "Y"


# ---- 2. tokens -----------------------------------------------------------------------------------


def jwt(exp: float) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'exp': int(exp), 'realm': 'admin'})}.c2ln"


@pytest.mark.parametrize(
    "told",
    ["expires_at", "jwt", "expires_in", "expires_at+jwt", "all three"],
)
def test_every_way_of_telling_a_tokens_lifetime_renews_it_ahead_with_one_login(
    stubs: Callable[..., Stub], told: str
) -> None:
    stub = stubs(customer())
    wall = [1_800_000_000.0]
    mono = [100.0]

    def grant(method: str, params: dict[str, Any], n: int) -> Any:
        if not method.startswith("Session/"):
            return False
        stub.tokens += 1
        expiry = wall[0] + 600
        answer: dict[str, Any] = {"access_token": f"opaque-{stub.tokens}"}
        if "jwt" in told or told == "all three":
            answer["access_token"] = jwt(expiry)
        if "expires_at" in told or told == "all three":
            answer["expires_at"] = datetime.fromtimestamp(expiry, UTC).strftime("%Y-%m-%d %H:%M:%S")
        if told in ("expires_in", "all three"):
            answer["expires_in"] = 600
        if method == "Session/login":
            answer["refresh_token"] = "r-login"
            answer["session_id"] = "s-1"
        return 200, answer  # a refresh answer without refresh_token: the old one is kept

    stub.overrides.append(grant)
    client = PortaBillingClient(endpoint_of(stub.url), Credentials("api", "pw"), FAST)
    client.session = TokenSession(
        client._login, client._refresh, clock=lambda: mono[0], wall=lambda: wall[0]
    )
    for _ in range(4):  # four lifetimes, each read 590 s after the last
        client.read("Product/get_product_list", {"limit": 10, "offset": 0})
        wall[0] += 590
        mono[0] += 590
    assert stub.methods().count("Session/login") == 1
    assert stub.methods().count("Session/refresh_access_token") == 3
    assert stub.params_of("Session/refresh_access_token") == [{"refresh_token": "r-login"}] * 3
    assert not any(
        "faultcode" in str(p) for p in stub.requests
    )  # renewed ahead: no call was refused


def test_expires_at_is_read_in_the_servers_time_zone() -> None:
    from reconciler.backends.portabilling.session import Grant

    wall = 1_800_000_000.0
    at = datetime.fromtimestamp(wall + 900, ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M:%S")
    tokyo = Grant.from_answer("Session/login", {"access_token": "t", "expires_at": at}, 0.0,
                              wall=wall, zone=ZoneInfo("Asia/Tokyo"))
    assert tokyo.lifetime == 900
    # Read as UTC the same text is 9 hours ahead: not believed, not trusted over the others.
    wrong = Grant.from_answer(
        "Session/login", {"access_token": "t", "expires_at": at, "expires_in": 900}, 0.0, wall=wall
    )
    assert wrong.lifetime == 900


# ---- 3. auth and read-only faults ----------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "Server.Session.check_auth.auth_failed",
        "Client.check_auth.envelope_missed",
        "Client.Session.check_auth.failed_to_process_jwt",
        "Client.Session.check_auth.failed_to_process_access_token",
    ],
)
def test_each_v3_auth_fault_renews_the_session_once_and_never_logs_in_again(
    stubs: Callable[..., Stub], code: str
) -> None:
    stub = stubs(customer())
    refused: list[int] = []

    def refuse_once(method: str, params: dict[str, Any], n: int) -> Any:
        if method == "Product/get_product_list" and not refused:
            refused.append(n)
            return fault(code, "token refused")
        return False

    stub.overrides.append(refuse_once)
    client = PortaBillingClient(endpoint_of(stub.url), Credentials("api", "pw"), FAST)
    assert client.read("Product/get_product_list", {"limit": 10, "offset": 0})["product_list"]
    assert stub.methods() == [
        "Session/login",
        "Product/get_product_list",
        "Session/refresh_access_token",
        "Product/get_product_list",
    ]


@pytest.mark.parametrize("code",
                         ["standalone_mode", "Server.Generic.standalone_mode", "read_only_mode"])
def test_read_only_faults_bare_or_namespaced_stop_writes(
    stubs: Callable[..., Stub], code: str
) -> None:
    stub = stubs(customer())
    stub.overrides.append(
        lambda m, p, n: fault(code, "no writes") if m == "Account/update_account" else False
    )
    client = PortaBillingClient(endpoint_of(stub.url), Credentials("api", "pw"), FAST)
    with pytest.raises(BillingReadOnly):
        client.write("Account/update_account", {"account_info": {"i_account": 1}})
    with pytest.raises(BillingReadOnly):
        client.write("Account/update_account", {"account_info": {"i_account": 1}})
    assert stub.writes() == ["Account/update_account"]


# ---- 4. the agreement's wrapper ------------------------------------------------------------------


def _agreement_answer(shape: str, conditions: list[dict[str, Any]]) -> dict[str, Any]:
    if shape == "agreement_condition_list":
        return {"agreement_condition_list": conditions}
    return {shape: {"agreement_condition_list": conditions}}


@pytest.mark.parametrize(
    "shape", ["agreement_info", "customer_agreement_info", "agreement_condition_list"]
)
def test_each_agreement_shape_is_read(stubs: Callable[..., Stub], shape: str) -> None:
    abc = customer()
    stub = stubs(abc)
    stub.overrides.append(
        lambda m, p, n: (200, _agreement_answer(shape, abc["agreement"]))
        if m == "Customer/get_customer_agreement_info"
        else False
    )
    backend = backend_for(stub)
    state = backend.read_customer(46170, backend.catalogue())
    backend.close()
    assert state is not None
    assert dict(state.customer.agreement) == {
        "Cloud PBX service": 0,
        "Auto attendant": 1,
        "Call recording": 0,
        "Voicemail to email": 0,
    }


def test_an_unknown_agreement_shape_is_one_error_naming_the_keys_in_plan_and_doctor(
    stubs: Callable[..., Stub], tmp_path: Path
) -> None:
    stub = stubs(customer())
    stub.overrides.append(
        lambda m, p, n: (200, {"agreement": {"conditions": []}, "extra": 1})
        if m == "Customer/get_customer_agreement_info"
        else False
    )
    spec = tmp_path / "abc.yaml"
    spec.write_text("version: 1\ncustomer: {id: 46170, name: ABC}\n")
    plan = run_cli("--backend", stub.url, "plan", str(spec), env=stub.env)
    assert plan.code == 1, plan
    assert "keys seen: agreement, extra" in plan.err
    assert "Traceback" not in plan.err
    doctor = run_cli("--backend", stub.url, "doctor", "--customer", "46170", env=stub.env)
    assert doctor.code == 1
    assert "fail  agreement:" in doctor.out
    assert "keys seen: agreement, extra" in doctor.out


# ---- 5. a created extension, whatever ID billing gives it ----------------------------------------


def test_a_created_extension_is_found_by_i_c_ext_and_managed_under_the_id_billing_made(
    stubs: Callable[..., Stub], tmp_path: Path
) -> None:
    abc = customer()
    stub = stubs(abc)
    stub.account_id_format = "{c}-{ext}"
    spec = tmp_path / "abc.yaml"
    spec.write_text(
        "version: 1\ncustomer: {id: 46170, name: ABC}\n"
        "extensions:\n"
        "  - {extension: '466', name: John Doe, product: Cloud PBX service, addons: [Call "
        "recording], dids: ['12095550001']}\n"
    )
    applied = run_cli("--backend", stub.url, "apply", str(spec), "--auto-approve", env=stub.env)
    assert applied.code == 0, applied
    (row,) = abc["accounts"]
    assert row["id"] == "46170-466"
    assert [a["id"] for a in row["alias_list"]] == ["12095550001"]
    assert row["assigned_addons"] == [{"i_product": 3}]
    assert "Account/get_account_info" in stub.methods()
    assert {"id": "ph46170x466"} not in stub.params_of("Account/get_account_info")  # no guessing
    again = run_cli("--backend", stub.url, "plan", str(spec), "--detailed-exitcode", env=stub.env)
    assert again.code == 0, again  # read back through the extension: nothing left to do


def test_a_new_account_with_bill_status_i_is_open(stubs: Callable[..., Stub]) -> None:
    abc = customer()
    abc["accounts"] = [account(1, "ph46170x100", bill_status="I")]
    stub = stubs(abc)
    backend = backend_for(stub)
    state = backend.read_customer(46170, backend.catalogue())
    backend.close()
    assert state is not None
    assert [a.status for a in state.accounts] == ["open"]


# ---- 6. write answers without the expected key ---------------------------------------------------


def test_add_alias_answering_nothing_is_read_back_and_audited(
    stubs: Callable[..., Stub], tmp_path: Path
) -> None:
    abc = customer()
    abc["accounts"] = [account(1, "ph46170x100")]
    stub = stubs(abc)
    real = stub._Account_add_alias

    def empty(params: dict[str, Any]) -> Any:
        real(params)
        return 200, {}

    stub._Account_add_alias = empty  # type: ignore[method-assign]
    backend = backend_for(stub, str(tmp_path / "audit.jsonl"))
    item = AddAlias("ph46170x100", did="12095550001")
    assert apply(backend, item) == [item]
    assert "Account/get_alias_list" in stub.methods()
    assert [e.op for e in backend.audit.read()] == ["add_alias"]


def test_a_write_that_landed_is_audited_even_when_its_read_back_fails(
    stubs: Callable[..., Stub], tmp_path: Path
) -> None:
    abc = customer()
    stub = stubs(abc)
    stub.overrides.append(
        lambda m, p, n: (200, b"<html>gone</html>") if m == "Account/get_account_info" else False
    )
    backend = backend_for(stub, str(tmp_path / "audit.jsonl"))
    item = CreateAccount("ph46170x466", kind="extension", name="J", product="Cloud PBX service",
        addons=(), blocked=False,
    )
    with pytest.raises(Exception, match="was created in billing, but"):
        apply(backend, item)
    assert [e.op for e in backend.audit.read()] == ["create_account"]


# ---- 7. DIDs stay in the pool --------------------------------------------------------------------


def test_removing_a_did_and_terminating_send_release_assigned_did_0(
    stubs: Callable[..., Stub],
) -> None:
    abc = customer()
    abc["accounts"] = [
        account(1, "ph46170x100", alias_list=[{"i_account": 77, "id": "12095550001"}]),
        account(2, "ph46170x200"),
    ]
    stub = stubs(abc)
    stub._Account_delete_alias = lambda params: (200, {})  # type: ignore[attr-defined]
    apply(
        backend_for(stub),
        RemoveAlias("ph46170x100", did="12095550001"),
        TerminateAccount("ph46170x200"),
    )
    assert stub.params_of("Account/delete_alias") == [
        {"alias_info": {"i_account": 77}, "release_assigned_did": 0}
    ]
    assert stub.params_of("Account/terminate_account") == [
        {"i_account": 2, "release_assigned_did": 0}
    ]


# ---- 8. add-on dates in the server's time zone ---------------------------------------------------


def _ended_an_hour_ago_in(zone: str) -> str:
    return (datetime.now(ZoneInfo(zone)) - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize("source", ["session data", "setting"])
def test_add_on_end_dates_are_read_in_the_servers_time_zone(
    stubs: Callable[..., Stub], source: str
) -> None:
    zone = "Pacific/Kiritimati"  # UTC+14: read as UTC, an hour ago would be 13 hours ahead
    abc = customer()
    ended = {"i_product": 3, "addon_effective_to": _ended_an_hour_ago_in(zone)}
    abc["accounts"] = [account(1, "ph46170x100", assigned_addons=[ended])]
    stub = stubs(abc)
    env = {}
    if source == "session data":
        stub.session_data["time_zone_name"] = zone
    else:
        env["PORTABILLING_TIMEZONE"] = zone
    backend = PortaBillingBackend(stub.url, env={**stub.env, **env}, parallelism=1)
    state = backend.read_customer(46170, backend.catalogue())
    zone_read, said = backend.client.server_zone()
    backend.close()
    assert state is not None
    assert state.accounts[0].addons == ()
    assert str(zone_read) == zone
    assert ("get_session_data says" in said) == (source == "session data")
    assert stub.methods().count("Generic/get_session_data") == 1


# ---- doctor: which way this server is read -------------------------------------------------------


def _doctor(stub: Stub, **env: str) -> dict[str, dict[str, str]]:
    result = run_cli(
        "--backend", stub.url, "doctor", "--customer", "46170", "--format", "json",
        env={**stub.env, **env},
    )
    return {c["name"]: c for c in result.json["checks"]}


def test_doctor_says_how_blocks_ids_time_zone_and_token_expiry_are_read(
    stubs: Callable[..., Stub],
) -> None:
    abc = customer()
    abc["accounts"] = [
        account(1, "46170-100", blocked="Y", note=BLOCK_MARKER),
        account(2, "ph46170x200", blocked="N", note=BLOCK_MARKER),
    ]
    abc["extensions"] = [
        {"i_c_ext": 500, "id": "100", "name": "Reception", "i_account": 1},
        {"i_c_ext": 501, "id": "200", "name": "Sales", "i_account": 2},
    ]
    stub = stubs(abc)
    stub.show_blocked_by = False
    found = _doctor(stub, PORTABILLING_TIMEZONE="Europe/Prague")
    assert found["blocks"]["status"] == "ok"
    assert "only while its note carries the reconciler's marker" in found["blocks"]["detail"]
    assert "1 blocked here, 1 marked" in found["blocks"]["detail"]
    assert found["blocks.stale_marker"]["status"] == "warn"
    assert "ph46170x200" in found["blocks.stale_marker"]["detail"]
    assert found["extensions.account_id"]["status"] == "warn"
    assert "extension 100 is account 46170-100" in found["extensions.account_id"]["detail"]
    assert found["time_zone"]["detail"] == (
        "add-on dates are read in Europe/Prague: PORTABILLING_TIMEZONE=Europe/Prague"
    )
    assert found["login.expiry"]["detail"].startswith("told by expires_in")

    stub.show_blocked_by = True
    abc["accounts"][0]["blocked_by"] = "customer"
    stub.session_data["time_zone_name"] = "Asia/Tokyo"
    found = _doctor(stub)
    assert found["blocks"]["detail"].startswith("the server sends blocked_by")
    assert "Generic/get_session_data says Asia/Tokyo" in found["time_zone"]["detail"]
