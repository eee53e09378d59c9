"""Wire contract v2 end to end: the real command line against the v2 emulator."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator import EmulatorServer
from reconciler.statefile import BillingState, load_state_file
from tests.helpers import REPO, Result, run_cli

DEMO_STATE = REPO / "specs" / "demo-billing-state.yaml"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def state() -> BillingState:
    return load_state_file(str(DEMO_STATE))


@pytest.fixture
def specs(tmp_path: Path) -> str:
    shutil.copytree(REPO / "specs" / "customers", tmp_path / "specs")
    return str(tmp_path / "specs")


def cli(server: EmulatorServer, *args: str, **env: str) -> Result:
    return run_cli("--backend", server.url, *args, env={**server.env(), **env})


def test_a_whole_apply_during_which_the_token_expires_many_times_logs_in_once(
    state: BillingState, specs: str
) -> None:
    with EmulatorServer(state, login="api", password="pw", token_ttl_calls=4) as server:
        applied = cli(server, "apply", specs, "--auto-approve")
        assert applied.code == 0, applied
        assert server.call_counts["Session/login"] == 1
        assert server.call_counts["Session/refresh_access_token"] >= 5
        again = cli(server, "plan", specs, "--detailed-exitcode")
        assert again.code == 0, again


def test_a_wrong_password_makes_exactly_one_login_call(state: BillingState, specs: str) -> None:
    with EmulatorServer(state, login="api", password="pw") as server:
        result = cli(server, "plan", specs, PORTABILLING_PASSWORD="not-the-password")
        assert result.code == 1
        assert "login failed for user api at 127.0.0.1" in result.err
        assert "not-the-password" not in result.out + result.err
        assert server.call_counts == {"Session/login": 1}


def test_repeated_wrong_passwords_reach_the_lockout_which_is_named_plainly(
    state: BillingState, specs: str
) -> None:
    with EmulatorServer(state, login="api", password="pw") as server:
        for _ in range(3):
            assert cli(server, "plan", specs, PORTABILLING_PASSWORD="wrong").code == 1
        locked = cli(server, "plan", specs)  # even the right password, now
        assert locked.code == 1
        assert "has locked the login out after repeated failed logins" in locked.err
        assert server.call_counts["Session/login"] == 4


def test_a_read_only_site_plans_but_apply_makes_at_most_one_write_attempt(
    state: BillingState, specs: str
) -> None:
    with EmulatorServer(state, login="api", password="pw", read_only="secondary_site") as server:
        planned = cli(server, "plan", specs)
        assert planned.code == 0, planned
        applied = cli(server, "apply", specs, "--auto-approve")
        assert applied.code == 1
        assert sum(server.write_counts.values()) <= 1
        failed = [line for line in applied.err.splitlines() if ": failed: " in line]
        assert len(failed) == 3  # every customer with changes says why, none was written
        assert all(
            "is read-only (disaster-recovery site or maintenance)" in line for line in failed
        )
        assert server.dump_state() == state
        assert "Traceback" not in applied.err


def test_an_expired_add_on_counts_for_nothing_and_is_added_again(
    state: BillingState, specs: str
) -> None:
    with EmulatorServer(state, login="api", password="pw") as server:
        assert cli(server, "apply", specs, "--auto-approve").code == 0
        server.expire_addon("ph46170x100", "Call recording")
        plan = cli(server, "plan", specs, "--format", "json")
        changes = [c for customer in plan.json["customers"] for c in customer["changes"]]
        assert {"op": "add_addon", "account": "ph46170x100", "product": "Call recording"} in changes
        assert cli(server, "apply", specs, "--auto-approve").code == 0
        assert cli(server, "plan", specs, "--detailed-exitcode").code == 0


def test_blocking_permission_follows_the_role_setting_when_the_first_version_field_is_gone(
    state: BillingState, specs: str
) -> None:
    with EmulatorServer(state, login="api", password="pw", legacy_blocking_field=False) as server:
        refused = cli(server, "plan", specs, "--format", "json")
        codes = [e["code"] for c in refused.json["customers"] for e in c["errors"]]
        assert "block_not_permitted" in codes
        allowed = cli(server, "apply", specs, "--auto-approve", PORTABILLING_BLOCKING_ROLES="2")
        assert allowed.code == 0, allowed
        night = [a for a in server.dump_state().accounts if a.id == "ph60001x12"]
        assert night and night[0].blocked_by == "customer"


def test_alias_rows_listed_by_the_server_are_never_accounts(
    state: BillingState, specs: str
) -> None:
    from reconciler.backends.portabilling.backend import PortaBillingBackend

    with EmulatorServer(state, login="api", password="pw") as server:
        assert cli(server, "apply", specs, "--auto-approve").code == 0
        backend = PortaBillingBackend(server.url, env=server.env())
        read = backend.read_customer(46170, backend.catalogue())
        backend.close()
        assert read is not None
        assert {a.id: a.dids for a in read.accounts} == {
            "ph46170aa1": ("12094555948",),
            "ph46170x100": ("12094555950",),
            "ph46170x466": ("12094555949",),
        }


@pytest.fixture
def emulator(state: BillingState) -> Iterator[EmulatorServer]:
    with EmulatorServer(state, login="api", password="pw") as server:
        yield server


def test_applied_changes_are_audited_one_by_one_including_a_create(
    emulator: EmulatorServer, specs: str
) -> None:
    applied = cli(emulator, "apply", specs, "--auto-approve")
    assert applied.code == 0, applied
    history = cli(emulator, "history", "--format", "json").json
    creates = [e for e in history if e["op"] == "create_account"]
    assert {e["account"] for e in creates} >= {"ph46170x466", "ph46170aa1"}
    assert len(history) == len(
        [line for line in applied.out.splitlines() if line.strip().startswith(("+", "-", "~"))]
    )


@pytest.mark.parametrize(("extensions", "calls"), [(10, 5), (1000, 1 + 1 + 11 + 10 + 10)])
def test_api_calls_per_customer_for_planning_with_a_page_cap_of_100(
    extensions: int, calls: int
) -> None:
    from reconciler.backends.portabilling.backend import PortaBillingBackend
    from tests.test_pb_client import pbx_state

    with EmulatorServer(pbx_state(extensions), login="api", password="pw", page_cap=100) as server:
        backend = PortaBillingBackend(server.url, env=server.env())
        catalogue = backend.catalogue()
        server.reset_counts()
        read = backend.read_customer(46170, catalogue)
        backend.close()
        assert read is not None and len(read.accounts) == extensions
        assert server.calls == calls, server.call_counts
