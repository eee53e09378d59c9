"""Repeated applies against a failing PortaBilling converge to the spec, and never duplicate.

The emulator fails a large share of writes in every way it knows (a fault, 502, 503, a timeout,
a dropped connection), before or after making the change. The oracle is the embedded backend:
the same specs applied to the same state there give the state PortaBilling must end in.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from reconciler.backends.sqlite import SqliteBackend
from reconciler.changes import OP_ORDER
from reconciler.emulator import EmulatorServer, FaultConfig
from reconciler.emulator.faults import AFTER, BEFORE, KINDS
from reconciler.emulator.testing import state_from_yaml, write_spec
from reconciler.statefile import BillingState
from tests.cli_capture import CliResult, run_cli

MAX_RUNS = 30

STATE = """
products:
  - {id: 1, name: Cloud PBX service, type: main}
  - {id: 2, name: Auto attendant, type: main}
  - {id: 3, name: Call recording, type: addon}
  - {id: 4, name: Voicemail to email, type: addon}
  - {id: 5, name: Basic extension, type: main}
customers:
  - id: 46170
    name: ABC
    self_care: {block_extensions: true}
    agreement:
      - {product: Auto attendant, quantity: 2}
      - {product: Basic extension, quantity: 0}
      - {product: Call recording, quantity: 0}
      - {product: Cloud PBX service, quantity: 0}
      - {product: Voicemail to email, quantity: 0}
    dids: [%(abc_dids)s]
  - id: 51234
    name: Northwind Dental
    self_care: {block_extensions: false}
    agreement:
      - {product: Basic extension, quantity: 10}
      - {product: Voicemail to email, quantity: 0}
    dids: ["14155550101", "14155550102", "14155550103"]
accounts:
  - {id: ph46170x100, customer: 46170, name: Reception, product: Cloud PBX service,
     addons: [Call recording], dids: ["12094555950"]}
  - {id: ph46170x101, customer: 46170, name: Sales, product: Cloud PBX service,
     addons: [], dids: ["12094555951"]}
  - {id: ph46170x102, customer: 46170, name: Support, product: Basic extension,
     addons: [Voicemail to email], dids: [], blocked_by: customer}
  - {id: ph46170x103, customer: 46170, name: Old, product: Cloud PBX service,
     addons: [], dids: ["12094555952"]}
  - {id: ph46170x104, customer: 46170, name: Temp, product: Basic extension, addons: [], dids: []}
  - {id: ph46170x105, customer: 46170, name: Admin, product: Cloud PBX service,
     addons: [], dids: [], blocked_by: admin}
%(steady)s
  - {id: ph46170aa1, customer: 46170, name: Main menu, product: Auto attendant,
     addons: [], dids: ["12094555948"]}
  - {id: trunk-1, customer: 46170, name: Trunk, product: Cloud PBX service,
     addons: [], dids: ["12094555959"]}
  - {id: ph51234x201, customer: 51234, name: Dr. Ruiz, product: Basic extension,
     addons: [], dids: ["14155550101"]}
"""

STEADY = range(106, 118)  # accounts the spec keeps as they are (they keep the plan safe)


def billing_state(folder: str) -> BillingState:
    dids = ", ".join(f'"120945559{n:02d}"' for n in range(40, 60))
    steady = "\n".join(
        f"  - {{id: ph46170x{n}, customer: 46170, name: Desk {n}, product: Cloud PBX service,"
        " addons: [], dids: []}"
        for n in STEADY
    )
    return state_from_yaml(STATE % {"abc_dids": dids, "steady": steady}, folder)


def ext(
    number: str,
    name: str,
    product: str,
    addons: list[str] | None = None,
    dids: list[str] | None = None,
    **more: Any,
) -> dict[str, Any]:
    return {
        "extension": number,
        "name": name,
        "product": product,
        "addons": addons or [],
        "dids": dids or [],
        **more,
    }


ABC_SPEC = {
    "version": 1,
    "customer": {"id": 46170, "name": "ABC"},
    "prune": True,  # ph46170x103 and ph46170x104 are terminated
    "extensions": [
        ext(
            "100",
            "Front desk",
            "Cloud PBX service",
            ["Call recording", "Voicemail to email"],
            ["12094555953"],
        ),
        ext("101", "Sales", "Basic extension", ["Call recording"], ["12094555951", "12094555954"]),
        ext("102", "Support", "Basic extension", [], [], blocked=False),
        ext("105", "Admin", "Cloud PBX service"),
        ext("106", "Desk 106", "Cloud PBX service", blocked=True),
        *[ext(str(n), f"Desk {n}", "Cloud PBX service") for n in STEADY if n != 106],
        ext(
            "120",
            "New hire",
            "Cloud PBX service",
            ["Call recording"],
            ["12094555950", "12094555955"],
        ),
        ext("121", "Night shift", "Cloud PBX service", [], ["12094555956"], blocked=True),
        ext("0122", "Zoë O'Brien", "Basic extension", ["Voicemail to email"], ["12094555952"]),
    ],
    "auto_attendants": [
        {
            "number": 1,
            "name": "Main menu 2",
            "product": "Auto attendant",
            "dids": ["12094555948", "12094555957"],
        },
        {"number": 2, "name": "After hours", "product": "Auto attendant", "dids": ["12094555949"]},
    ],
}

NORTHWIND_SPEC = {
    "version": 1,
    "customer": {"id": 51234, "name": "Northwind Dental"},
    "extensions": [
        ext(
            "201",
            "Dr. Ruiz",
            "Basic extension",
            ["Voicemail to email"],
            ["14155550101", "14155550102"],
        ),
        ext("202", "Hygienist", "Basic extension", [], ["14155550103"]),
    ],
}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def specs(tmp_path: Path) -> str:
    folder = str(tmp_path / "specs")
    write_spec(folder, "abc.yaml", ABC_SPEC)
    write_spec(folder, "northwind.yaml", NORTHWIND_SPEC)
    return folder


@pytest.fixture
def start(tmp_path: Path) -> BillingState:
    return billing_state(str(tmp_path))


@pytest.fixture
def expected(start: BillingState, specs: str, tmp_path: Path) -> BillingState:
    """The oracle: the same specs applied by the embedded (transactional) backend."""
    url = f"sqlite:///{tmp_path / 'oracle.db'}"
    SqliteBackend(url, create=True).load_state(start)
    planned = run_cli(["--backend", url, "plan", specs, "--format", "json"])
    ops = {
        c["op"] for customer in json.loads(planned.out)["customers"] for c in customer["changes"]
    }
    assert ops == set(OP_ORDER), "the story should touch every kind of change"
    applied = run_cli(["--backend", url, "apply", specs, "--auto-approve"])
    assert applied.code == 0, applied.text
    assert "customer 46170: applied, 24 change(s)" in applied.out
    return SqliteBackend(url).dump_state()


def check_invariants(server: EmulatorServer) -> None:
    assert server.invariant_problems() == []
    state = server.dump_state()
    ids = Counter(a.id for a in state.accounts)
    assert [i for i, n in ids.items() if n > 1] == [], "duplicate accounts"
    holders = Counter(did for a in state.accounts for did in a.dids)
    assert [d for d, n in holders.items() if n > 1] == [], "a DID on two accounts"


STOPPED = re.compile(
    r"customer (\d+): failed: .*; (\d+) of (\d+) change\(s\) were made before it stopped:$"
)


APPLIED = re.compile(r"customer (\d+): applied, (\d+) change\(s\)$")


def stop_report(result: CliResult) -> int:
    """The changes a failed apply says it made: the customers applied in full, plus, for each
    customer that stopped midway, how many of its changes were made, with exactly that many
    `done:` lines listed under it."""
    reported = sum(int(m.group(2)) for m in map(APPLIED.match, result.out.splitlines()) if m)
    err = result.err
    expected_done = 0
    for line in err.splitlines():
        if line.startswith("    done: "):
            assert expected_done > 0, f"a done: line under no customer that stopped:\n{err}"
            expected_done -= 1
            continue
        assert expected_done == 0, f"fewer done: lines than the count says:\n{err}"
        stopped = STOPPED.match(line)
        if stopped:
            made, planned = int(stopped.group(2)), int(stopped.group(3))
            assert 0 < made <= planned, line
            reported += made
            expected_done = made
    assert expected_done == 0, f"fewer done: lines than the count says:\n{err}"
    return reported


def audited(env: dict[str, str]) -> int:
    history = run_cli(["history", "--format", "json"], env)
    assert history.code == 0, history.text
    return len(json.loads(history.out))


def converge(server: EmulatorServer, specs: str, env: dict[str, str]) -> list[CliResult]:
    runs = []
    for _ in range(MAX_RUNS):
        before = audited(env)
        result = run_cli(["apply", specs, "--auto-approve"], env)
        runs.append(result)
        assert "internal error" not in result.err and "Traceback" not in result.text, result.text
        assert result.code in (0, 1), result.text
        check_invariants(server)
        if result.code == 0:
            return runs
        # A failed run says what it did before it stopped, and that is what the audit log got.
        assert stop_report(result) == audited(env) - before, result.text
    raise AssertionError(f"no convergence after {MAX_RUNS} applies:\n{runs[-1].text}")


def assert_converged(
    server: EmulatorServer, specs: str, env: dict[str, str], expected: BillingState
) -> None:
    plan = run_cli(["plan", specs, "--detailed-exitcode"], env)
    assert plan.code == 0, plan.text
    assert server.dump_state() == expected
    assert server.unlinked_extensions() == []
    history = json.loads(run_cli(["history", "--format", "json"], env).out)
    recorded = Counter(json.dumps(e["change"], sort_keys=True) for e in history)
    assert [c for c, n in recorded.items() if n > 1] == [], "a change recorded (made) twice"


def env_for(server: EmulatorServer) -> dict[str, str]:
    return {
        **server.env(),
        "RECONCILER_BACKEND": server.url,
        "PORTABILLING_READ_TIMEOUT": "0.25",  # the emulator's "timeout" holds answers 0.5 s
        "PORTABILLING_CONNECT_TIMEOUT": "1",
    }


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_applies_converge_when_half_the_writes_fail(
    seed: int, start: BillingState, specs: str, expected: BillingState
) -> None:
    # 50% of writes fail, 10% in each of the five ways, half of them after the change is made.
    faults = FaultConfig(
        rate=0.5, kinds=KINDS, phases=(BEFORE, AFTER), scope="writes", seed=seed, timeout_s=0.5
    )
    with EmulatorServer(start, faults=faults, page_cap=7) as server:
        env = env_for(server)
        runs = converge(server, specs, env)
        injected = server.injected
        server.set_faults(FaultConfig())
        assert_converged(server, specs, env, expected)
    assert len(runs) > 1, "the faults should have stopped at least one apply"
    assert {kind for kind, _ in injected} == set(KINDS)
    assert {phase for _, phase in injected} == {BEFORE, AFTER}


def test_applies_converge_when_reads_fail_too_and_sessions_expire(
    start: BillingState, specs: str, expected: BillingState
) -> None:
    # A fault on a read is an answer, not a transient failure: reads fail only in transient ways.
    faults = FaultConfig(
        rate=0.2, kinds=("502", "503", "timeout", "drop"), scope="both", seed=7, timeout_s=0.5
    )
    with EmulatorServer(start, faults=faults, page_cap=5, token_ttl_calls=9) as server:
        env = env_for(server)
        converge(server, specs, env)
        server.set_faults(FaultConfig())
        assert_converged(server, specs, env, expected)
        # Tokens expire every 9 calls: sessions are renewed by refreshing, not by logging in
        # each time (a login comes only when a refresh's answer was lost to an injected failure).
        counts = server.call_counts
        assert counts["Session/refresh_access_token"] > 3
        assert counts["Session/login"] < counts["Session/refresh_access_token"]


def test_a_run_that_stops_midway_reports_exactly_what_it_did(
    start: BillingState, specs: str
) -> None:
    # Fail the 5th write for good: the first four are reported done, in order, and audited.
    with EmulatorServer(start) as server:
        env = env_for(server)
        server.set_faults(
            FaultConfig(
                rate=1.0,
                kinds=("fault",),
                phases=(BEFORE,),
                methods=("Account/update_account",),
                limit=10,
            )
        )
        result = run_cli(["apply", str(Path(specs) / "abc.yaml"), "--auto-approve"], env)
        assert result.code == 1
        assert "injected fault" in result.err
        done = [
            line.strip()[len("done: ") :]
            for line in result.err.splitlines()
            if line.strip().startswith("done:")
        ]
        history = json.loads(run_cli(["history", "--format", "json"], env).out)
        assert len(done) == len(history) > 0
        assert all(
            e["op"] in ("remove_alias", "remove_addon", "terminate_account") for e in history
        )
