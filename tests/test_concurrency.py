"""Two applies on one database never interleave on a customer: the loser waits, then sees stale."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Billing, write
from tests.helpers import FIXTURES


def _spawn(workdir: Path, url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "--backend", url, *args],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _spec(workdir: Path, name: str, who: str) -> Path:
    return write(
        workdir / f"{name}.yaml",
        "version: 1\ncustomer: {id: 100, name: Acme}\nextensions:\n"
        f"  - {{extension: '7', name: {who}, product: Cloud PBX service, "
        "dids: ['15550000004']}\n",
    )


def test_two_concurrent_applies_one_wins_the_other_is_stale(sqlite_billing: Billing,
                                                            workdir: Path) -> None:
    sqlite_billing.load(FIXTURES / "state.yaml")
    first, second = _spec(workdir, "first", "Grace"), _spec(workdir, "second", "Heidi")
    # Hold the database's write lock so both processes plan against the same state, then queue.
    holder = sqlite3.connect(workdir / "billing.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    procs = [
        _spawn(workdir, sqlite_billing.url, "apply", str(spec), "--auto-approve")
        for spec in (first, second)
    ]
    time.sleep(1.5)
    assert all(p.poll() is None for p in procs), "both applies should be waiting for the lock"
    holder.execute("ROLLBACK")
    holder.close()
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    codes = sorted(code for _, _, code in results)
    assert codes == [0, 1], results
    loser_err = next(err for _, err, code in results if code == 1)
    assert "stale" in loser_err
    account = sqlite_billing.account("ph100x7")
    assert account is not None and account["dids"] == ["15550000004"]
    winner = "Grace" if results[0][2] == 0 else "Heidi"
    assert account["name"] == winner
    history = sqlite_billing.cli("history", "--customer", "100", "--format", "json").json
    assert len(history) == 2  # one create, one alias: the loser wrote nothing


def test_a_held_lock_makes_apply_fail_with_a_clear_message(sqlite_billing: Billing,
                                                           workdir: Path) -> None:
    sqlite_billing.load(FIXTURES / "state.yaml")
    spec = _spec(workdir, "lonely", "Ivy")
    holder = sqlite3.connect(workdir / "billing.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        from tests.helpers import run_cli

        result = run_cli("--backend", sqlite_billing.url, "--lock-timeout", "0.3", "apply",
                         str(spec), "--auto-approve")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.code == 1
    assert "another apply holds the database lock" in result.err
    assert sqlite_billing.account("ph100x7") is None
