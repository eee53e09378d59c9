"""Secrets on the SQLite path: PortaBilling credentials in the environment are never printed or
stored.

With PORTABILLING_LOGIN / _PASSWORD / _TOKEN set to sentinels, every command of a full session
(load, validate, plan in every format with GitHub annotations and a job summary, a saved plan,
apply, apply of the saved plan, history, export, dump, usage errors, a refused apply, and an
internal error with its crash log) runs; none of the sentinels appears on stdout or stderr, in a
saved plan, in the audit log, in the database file, in the job summary or in any crash log.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, REPO, run_cli
from tests.reliability_support import clean_env, reconciler_argv, record_figure, run_measured

PASSWORD = "SENTINEL-pa55word-7f3a9c"
TOKEN = "SENTINEL-t0ken-e41b07"
LOGIN = "SENTINEL-login-c0ffee"
SECRETS = {"PORTABILLING_PASSWORD": PASSWORD, "PORTABILLING_TOKEN": TOKEN,
           "PORTABILLING_LOGIN": LOGIN}


def _leaks(text: str | bytes) -> list[str]:
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    return [s for s in (PASSWORD, TOKEN, LOGIN) if s.encode() in data]


def _crash_logs_since(start: float, *folders: Path) -> list[Path]:
    # The temporary folder is shared with other processes whose files come and go while it is
    # walked: a file or folder that vanished (or cannot be read) is simply not a crash log of ours.
    found: list[Path] = []
    for folder in folders:
        for root, _dirs, files in os.walk(folder):
            for name in files:
                if not (name.startswith("crash-") and name.endswith(".log")):
                    continue
                path = Path(root, name)
                try:
                    if path.stat().st_mtime >= start - 1:
                        found.append(path)
                except OSError:
                    continue
    return found


def test_credentials_in_the_environment_never_show_up(workdir: Path) -> None:
    start = time.time()
    db = workdir / "billing.db"
    url = f"sqlite:///{db}"
    summary = workdir / "summary.md"
    env = dict(SECRETS, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    spec = workdir / "grace.yaml"
    spec.write_text("version: 1\ncustomer: {id: 100, name: Acme}\nextensions:\n"
                    "  - {extension: '7', name: Grace, product: Cloud PBX service, dids: "
                    "['15550000004']}\n")
    bad = workdir / "bad.yaml"
    bad.write_text("version: 1\ncustomer: {id: 100, name: Acme}\nextensions:\n"
                   "  - {extension: '8', name: Eve, product: Cloud PBX service, dids: "
                   "['15550000201']}\n")
    plan_file = workdir / "saved-plan.json"
    sessions = [
        ("state", "load", str(FIXTURES / "state.yaml")),
        ("validate", str(spec)),
        ("validate", "--offline", str(spec)),
        ("plan", str(spec)),
        ("plan", str(spec), "--format", "json"),
        ("plan", str(spec), "--format", "markdown"),
        ("plan", str(spec), "--out", str(plan_file)),
        ("apply", "--plan", str(plan_file)),
        ("apply", str(bad), "--auto-approve"),  # refused: did_not_owned
        ("apply", str(spec)),  # no terminal: refused
        ("history",),
        ("history", "--format", "json"),
        ("export", "--customer", "100"),
        ("state", "dump"),
        ("plan",),  # usage error
        ("apply", str(workdir / "missing.yaml"), "--auto-approve"),
    ]
    outputs = []
    for args in sessions:
        result = run_cli("--backend", url, *args, env=env)
        assert "Traceback" not in result.out + result.err, result
        outputs.append((args, result.out + result.err))
        record_figure("secrets: commands run with credential sentinels set")
    for args, shown in outputs:
        assert _leaks(shown) == [], f"{args} printed a credential"
    assert _leaks(plan_file.read_bytes()) == []
    assert summary.exists() and _leaks(summary.read_bytes()) == []
    for path in sorted(workdir.rglob("*")):
        if path.is_file():
            assert _leaks(path.read_bytes()) == [], f"{path} holds a credential"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT * FROM audit").fetchall()
    finally:
        con.close()
    assert rows and _leaks(repr(rows)) == []
    for log in _crash_logs_since(start, workdir / ".reconciler" / "logs",
                                 Path(tempfile.gettempdir())):
        assert _leaks(log.read_bytes()) == [], f"{log} holds a credential"


def test_a_table_less_database_is_a_clear_error_that_names_no_credentials(workdir: Path) -> None:
    """A database with the right version marker but no tables is an expected failure: one
    sentence that names the missing tables, no crash log, no credential."""
    start = time.time()
    broken = workdir / "broken.db"
    con = sqlite3.connect(broken)
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.commit()
    con.close()
    result = run_measured(
        reconciler_argv("--backend", f"sqlite:///{broken}", "plan",
                        str(REPO / "specs" / "customers")),
        cwd=workdir, env=clean_env(SECRETS), timeout=30,
    )
    assert result.code == 1, str(result)
    assert "not a usable billing database" in result.err and "missing tables" in result.err
    assert "Traceback" not in result.shown and "internal error" not in result.shown
    assert _leaks(result.shown) == [], str(result)
    assert _crash_logs_since(start, workdir / ".reconciler" / "logs") == []


# An unexpected exception inside `plan`, raised in a reconciler process of its own: whatever the
# product fixes, the crash path stays exercised end to end (exit code, message, log file).
CRASHING_PLAN = """
import sys
import reconciler.runner
from reconciler.cli import main

def explode(*args, **kwargs):
    raise RuntimeError("boom while planning")

reconciler.runner.build_plan = explode
main(sys.argv[1:])
"""


def test_an_internal_error_and_its_crash_log_do_not_carry_credentials(workdir: Path) -> None:
    start = time.time()
    db = workdir / "billing.db"
    url = f"sqlite:///{db}"
    assert run_cli("--backend", url, "state", "load", str(FIXTURES / "state.yaml")).code == 0
    result = run_measured(
        [sys.executable, "-c", CRASHING_PLAN, "--backend", url, "plan",
         str(REPO / "specs" / "customers")],
        cwd=workdir, env=clean_env(SECRETS), timeout=30,
    )
    assert result.code == 1, str(result)
    assert "internal error: RuntimeError: boom while planning" in result.err, str(result)
    assert "Traceback" not in result.shown and _leaks(result.shown) == [], str(result)
    [log] = _crash_logs_since(start, workdir / ".reconciler" / "logs")
    assert str(log.name) in result.err  # the message says where the details are
    text = log.read_text()
    assert "Traceback" in text and "boom while planning" in text
    assert _leaks(text) == [], f"{log} holds a credential"
    record_figure("secrets: crash logs checked")


def test_a_crash_log_written_in_process_carries_no_credentials(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Force an unexpected exception inside `plan` (whatever the product fixes, the crash path
    stays exercised): the crash log holds the traceback, not the environment."""
    start = time.time()
    import reconciler.runner

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom while planning")

    monkeypatch.setattr(reconciler.runner, "build_plan", explode)
    assert run_cli("state", "load", str(FIXTURES / "state.yaml")).code == 0
    result = run_cli("plan", "specs/customers", env=SECRETS)
    assert result.code == 1 and "internal error" in result.err, result
    assert _leaks(result.out + result.err) == []
    logs = _crash_logs_since(start, workdir / ".reconciler" / "logs")
    assert logs, result
    for log in logs:
        text = log.read_text()
        assert "boom while planning" in text
        assert _leaks(text) == [], f"{log} holds a credential"
    record_figure("secrets: crash logs checked", len(logs))
    assert os.environ.get("PORTABILLING_PASSWORD") != PASSWORD  # the runner's env did not leak out
