"""The reconciler's v2 paths, end to end through the command line against the emulator: what a
client developer checks before pointing the tool at a real server."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator import EmulatorServer
from reconciler.model import Account
from reconciler.statefile import BillingState, load_state_file
from tests.cli_capture import CliResult, run_cli

REPO = Path(__file__).resolve().parent.parent
DEMO_STATE = REPO / "specs" / "demo-billing-state.yaml"
ABC_SPEC = REPO / "specs" / "customers" / "abc.yaml"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def demo() -> BillingState:
    return load_state_file(str(DEMO_STATE))


@pytest.fixture
def spec(tmp_path: Path) -> str:
    return str(shutil.copy(ABC_SPEC, tmp_path / "abc.yaml"))


@pytest.fixture
def server(demo: BillingState) -> Iterator[EmulatorServer]:
    with EmulatorServer(demo) as running:
        yield running


def cli(server: EmulatorServer, *argv: str, **env: str | None) -> CliResult:
    return run_cli(list(argv), {**server.env(), "RECONCILER_BACKEND": server.url,
                                "PORTABILLING_BLOCKING_ROLES": None, **env})  # fmt: skip


def accounts(server: EmulatorServer) -> dict[str, Account]:
    return {a.id: a for a in server.dump_state().accounts}


def test_apply_creates_the_extension_through_billing_and_converges(
    server: EmulatorServer, spec: str
) -> None:
    applied = cli(server, "apply", spec, "--auto-approve")
    assert applied.code == 0, applied.text
    writes = server.write_counts
    # Billing generates the extension's account; only the auto attendant is an add_account.
    assert writes["Customer/add_customer_extension"] == 1 and writes["Account/add_account"] == 1
    assert server.logins == 1 and server.unlinked_extensions() == []
    john = accounts(server)["ph46170x466"]
    assert john.name == "John Doe" and john.addons == ("Call recording",)
    assert cli(server, "plan", spec, "--detailed-exitcode").code == 0


def test_an_expired_addon_is_planned_again_and_reapplied(
    server: EmulatorServer, spec: str
) -> None:
    assert cli(server, "apply", spec, "--auto-approve").code == 0
    server.expire_addon("ph46170x100", "Call recording")
    planned = cli(server, "plan", spec, "--format", "json")
    assert planned.code == 0, planned.text
    changes = [(c["op"], c["account"]) for c in json.loads(planned.out)["customers"][0]["changes"]]
    assert changes == [("add_addon", "ph46170x100")]
    assert cli(server, "apply", spec, "--auto-approve").code == 0
    assert accounts(server)["ph46170x100"].addons == ("Call recording",)
    assert cli(server, "plan", spec, "--detailed-exitcode").code == 0


def test_a_run_renews_its_session_with_the_refresh_token(
    demo: BillingState, spec: str
) -> None:
    with EmulatorServer(demo, token_ttl_calls=3) as server:
        applied = cli(server, "apply", spec, "--auto-approve")
        assert applied.code == 0, applied.text
        assert server.logins == 1 and server.refreshes >= 3


def test_a_read_only_site_plans_but_applies_nothing(demo: BillingState, spec: str) -> None:
    with EmulatorServer(demo, read_only=True) as server:
        assert cli(server, "plan", spec, "--detailed-exitcode").code == 2
        applied = cli(server, "apply", spec, "--auto-approve")
        assert applied.code == 1
        assert "read-only" in applied.err
        assert sum(server.write_counts.values()) == 1  # the first refused write, and no other
        assert server.dump_state() == demo


def test_a_wrong_password_is_tried_once_and_a_lockout_is_named(
    server: EmulatorServer, spec: str
) -> None:
    refused = cli(server, "plan", spec, PORTABILLING_PASSWORD="wrong")
    assert refused.code == 1 and "PORTABILLING_PASSWORD" in refused.err
    assert server.logins == 1 and "wrong" not in refused.text
    for _ in range(2):
        cli(server, "plan", spec, PORTABILLING_PASSWORD="wrong")
    locked = cli(server, "plan", spec)
    assert locked.code == 1 and "locked" in locked.err
    assert server.logins == 4
    server.reset_lockout()
    assert cli(server, "plan", spec).code == 0


def test_blocking_needs_the_role_setting_once_the_first_version_field_is_gone(
    demo: BillingState, tmp_path: Path
) -> None:
    blocked = tmp_path / "block.yaml"
    blocked.write_text(
        ABC_SPEC.read_text().replace("    dids: [\"12094555950\"]\n",
                                     "    dids: [\"12094555950\"]\n    blocked: true\n", 1)
    )  # fmt: skip
    with EmulatorServer(demo, legacy_blocking_field=False) as server:
        refused = cli(server, "plan", str(blocked), "--format", "json")
        assert refused.code == 1
        errors = json.loads(refused.out)["customers"][0]["errors"]
        assert [e["code"] for e in errors] == ["block_not_permitted"]
        assert "PORTABILLING_BLOCKING_ROLES" in errors[0]["message"]
        assert "i_role is 2" in errors[0]["message"]
        wrong_role = cli(server, "plan", str(blocked), "--format", "json",
                         PORTABILLING_BLOCKING_ROLES="7")  # fmt: skip
        message = json.loads(wrong_role.out)["customers"][0]["errors"][0]["message"]
        assert "i_role 2) is not in PORTABILLING_BLOCKING_ROLES" in message
        applied = cli(server, "apply", str(blocked), "--auto-approve",
                      PORTABILLING_BLOCKING_ROLES="2")  # fmt: skip
        assert applied.code == 0, applied.text
        assert accounts(server)["ph46170x100"].blocked_by == "customer"
