"""Wire contract v3 end to end: the real command line against the emulator's plain v3 defaults
and against each variant that would have broken a v2 client."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
import pytest

from reconciler.backends.portabilling.backend import PortaBillingBackend
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


def converges(server: EmulatorServer, specs: str) -> None:
    applied = cli(server, "apply", specs, "--auto-approve")
    assert applied.code == 0, applied
    again = cli(server, "plan", specs, "--detailed-exitcode")
    assert again.code == 0, again


def test_the_demo_converges_against_plain_v3(state: BillingState, specs: str) -> None:
    with EmulatorServer(state, wire="v3") as server:
        converges(server, specs)
        assert server.call_counts["Session/login"] == 2  # one per run


@pytest.mark.parametrize("tokens", ["expires_at", "jwt", "both", "expires_in"])
def test_a_refresh_without_refresh_token_over_three_lifetimes_logs_in_once(
    state: BillingState, tokens: str
) -> None:
    with EmulatorServer(
        state, wire="v3", tokens=tokens, refresh_without_token=True, token_ttl_seconds=2
    ) as server:
        backend = PortaBillingBackend(server.url, env=server.env(), parallelism=1)
        try:
            deadline = time.monotonic() + 7  # more than three lifetimes of 2 s
            while time.monotonic() < deadline:
                assert backend.read_customer(46170, backend.catalogue()) is not None
                time.sleep(0.2)
        finally:
            backend.close()
        assert server.call_counts["Session/login"] == 1
        assert server.call_counts["Session/refresh_access_token"] >= 3


@pytest.mark.parametrize(
    "shape", ["agreement_info", "customer_agreement_info", "agreement_condition_list"]
)
def test_each_agreement_shape_plans(state: BillingState, specs: str, shape: str) -> None:
    with EmulatorServer(state, wire="v3", agreement_shape=shape) as server:
        converges(server, specs)


def test_an_unknown_agreement_shape_is_one_clear_error(state: BillingState, specs: str) -> None:
    with EmulatorServer(state, wire="v3", agreement_shape="unknown") as server:
        plan = cli(server, "plan", specs)
        assert plan.code == 1
        assert "keys seen: agreement" in plan.err
        assert "Traceback" not in plan.err


def test_add_alias_answering_nothing_still_converges_and_is_audited(
    state: BillingState, specs: str, tmp_path: Path
) -> None:
    with EmulatorServer(state, wire="v3", add_alias_answer="empty") as server:
        converges(server, specs)
        history = cli(server, "history", "--format", "json")
        assert "add_alias" in history.out


@pytest.mark.parametrize("status", ["O", "I"])
def test_another_account_id_format_and_inactive_new_accounts_converge(
    state: BillingState, specs: str, status: str
) -> None:
    with EmulatorServer(
        state, wire="v3", account_id_format="{i_customer}-ext-{id}", new_account_status=status
    ) as server:
        converges(server, specs)
        ids = [a.id for a in server.dump_state().accounts]
        assert "46170-ext-466" in ids and "ph46170x466" not in ids


def test_a_server_that_releases_dids_by_default_keeps_them_in_the_pool(
    specs: str, tmp_path: Path
) -> None:
    # Contoso's Dispatch holds a DID its spec does not list, and Warehouse, which the spec prunes,
    # holds one too (removed before the account is terminated).
    text = DEMO_STATE.read_text()
    text = text.replace('dids: ["442071234500"]', 'dids: ["442071234500", "442071234501"]', 1)
    text = text.replace('"442071234502"]', '"442071234502", "442071234503"]', 1)
    text = text.replace(
        "    name: Warehouse\n    product: Cloud PBX service\n    addons: []\n    dids: []",
        '    name: Warehouse\n    product: Cloud PBX service\n    addons: []\n    dids: ["442071234503"]',
    )
    (tmp_path / "state.yaml").write_text(text)
    state = load_state_file(str(tmp_path / "state.yaml"))
    with EmulatorServer(state, wire="v3", release_dids=True) as server:
        pool = {c.id: set(c.dids) for c in server.dump_state().customers}
        converges(server, specs)
        assert server.write_counts.get("Account/terminate_account", 0) == 1
        assert server.write_counts.get("Account/delete_alias", 0) >= 1
        assert {c.id: set(c.dids) for c in server.dump_state().customers} == pool


def test_add_on_dates_are_read_in_the_servers_time_zone(state: BillingState) -> None:
    with EmulatorServer(state, wire="v3", time_zone="Pacific/Kiritimati") as server:
        doctor = cli(server, "doctor", "--customer", "46170")
        assert "time_zone: add-on dates are read in Pacific/Kiritimati" in doctor.out




def test_doctor_warns_when_nothing_in_billing_can_tell_the_reconcilers_blocks(
    state: BillingState,
) -> None:
    # Plain v3 shows no blocked_by, and the emulator keeps no note: the reconciler's own blocks
    # would read as the administrator's, and doctor says so before any apply.
    with EmulatorServer(state, wire="v3") as server:
        doctor = cli(server, "doctor", "--customer", "46170")
        assert "warn  blocks: no blocked_by and no note in the account list" in doctor.out
