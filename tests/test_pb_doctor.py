"""`reconciler doctor` against the emulator: what an operator sees on the first connection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorServer
from reconciler.statefile import BillingState, load_state_file
from tests.helpers import REPO, Result, run_cli

DEMO_STATE = REPO / "specs" / "demo-billing-state.yaml"
ENV = {"PORTABILLING_LOGIN": "api", "PORTABILLING_PASSWORD": "pw"}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def state() -> BillingState:
    return load_state_file(str(DEMO_STATE))


@pytest.fixture
def server(state: BillingState) -> Iterator[EmulatorServer]:
    with EmulatorServer(state, login="api", password="pw") as emulator:
        yield emulator


def doctor(server: EmulatorServer, *args: str, env: dict[str, str] | None = None) -> Result:
    return run_cli("--backend", server.url, "doctor", "--format", "json", *args, env=env or ENV)


def checks(result: Result) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result.json["checks"]}


def test_a_healthy_server_passes_every_check_and_nothing_is_written(server: EmulatorServer) -> None:
    result = doctor(server, "--customer", "46170")
    assert result.code == 0, result
    assert result.json["ok"] is True
    found = checks(result)
    assert found["login"]["status"] == "ok"
    assert found["operating_mode"]["detail"].startswith("normal")
    assert found["products"]["detail"] == "4 main, 2 add-on"
    assert found["plan_reads"]["status"] == "ok"
    for field in (
        "accounts.bill_status",
        "accounts.assigned_addons.addon_effective_from",
        "customer_info.i_role",
    ):
        assert found[field]["status"] == "ok", found[field]
    assert found["accounts.id"]["detail"] == "returned (e.g. 'ph46170x100')"
    assert all(c["status"] in ("ok", "warn", "fail") and c["detail"] for c in result.json["checks"])
    assert server.write_counts == {}
    assert server.call_counts["Session/login"] == 1
    assert "pw" not in result.out.replace("PORTABILLING_PASSWORD", "")


def test_text_output_is_one_line_per_check_and_a_summary(server: EmulatorServer) -> None:
    result = run_cli("--backend", server.url, "doctor", "--customer", "46170", env=ENV)
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].startswith("ok    backend: http://127.0.0.1:")
    assert lines[-1].startswith(f"{len(lines) - 1} check(s): 0 failed, ")
    assert all(line.split()[0] in ("ok", "warn", "fail") for line in lines[:-1])


def test_the_customer_comes_from_a_spec_or_else_from_billings_customer_list(
    server: EmulatorServer, tmp_path: Path
) -> None:
    spec = tmp_path / "northwind.yaml"
    spec.write_text("version: 1\ncustomer: {id: 51234, name: Northwind Dental}\n")
    from_spec = checks(doctor(server, str(spec)))
    assert from_spec["customer"]["detail"] == "customer 51234 found"
    listed = checks(doctor(server))
    assert listed["customer"]["status"] == "ok"
    assert server.call_counts["Customer/get_customer_list"] == 1


def test_a_read_only_site_is_a_warning_not_a_failure(state: BillingState) -> None:
    with EmulatorServer(state, login="api", password="pw", read_only="standalone_mode") as server:
        result = doctor(server, "--customer", "46170")
        assert result.code == 0, result
        mode = checks(result)["operating_mode"]
        assert mode["status"] == "warn"
        assert mode["detail"].startswith("standalone: the server accepts no writes")
        assert server.write_counts == {}


def test_an_agreement_answer_without_agreement_info_fails_clearly(server: EmulatorServer) -> None:
    server.store.methods["Customer/get_customer_agreement_info"] = lambda params: {
        "i_customer": 46170
    }
    result = doctor(server, "--customer", "46170")
    assert result.code == 1
    assert result.json["ok"] is False
    agreement = checks(result)["agreement"]
    assert agreement["status"] == "fail"
    assert (
        "answered without agreement_info, customer_agreement_info or a top-level "
        in agreement["detail"]
    )
    assert "(keys seen: i_customer)" in agreement["detail"]
    assert checks(result)["plan_reads"]["status"] == "fail"
    assert server.write_counts == {}


def test_a_wrong_password_fails_at_login_after_exactly_one_attempt(server: EmulatorServer) -> None:
    result = doctor(
        server, "--customer", "46170", env={**ENV, "PORTABILLING_PASSWORD": "Wr0ng-Secret"}
    )
    assert result.code == 1
    found = checks(result)
    assert found["login"]["status"] == "fail"
    assert "login failed for user api" in found["login"]["detail"]
    assert "Wr0ng-Secret" not in result.out + result.err
    assert list(found) == ["backend", "login"]
    assert server.call_counts == {"Session/login": 1}


def test_a_url_that_is_not_a_portabilling_api_is_a_failure_not_a_traceback(tmp_path: Path) -> None:
    from tests.pb_stub import Stub

    stub = Stub()
    stub.overrides.append(lambda m, p, n: (404, b"<html><body>Not Found</body></html>"))
    try:
        result = run_cli("--backend", stub.url, "doctor", "--format", "json", env=ENV)
    finally:
        stub.close()
    assert result.code == 1
    login = {c["name"]: c for c in json.loads(result.out)["checks"]}["login"]
    assert login["status"] == "fail"
    assert "is this the address of a PortaBilling server's JSON API?" in login["detail"]
    assert "Traceback" not in result.err


def test_doctor_on_the_sqlite_backend_says_what_it_checks() -> None:
    result = run_cli("--backend", "sqlite:///billing.db", "doctor")
    assert result.code == 1
    assert "doctor checks PortaBilling servers" in result.out


def test_a_server_that_cannot_be_reached_fails_at_login() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before doctor connects: nothing listens
    result = run_cli(
        "--backend",
        f"portabilling+http://127.0.0.1:{port}",
        "doctor",
        "--format",
        "json",
        env={**ENV, "PORTABILLING_CONNECT_TIMEOUT": "1"},
    )
    assert result.code == 1
    login = checks(result)["login"]
    assert login["status"] == "fail"
    assert "connection refused" in login["detail"]
