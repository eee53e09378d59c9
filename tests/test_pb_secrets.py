"""PortaBilling credentials never leak: not to the screen, the saved plan, the audit log
or a crash log."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorServer, FaultConfig
from reconciler.emulator.store import Fault
from reconciler.statefile import BillingState, load_state_file
from tests.cli_capture import CliResult, run_cli

REPO = Path(__file__).resolve().parent.parent
DEMO_STATE = REPO / "specs" / "demo-billing-state.yaml"

PASSWORD = "Sentinel-Pa55w0rd-7f3a91"
TOKEN = "Sentinel-T0ken-c4d2e8"
SECRETS = (PASSWORD, TOKEN)


@pytest.fixture(autouse=True)
def _in_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)  # whatever the client logs is checked too


@pytest.fixture
def state() -> BillingState:
    return load_state_file(str(DEMO_STATE))


@pytest.fixture
def specs(tmp_path: Path) -> str:
    shutil.copytree(REPO / "specs" / "customers", tmp_path / "specs")
    return str(tmp_path / "specs")


@pytest.fixture
def by_password(state: BillingState) -> Iterator[EmulatorServer]:
    with EmulatorServer(state, login="api", password=PASSWORD) as server:
        yield server


@pytest.fixture
def by_token(state: BillingState) -> Iterator[EmulatorServer]:
    with EmulatorServer(state, login="api", password=None, token=TOKEN) as server:
        yield server


def env(url: str, **credentials: str) -> dict[str, str | None]:
    return {
        "RECONCILER_BACKEND": url,
        "PORTABILLING_LOGIN": "api",
        "PORTABILLING_PASSWORD": credentials.get("password"),
        "PORTABILLING_TOKEN": credentials.get("token"),
        "PORTABILLING_READ_TIMEOUT": "0.3",
    }


def assert_clean(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, *results: CliResult,
    also: tuple[str, ...] = (),
) -> None:
    """No secret (nor any of ``also``) in any output or log record, nor in any file the runs left
    (plans, audit log, crash logs, databases)."""
    secrets = SECRETS + also
    for text in [r.text for r in results] + [caplog.text]:
        for secret in secrets:
            assert secret not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"{path} holds {secret!r}"


def test_a_full_run_with_a_password_leaks_nothing(
    by_password: EmulatorServer, specs: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_env = env(by_password.url, password=PASSWORD)
    results = [
        run_cli(["plan", specs, "--out", "plan.json", "--format", "json"], run_env),
        run_cli(["apply", "--plan", "plan.json"], run_env),
        run_cli(["plan", specs, "--format", "markdown"], run_env),
        run_cli(["history", "--format", "json"], run_env),
        run_cli(["export", "--customer", "46170"], run_env),
    ]
    assert [r.code for r in results] == [0, 0, 0, 0, 0], [r.text for r in results]
    assert (tmp_path / "plan.json").exists()
    assert list((tmp_path / ".reconciler").glob("audit-*.jsonl"))
    assert_clean(tmp_path, caplog, *results)


def test_a_full_run_with_a_token_leaks_nothing(
    by_token: EmulatorServer, specs: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_env = env(by_token.url, token=TOKEN)
    results = [
        run_cli(["plan", specs, "--out", "plan.json"], run_env),
        run_cli(["apply", specs, "--auto-approve"], run_env),
        run_cli(["history"], run_env),
    ]
    assert [r.code for r in results] == [0, 0, 0], [r.text for r in results]
    assert_clean(tmp_path, caplog, *results)


def test_a_wrong_password_is_reported_without_it(
    by_password: EmulatorServer, specs: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = PASSWORD[::-1]
    result = run_cli(["plan", specs], env(by_password.url, password=wrong))
    assert result.code == 1
    assert "PortaBilling refused the login" in result.err
    assert "PORTABILLING_PASSWORD" in result.err
    assert wrong not in result.text
    # The wrong password is a secret too: a near miss of the real one.
    token_result = run_cli(["plan", specs], env(by_password.url, token=TOKEN))
    assert token_result.code == 1
    assert_clean(tmp_path, caplog, result, token_result, also=(wrong,))


def test_a_server_that_echoes_the_password_in_a_fault_is_scrubbed(
    by_password: EmulatorServer, specs: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def echoing_login(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 500, {
            "faultcode": "Server.Session.auth_failed",
            "faultstring": f"bad credentials {params.get('password')}",
        }

    def echoing_fault(params: dict[str, Any]) -> dict[str, Any]:
        raise Fault("Server.Customer.internal", f"session of api/{PASSWORD} cannot read customer")

    login = by_password._login
    by_password._login = echoing_login  # type: ignore[method-assign]
    result = run_cli(["plan", specs], env(by_password.url, password=PASSWORD))
    assert result.code == 1 and "PortaBilling refused the login" in result.err
    by_password._login = login  # type: ignore[method-assign]
    by_password.store.methods["Customer/get_customer_info"] = echoing_fault
    echoed = run_cli(["plan", specs], env(by_password.url, password=PASSWORD))
    assert echoed.code == 1 and "session of api/*** cannot read customer" in echoed.err
    assert_clean(tmp_path, caplog, result, echoed)


def test_a_server_that_is_down_is_reported_without_credentials(
    specs: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_cli(
        ["plan", specs], env(f"portabilling+http://127.0.0.1:{port}", password=PASSWORD)
    )
    assert result.code == 1
    assert "connection refused" in result.err
    assert_clean(tmp_path, caplog, result)


@pytest.mark.parametrize("kind", ["fault", "drop", "503"])
def test_a_failure_mid_apply_is_reported_without_credentials(
    kind: str,
    by_password: EmulatorServer,
    specs: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    by_password.set_faults(FaultConfig(rate=1.0, kinds=(kind,), phases=("before",), seed=3))
    result = run_cli(["apply", specs, "--auto-approve"], env(by_password.url, password=PASSWORD))
    assert result.code == 1
    assert "customer 46170: failed" in result.err
    assert_clean(tmp_path, caplog, result)


def test_a_crash_log_holds_no_credentials(
    by_password: EmulatorServer, specs: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A bug nobody planned for, raised while the credentials are in use.
    from reconciler.backends.portabilling import backend as portabilling

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug")

    saved = portabilling.fetch_customer
    portabilling.fetch_customer = broken  # type: ignore[assignment]
    try:
        result = run_cli(["plan", specs], env(by_password.url, password=PASSWORD))
    finally:
        portabilling.fetch_customer = saved
    assert result.code == 1
    assert "internal error" in result.err
    logs = list((tmp_path / ".reconciler" / "logs").glob("crash-*.log"))
    assert logs and "Traceback" in logs[0].read_text()
    assert_clean(tmp_path, caplog, result)


def test_the_real_command_leaks_nothing_on_its_streams(
    by_password: EmulatorServer, specs: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("PORTABILLING_", "RECONCILER_"))
    }
    results = []
    for password, args in (
        (PASSWORD, ["apply", specs, "--auto-approve"]),
        (PASSWORD[:-1], ["plan", specs]),
    ):
        run_env = {
            **base,
            **{k: v for k, v in env(by_password.url, password=password).items() if v},
        }
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        results.append(CliResult(done.returncode, done.stdout, done.stderr))
    assert [r.code for r in results] == [0, 1], [r.text for r in results]
    assert PASSWORD[:-1] not in results[1].text
    assert_clean(tmp_path, caplog, *results)
