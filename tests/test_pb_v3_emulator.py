"""Wire contract v3 end to end: the real command line against the emulator's plain v3 defaults
and against each variant that would have broken a v2 client."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.backends.portabilling.backend import PortaBillingBackend
from reconciler.emulator import EmulatorServer
from reconciler.emulator.accounts import CUSTOMER_BLOCK_NOTE
from reconciler.model import Account
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
        '    name: Warehouse\n    product: Cloud PBX service\n    addons: []\n    dids: '
        '["442071234503"]',
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


# ---- who blocked, told by the note alone ---------------------------------------------------------


def dumped(server: EmulatorServer, account_id: str) -> Account:
    (found,) = [a for a in server.dump_state().accounts if a.id == account_id]
    return found


def note_of(server: EmulatorServer, account_id: str) -> str:
    with server.lock:
        answer = server.store.call("Account/get_account_info", {"id": account_id})
    return str(answer["account_info"]["note"])


def apply_from_a_fresh_runner(
    server: EmulatorServer, runner: Path, spec: str
) -> subprocess.CompletedProcess[str]:
    """`reconciler apply` in a process of its own, from a checkout of its own: nothing local (no
    audit log, no .reconciler folder) carried over from an earlier run, as on a new CI runner."""
    runner.mkdir()
    (runner / "spec.yaml").write_text(spec)
    env = {**os.environ, **server.env(), "PYTHONPATH": str(REPO)}
    for name in ("RECONCILER_AUDIT_LOG", "RECONCILER_BACKEND", "GITHUB_ACTIONS"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "--backend", server.url, "apply", "spec.yaml",
         "--auto-approve"],
        cwd=runner, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def abc_reception(blocked: bool) -> str:
    return (
        "version: 1\ncustomer: {id: 46170, name: ABC}\nextensions:\n"
        "  - {extension: '100', name: Reception, product: Cloud PBX service, "
        f"addons: [Call recording], blocked: {str(blocked).lower()}}}\n"
    )


def test_a_block_made_on_one_runner_is_undone_from_a_fresh_one_against_plain_v3(
    state: BillingState, tmp_path: Path
) -> None:
    with EmulatorServer(state, wire="v3") as server:
        assert not server.profile.blocked_by  # no answer says who blocked
        server.set_note("ph46170x100", "VIP: call before changing")

        first = apply_from_a_fresh_runner(server, tmp_path / "runner-1", abc_reception(True))
        assert first.returncode == 0, first.stdout + first.stderr
        assert dumped(server, "ph46170x100").blocked_by == "customer"
        # The marker went in beside the administrator's own text.
        assert note_of(server, "ph46170x100") == (
            f"VIP: call before changing\n{CUSTOMER_BLOCK_NOTE}"
        )

        second = apply_from_a_fresh_runner(server, tmp_path / "runner-2", abc_reception(False))
        assert second.returncode == 0, second.stdout + second.stderr
        assert "unblock" in second.stdout
        assert dumped(server, "ph46170x100").blocked_by is None
        assert note_of(server, "ph46170x100") == "VIP: call before changing"
        # Each runner kept its own audit log; the second knew nothing of the first's.
        assert list((tmp_path / "runner-1" / ".reconciler").glob("audit-*.jsonl"))
        assert list((tmp_path / "runner-2" / ".reconciler").glob("audit-*.jsonl"))


def test_an_auto_attendant_created_blocked_for_a_customer_with_no_accounts_is_marked(
    state: BillingState, tmp_path: Path
) -> None:
    # No account listed yet, so nothing shows whether this server keeps notes when the block is
    # made: the block must still end up marked, or no later run could undo it.
    state = dataclasses.replace(
        state, accounts=tuple(a for a in state.accounts if a.customer != 46170)
    )

    def main_menu(blocked: bool) -> str:
        return (
            "version: 1\ncustomer: {id: 46170, name: ABC}\nauto_attendants:\n"
            "  - {number: 1, name: Main menu, product: Auto attendant, "
            f"blocked: {str(blocked).lower()}}}\n"
        )

    with EmulatorServer(state, wire="v3") as server:
        first = apply_from_a_fresh_runner(server, tmp_path / "runner-1", main_menu(True))
        assert first.returncode == 0, first.stdout + first.stderr
        assert dumped(server, "ph46170aa1").blocked_by == "customer"
        second = apply_from_a_fresh_runner(server, tmp_path / "runner-2", main_menu(False))
        assert second.returncode == 0, second.stdout + second.stderr
        assert dumped(server, "ph46170aa1").blocked_by is None


def test_an_administrators_block_without_the_marker_is_never_undone(
    state: BillingState, tmp_path: Path
) -> None:
    # ph51234x202 is blocked_by: admin in the state file: served blocked, with no marker.
    with EmulatorServer(state, wire="v3") as server:
        server.set_note("ph51234x202", "fraud check")
        spec = (
            "version: 1\ncustomer: {id: 51234, name: Northwind Dental}\nextensions:\n"
            "  - {extension: '202', name: Front desk, product: Basic extension, "
            "addons: [Voicemail to email], blocked: false}\n"
        )
        before = dict(server.write_counts)
        result = apply_from_a_fresh_runner(server, tmp_path / "runner", spec)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "admin_blocked" in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert server.write_counts.get("Account/update_account", 0) == before.get(
            "Account/update_account", 0
        )
        assert dumped(server, "ph51234x202").blocked_by == "admin"
        assert note_of(server, "ph51234x202") == "fraud check"


def test_state_file_blocks_are_served_with_the_marker_only_for_the_customers(
    state: BillingState,
) -> None:
    ada = dataclasses.replace(
        next(a for a in state.accounts if a.id == "ph46170x100"), blocked_by="customer"
    )
    state = dataclasses.replace(
        state, accounts=tuple(ada if a.id == ada.id else a for a in state.accounts)
    )
    with EmulatorServer(state, wire="v3") as server:
        assert note_of(server, "ph46170x100") == CUSTOMER_BLOCK_NOTE
        assert note_of(server, "ph51234x202") == ""
        backend = PortaBillingBackend(server.url, env=server.env(), parallelism=1)
        try:
            read = {
                a.id: a.blocked_by
                for c in (46170, 51234)
                for a in (backend.read_customer(c, backend.catalogue()) or state).accounts
            }
        finally:
            backend.close()
        assert read["ph46170x100"] == "customer"
        assert read["ph51234x202"] == "admin"
        assert server.dump_state() == state  # and it dumps back unchanged


def test_doctor_reads_blocks_by_the_note_and_warns_when_the_server_hides_notes(
    state: BillingState,
) -> None:
    with EmulatorServer(state, wire="v3") as server:
        doctor = cli(server, "doctor", "--customer", "51234")
        assert "ok    blocks: no blocked_by: a block is the customer's" in doctor.out
        assert "(1 blocked here, 0 marked)" in doctor.out
    # A server that shows neither blocked_by nor notes: the reconciler's own blocks would read as
    # the administrator's, and doctor says so before any apply.
    with EmulatorServer(state, wire="v3", notes=False) as server:
        doctor = cli(server, "doctor", "--customer", "46170")
        assert "warn  blocks: no blocked_by and no note in the account list" in doctor.out
