"""Four processes apply overlapping specs to one SQLite database at the same time.

Twelve customers; each process applies six of them, so every customer is wanted by two processes,
with different names on some extensions (conflicting wishes). Each process tags its audit rows
with its own commit (``GITHUB_SHA=proc-N``), so the audit log tells who wrote what. Checks:

- every process exits 0 or 1 without a traceback; a process that exits 1 says why: its plan went
  stale or the database lock was held too long;
- no interleaving on a customer: in the audit log, each process's rows for a customer form one
  unbroken run with one plan fingerprint, and the first run carries the fingerprint of the
  initial state (a later run was planned on, or re-checked against, the state the first left);
- the database invariants hold, and a final apply of the reference specs converges (a plan then
  shows no changes) with billing equal to the specs.

Round 0 holds the database's write lock while the four start, so all four plan against the same
state and then race; one process there has a short --lock-timeout and must fail cleanly. Later
rounds (RECONCILER_CONCURRENCY_ROUNDS, default 1) start the four with random staggering.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli
from tests.reliability_support import (
    CONCURRENCY_ROUNDS,
    assert_clean_failure,
    audit_rows,
    check_invariants,
    clean_env,
    dump_db,
    generate_world,
    reconciler_argv,
    record_figure,
    spec_yaml,
    state_matches_specs,
    usage_of,
)

PROCESSES = 4
CUSTOMERS = 12
SETS = [range(6), range(3, 9), range(6, 12), [0, 1, 2, 9, 10, 11]]


@dataclass
class Arena:
    folder: Path
    template: Path
    reference: Path  # the specs the final apply converges to
    spec_docs: dict[int, dict[str, Any]]
    folders: list[Path]  # one spec folder per process
    initial_fingerprints: dict[int, str]
    baseline_usage: dict[tuple[int, str], int]


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Arena:
    folder = tmp_path_factory.mktemp("concurrency")
    world = generate_world(seed=4242, customers=CUSTOMERS, extensions=15)
    world.write_state(folder / "state.yaml")
    world.write_specs(folder / "reference")
    ids = world.customer_ids()
    folders = []
    for process, members in enumerate(SETS):
        own = folder / f"proc-{process}"
        own.mkdir()
        for index in members:
            spec = json.loads(json.dumps(world.specs[ids[index]]))
            for entry in spec["extensions"][:3]:
                entry["name"] = f"{entry['name']} (p{process})"  # a wish of this process only
            (own / f"customer-{ids[index]}.yaml").write_text(spec_yaml(spec))
        folders.append(own)
    template = folder / "template.db"
    url = f"sqlite:///{template}"
    assert run_cli("--backend", url, "state", "load", str(folder / "state.yaml")).code == 0
    plan = run_cli("--backend", url, "plan", str(folder / "reference"), "--format", "json")
    assert plan.code == 0, plan
    fingerprints = {c["customer"]: c["fingerprint"] for c in plan.json["customers"]}
    return Arena(folder, template, folder / "reference", world.specs, folders, fingerprints,
                 usage_of(template))


def _start(arena: Arena, db: Path, process: int, *,
           lock_timeout: float | None) -> subprocess.Popen[str]:
    options = ["--lock-timeout", str(lock_timeout)] if lock_timeout is not None else []
    argv = reconciler_argv("--backend", f"sqlite:///{db}", *options, "apply",
                           str(arena.folders[process]), "--auto-approve")
    return subprocess.Popen(argv, cwd=arena.folder,
                            env=clean_env({"GITHUB_SHA": f"proc-{process}"}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def _race(arena: Arena, db: Path, round_no: int) -> list[Outcome]:
    rng = random.Random(round_no)
    barrier = round_no == 0
    holder = None
    if barrier:
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    procs = []
    try:
        for process in range(PROCESSES):
            short = barrier and process == PROCESSES - 1
            procs.append(_start(arena, db, process, lock_timeout=0.2 if short else None))
            if not barrier:
                time.sleep(rng.uniform(0, 0.3))
        if barrier:
            # long enough for all four to plan and queue on the lock, on a busy machine too
            time.sleep(6)
            assert all(p.poll() is None for p in procs[:-1]), "the applies should be waiting"
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        outcomes.append(Outcome(proc.returncode, out, err))
    return outcomes


def _check_outcomes(outcomes: list[Outcome]) -> None:
    for process, outcome in enumerate(outcomes):
        assert_clean_failure(outcome)
        if outcome.code == 1:
            reasons = [line for line in outcome.err.splitlines() if line.startswith("customer ")]
            assert reasons, f"process {process} exited 1 without saying why\n{outcome.err}"
            for line in reasons:
                assert "stale" in line or "lock" in line, (
                    f"process {process}: unexpected failure: {line}"
                )
                record_figure("concurrency: losers refused as stale" if "stale" in line
                              else "concurrency: losers refused on the lock timeout")
        applied = sum(1 for line in outcome.out.splitlines() if ": applied," in line)
        record_figure("concurrency: customer applies that won", applied)
        record_figure("concurrency: processes run")


def _check_no_interleaving(arena: Arena, db: Path) -> None:
    runs: dict[int, list[dict[str, Any]]] = {}
    for row in audit_rows(db):
        customer_runs = runs.setdefault(row["customer"], [])
        if customer_runs and customer_runs[-1]["git_commit"] == row["git_commit"]:
            customer_runs[-1]["fingerprints"].add(row["fingerprint"])
            customer_runs[-1]["rows"] += 1
        else:
            customer_runs.append({"git_commit": row["git_commit"],
                                  "fingerprints": {row["fingerprint"]}, "rows": 1})
    for customer, customer_runs in runs.items():
        writers = [r["git_commit"] for r in customer_runs]
        assert len(writers) == len(set(writers)), (
            f"customer {customer}: applies interleaved: {writers}"
        )
        for run in customer_runs:
            assert len(run["fingerprints"]) == 1, (
                f"customer {customer}: one apply, several fingerprints"
            )
        first = next(iter(customer_runs[0]["fingerprints"]))
        assert first == arena.initial_fingerprints[customer], (
            f"customer {customer}: first apply was not planned on the initial state"
        )
        later = [next(iter(r["fingerprints"])) for r in customer_runs[1:]]
        assert first not in later, (
            f"customer {customer}: a second apply used the initial fingerprint"
        )
        record_figure("concurrency: customers written by two processes, one after the other",
                      1 if len(customer_runs) > 1 else 0)


def _check_barrier_round(arena: Arena, outcomes: list[Outcome]) -> None:
    """Round 0: all four planned on the initial state while the lock was held, so each customer is
    applied by exactly one process and refused as stale to the other that wanted it; the process
    with the short lock timeout gave up on the lock and says so."""
    wanted = {process: {int(f.stem.split("-")[1]) for f in folder.glob("customer-*.yaml")}
              for process, folder in enumerate(arena.folders)}
    applied: dict[int, list[int]] = {}
    for process, outcome in enumerate(outcomes):
        for line in outcome.out.splitlines():
            if line.startswith("customer ") and ": applied," in line:
                applied.setdefault(int(line.split()[1].rstrip(":")), []).append(process)
    assert sorted(applied) == sorted(arena.initial_fingerprints), f"applied: {applied}"
    for customer, processes in sorted(applied.items()):
        assert len(processes) == 1, f"customer {customer} applied by processes {processes}"
        assert customer in wanted[processes[0]]
    short = outcomes[-1]
    assert short.code == 1, (
        f"the process with a 0.2 s lock timeout should have given up\n{short.err}"
    )
    reasons = [line for line in short.err.splitlines() if line.startswith("customer ")]
    assert reasons and "lock" in reasons[0], short.err


@pytest.mark.parametrize("round_no", range(CONCURRENCY_ROUNDS))
def test_four_processes_apply_overlapping_specs(arena: Arena, tmp_path: Path,
                                                round_no: int) -> None:
    db = tmp_path / "billing.db"
    shutil.copyfile(arena.template, db)
    outcomes = _race(arena, db, round_no)
    _check_outcomes(outcomes)
    if round_no == 0:
        _check_barrier_round(arena, outcomes)
    assert check_invariants(db, arena.baseline_usage) == []
    _check_no_interleaving(arena, db)
    final = run_cli("--backend", f"sqlite:///{db}", "apply", str(arena.reference), "--auto-approve")
    assert_clean_failure(final, allowed=(0,))
    again = run_cli("--backend", f"sqlite:///{db}", "plan", str(arena.reference),
                    "--detailed-exitcode")
    assert again.code == 0, again
    assert state_matches_specs(dump_db(db), arena.spec_docs.values()) == []
    assert check_invariants(db, arena.baseline_usage) == []
    record_figure("concurrency: rounds converged")
