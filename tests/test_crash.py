"""Crash consistency: `apply` killed with SIGKILL at random moments, then run again.

The world is 50 customers x 40 extensions (about 5,000 changes: creations, renames, moved DIDs,
add-ons, blocks, prunes). Each trial copies the loaded database, kills one to three applies in a
row at random moments (a random time, or a random delay after the first customer committed), and
after every kill checks that

- the database is intact and its invariants hold (no duplicate account, a DID on at most one
  account, no alias on a terminated account, quantities respected);
- every customer is either wholly applied or untouched (the SQLite backend writes a customer in
  one transaction), with its audit rows matching;

then a last, uninterrupted apply converges: a plan shows no changes, billing equals the specs,
and the audit log holds every change of the initial plan exactly once.

Default run: 3 trials. Long run: RECONCILER_CRASH_TRIALS=20 pytest tests/test_crash.py
(or python -m tests.fuzz_long --crash-trials 20).
"""

from __future__ import annotations

import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli
from tests.reliability_support import (
    CRASH_TRIALS,
    assert_clean_failure,
    audit_rows,
    change_key,
    check_invariants,
    clean_env,
    dump_db,
    generate_world,
    reconciler_argv,
    record_figure,
    state_matches_specs,
    usage_of,
)

CUSTOMERS, EXTENSIONS = 50, 40


@dataclass
class CrashWorld:
    folder: Path
    template: Path
    specs: Path
    spec_docs: dict[int, dict[str, Any]]
    expected: Counter[tuple[str, str, str]]  # every change of the initial plan
    per_customer: dict[int, Counter[tuple[str, str, str]]]
    initial_accounts: dict[int, list[dict[str, Any]]]
    baseline_usage: dict[tuple[int, str], int]
    apply_seconds: float


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> CrashWorld:
    folder = tmp_path_factory.mktemp("crash")
    generated = generate_world(seed=20261126, customers=CUSTOMERS, extensions=EXTENSIONS)
    generated.write_state(folder / "state.yaml")
    generated.write_specs(folder / "specs")
    template = folder / "template.db"
    url = f"sqlite:///{template}"
    assert run_cli("--backend", url, "state", "load", str(folder / "state.yaml")).code == 0
    plan = run_cli("--backend", url, "plan", str(folder / "specs"), "--format", "json")
    assert plan.code == 0, plan
    per_customer = {
        c["customer"]: Counter(change_key(change) for change in c["changes"])
        for c in plan.json["customers"]
    }
    assert all(per_customer.values()), "every customer must have work to do"
    expected: Counter[tuple[str, str, str]] = sum(per_customer.values(), Counter())
    assert all(count == 1 for count in expected.values())
    initial = dump_db(template)
    accounts: dict[int, list[dict[str, Any]]] = {}
    for account in initial["accounts"]:
        accounts.setdefault(account["customer"], []).append(account)
    # How long an uninterrupted apply takes, so kills can be spread over it.
    probe = folder / "probe.db"
    shutil.copyfile(template, probe)
    start = time.monotonic()
    done = subprocess.run(
        reconciler_argv("--backend", f"sqlite:///{probe}", "apply", str(folder / "specs"),
                        "--auto-approve"),
        cwd=folder, env=clean_env(), capture_output=True, text=True, timeout=120, check=False,
    )
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    return CrashWorld(folder, template, folder / "specs", generated.specs, expected, per_customer,
                      accounts, usage_of(template), seconds)


def _audit_count(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05)
        try:
            return int(con.execute("SELECT COUNT(*) FROM audit").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0  # not open yet, or busy: try again


def _killed_apply(world: CrashWorld, db: Path, rng: random.Random) -> str:
    """Start an apply and SIGKILL it at a random moment; returns how the kill was timed."""
    argv = reconciler_argv("--backend", f"sqlite:///{db}", "apply", str(world.specs),
                           "--auto-approve")
    proc = subprocess.Popen(argv, cwd=world.folder, env=clean_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        if rng.random() < 0.5:
            how = "at a random time"
            deadline = time.monotonic() + rng.uniform(0.05, world.apply_seconds * 1.1)
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.002)
        else:
            how = "after the first commit"
            deadline = time.monotonic() + 60
            while proc.poll() is None and _audit_count(db) == 0 and time.monotonic() < deadline:
                time.sleep(0.003)
            time.sleep(rng.uniform(0, world.apply_seconds * 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        else:
            how = "too late (it had finished)"
    finally:
        proc.wait(timeout=60)
    return how


def _check_after_kill(world: CrashWorld, db: Path) -> tuple[int, list[str]]:
    """Invariants after a kill; returns (customers wholly applied, problems)."""
    problems = check_invariants(db, world.baseline_usage)
    rows = audit_rows(db)
    written: dict[int, Counter[tuple[str, str, str]]] = {}
    for row in rows:
        written.setdefault(row["customer"], Counter())[change_key(row["change"])] += 1
    dump = dump_db(db)
    now: dict[int, list[dict[str, Any]]] = {}
    for account in dump["accounts"]:
        now.setdefault(account["customer"], []).append(account)
    applied = 0
    for cid, wanted in world.per_customer.items():
        got = written.get(cid, Counter())
        if got == wanted:
            applied += 1
            problems.extend(state_matches_specs(dump, [world.spec_docs[cid]]))
        elif not got:
            if now.get(cid, []) != world.initial_accounts.get(cid, []):
                problems.append(f"customer {cid} has no audit rows but its accounts changed")
        else:
            problems.append(f"customer {cid} is half applied: {sum(got.values())} of "
                            f"{sum(wanted.values())} changes in the audit log")
    return applied, problems


def _trial(world: CrashWorld, seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    db = tmp_path / f"trial-{seed}.db"
    shutil.copyfile(world.template, db)
    for _ in range(rng.choice((1, 1, 2, 3))):
        how = _killed_apply(world, db, rng)
        applied, problems = _check_after_kill(world, db)
        assert problems == [], f"seed {seed}, killed {how}: {problems[:10]}"
        record_figure(f"crash: kills {how}")
        if 0 < applied < len(world.per_customer):
            record_figure("crash: kills that left a partly applied run (some customers done, "
                          "others not)")
        record_figure("crash: kills survived")
    final = run_cli("--backend", f"sqlite:///{db}", "apply", str(world.specs), "--auto-approve")
    assert_clean_failure(final, allowed=(0,))
    again = run_cli("--backend", f"sqlite:///{db}", "plan", str(world.specs), "--detailed-exitcode")
    assert again.code == 0, f"seed {seed}: not converged after the kills\n{again}"
    assert check_invariants(db, world.baseline_usage) == []
    assert state_matches_specs(dump_db(db), world.spec_docs.values()) == []
    logged = Counter(change_key(row["change"]) for row in audit_rows(db))
    missing, extra = world.expected - logged, logged - world.expected
    assert not missing and not extra, (
        f"seed {seed}: audit log missing {list(missing)[:5]}, extra {list(extra)[:5]}"
    )
    record_figure("crash: trials converged")


@pytest.mark.parametrize("trial", range(CRASH_TRIALS))
def test_apply_killed_at_random_moments_converges(world: CrashWorld, tmp_path: Path,
                                                  trial: int) -> None:
    _trial(world, seed=1000 + trial, tmp_path=tmp_path)


def test_state_load_killed_leaves_old_or_new_state(world: CrashWorld, tmp_path: Path) -> None:
    """`state load` replaces everything in one transaction:
    a kill leaves the old or the new state."""
    db = tmp_path / "load.db"
    shutil.copyfile(world.template, db)
    old = dump_db(db)
    small = tmp_path / "small.yaml"
    small.write_text("products: [{id: 1, name: Cloud PBX service, type: main}]\n"
                     "customers: [{id: 1, name: Solo}]\n")
    new_db = tmp_path / "new.db"
    assert run_cli("--backend", f"sqlite:///{new_db}", "state", "load", str(small)).code == 0
    new = dump_db(new_db)
    rng = random.Random(7)
    for _ in range(max(2, CRASH_TRIALS // 4)):
        big = world.folder / "state.yaml"
        # Alternate: replace the big state with the small one, or the small with the big.
        source = small if dump_db(db) == old else big
        proc = subprocess.Popen(reconciler_argv("--backend", f"sqlite:///{db}", "state", "load",
                                                str(source)),
                                cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.1, 0.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert dump_db(db) in (old, new)
        assert check_invariants(db) == []
        record_figure("crash: state loads killed")
