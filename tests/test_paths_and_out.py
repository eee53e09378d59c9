"""Paths and output files, tried the way an operator would: from a working directory outside the
repository, with odd --out paths and standard output redirected where it cannot be written.

- `plan --changed-since` finds the git repository from the spec paths, not from the working
  directory; paths in several repositories are one clear error.
- `apply` records the commit of the specs' repository wherever it runs from.
- `history` names the audit log it read and says plainly when there is none.
- every `--out` writes whole or not at all, never creates folders, and a path it cannot write
  is one message and exit 1, with no crash log.
- `state dump` into a full disk, a closed descriptor or a closed pipe: one message, exit 1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.common import write_atomically
from reconciler.errors import OutputError
from tests.helpers import REPO, Result, run_cli
from tests.reliability_support import clean_env, generate_world, reconciler_argv

DEMO_STATE = REPO / "specs" / "demo-billing-state.yaml"
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def _spec_repo(folder: Path) -> Path:
    """A git repository holding the demo specs, committed."""
    shutil.copytree(REPO / "specs" / "customers", folder / "specs" / "customers")
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "config", "user.email", "ci@example.com")
    _git(folder, "config", "user.name", "CI")
    _git(folder, "config", "commit.gpgsign", "false")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "specs")
    return folder


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory: a folder outside every repository, with a billing database."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    # Keep git from finding a repository above the temporary folders.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert run_cli("--backend", "sqlite:///billing.db", "state", "load", str(DEMO_STATE)).code == 0
    return cwd


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return run_cli("--backend", "sqlite:///billing.db", *args, env=env)


def _no_crash(result: Result, cwd: Path) -> None:
    shown = result.out + result.err
    assert "internal error" not in shown and "Traceback" not in shown, result
    assert not (cwd / ".reconciler" / "logs").exists(), "a crash log was written"


# ---- --changed-since ------------------------------------------------------------------------


@needs_git
@pytest.mark.parametrize("spelling", ["absolute", "relative"])
def test_changed_since_uses_the_specs_repository(elsewhere: Path, tmp_path: Path,
                                                 spelling: str) -> None:
    repo = _spec_repo(tmp_path / "repo")
    abc = repo / "specs" / "customers" / "abc.yaml"
    abc.write_text(abc.read_text().replace("name: John Doe", "name: John Q. Doe"))
    specs = repo / "specs" / "customers"
    given = str(specs) if spelling == "absolute" else os.path.relpath(specs, elsewhere)
    result = cli("plan", "--changed-since", "main", given, "--format", "json")
    assert result.code == 0, result
    files = [c["file"] for c in result.json["customers"]]
    assert files == [os.path.join(given, "abc.yaml")]
    assert Path(files[0]).resolve() == abc.resolve()


@needs_git
def test_changed_since_over_two_repositories_is_one_clear_error(elsewhere: Path,
                                                                tmp_path: Path) -> None:
    first, second = _spec_repo(tmp_path / "first"), _spec_repo(tmp_path / "second")
    result = cli("plan", "--changed-since", "main", str(first / "specs"), str(second / "specs"))
    assert result.code == 1, result
    assert "the spec paths are in 2 git repositories" in result.err
    assert str(first) in result.err and str(second) in result.err
    _no_crash(result, elsewhere)


@needs_git
def test_changed_since_outside_any_repository_names_the_folder(elsewhere: Path,
                                                               tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    shutil.copytree(REPO / "specs" / "customers", loose)
    result = cli("plan", "--changed-since", "main", str(loose))
    assert result.code == 1, result
    assert f"not a git repository: {loose}" in result.err
    _no_crash(result, elsewhere)


@needs_git
def test_apply_records_the_commit_of_the_specs_repository(elsewhere: Path, tmp_path: Path) -> None:
    repo = _spec_repo(tmp_path / "repo")
    head = _git(repo, "rev-parse", "HEAD").strip()
    assert cli("apply", str(repo / "specs" / "customers"), "--auto-approve").code == 0
    entries = json.loads(cli("history", "--format", "json").out)
    assert entries and {e["git_commit"] for e in entries} == {head}


# ---- history ------------------------------------------------------------------------------------


def test_sqlite_history_names_its_database(elsewhere: Path) -> None:
    assert cli("apply", str(REPO / "specs" / "customers"), "--auto-approve").code == 0
    result = cli("history", "--format", "json")
    assert result.code == 0
    assert f"audit log: the audit table of {elsewhere / 'billing.db'}" in result.err
    assert json.loads(result.out)  # stdout is the JSON alone


def test_portabilling_history_from_another_folder_says_there_is_no_log(
        elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator = pytest.importorskip("reconciler.emulator")
    from reconciler.statefile import load_state_file

    server = emulator.EmulatorServer(load_state_file(str(DEMO_STATE)))
    server.start()
    try:
        env = {**server.env(), "RECONCILER_AUDIT_LOG": None}
        applied_in = tmp_path / "ops"
        applied_in.mkdir()
        monkeypatch.chdir(applied_in)
        applied = run_cli("--backend", server.url, "apply", str(REPO / "specs" / "customers"),
                          "--auto-approve", env=env)
        assert applied.code == 0, applied
        logs = list((applied_in / ".reconciler").glob("audit-*.jsonl"))
        assert len(logs) == 1  # the documented default: .reconciler/audit-HOST_PORT.jsonl

        monkeypatch.chdir(elsewhere)
        missing = run_cli("--backend", server.url, "history", env=env)
        assert missing.code == 0, missing
        expected_path = elsewhere / ".reconciler" / logs[0].name
        assert f"no audit log at {expected_path}" in missing.err
        assert "RECONCILER_AUDIT_LOG" in missing.err
        assert missing.out == "No changes applied yet.\n"
        as_json = run_cli("--backend", server.url, "history", "--format", "json", env=env)
        assert json.loads(as_json.out) == [] and "no audit log at" in as_json.err

        found = run_cli("--backend", server.url, "history", "--format", "json",
                        env={**env, "RECONCILER_AUDIT_LOG": str(logs[0])})
        assert found.code == 0
        assert f"audit log: {logs[0]}" in found.err
        assert len(json.loads(found.out)) == len(logs[0].read_text().splitlines()) > 0
    finally:
        server.stop()


# ---- --out ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("README.md/p.json", "cannot write README.md/p.json: README.md is not a folder"),
        ("/proc/nope.json", "cannot write /proc/nope.json: "),
        ("missing/dir/p.json",
         "cannot write missing/dir/p.json: the folder missing does not exist"),
    ],
)
@pytest.mark.parametrize("command", ["plan", "export"])
def test_out_that_cannot_be_written_is_one_message(elsewhere: Path, command: str, out: str,
                                                   message: str) -> None:
    (elsewhere / "README.md").write_text("a file, not a folder\n")
    plan_args = ("plan", str(REPO / "specs" / "customers"))
    args = plan_args if command == "plan" else ("export", "--customer", "46170")
    result = cli(*args, "--out", out)
    assert result.code == 1, result
    assert f"error: {message}" in result.err, result
    assert result.err.count("\n") == 1, result  # one line, nothing else
    _no_crash(result, elsewhere)
    assert not (elsewhere / "missing").exists()  # no folder was created
    assert not list(elsewhere.glob(".reconciler-*"))  # no temporary file left


def test_out_replaces_a_file_whole(elsewhere: Path) -> None:
    target = elsewhere / "plan.json"
    target.write_text("old plan\n")
    result = cli("plan", str(REPO / "specs" / "customers"), "--out", "plan.json")
    assert result.code == 0, result
    assert json.loads(target.read_text())["format_version"] == 1
    assert not list(elsewhere.glob(".reconciler-*"))  # no temporary file left


def test_out_onto_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"it is a folder$"):
        write_atomically(str(tmp_path), "text")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    target.write_text("the previous plan\n")

    def half_then_fail(stream: object) -> None:
        stream.write("{\"half\": ")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"cannot write .*plan.json: No space left on device"):
        write_atomically(str(target), half_then_fail)
    assert target.read_text() == "the previous plan\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]


# ---- standard output that cannot be written ------------------------------------------------------


@pytest.fixture
def big_billing(tmp_path: Path) -> Path:
    """A database whose dump is far bigger than a pipe holds."""
    folder = tmp_path / "big"
    folder.mkdir()
    world = generate_world(seed=3, customers=20, extensions=30)
    world.write_state(folder / "state.yaml")
    db = folder / "billing.db"
    assert (
        run_cli("--backend", f"sqlite:///{db}", "state", "load", str(folder / "state.yaml")).code
        == 0
    )
    return db


@pytest.fixture
def dump(big_billing: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts `state dump` of the big database; whatever happens, no process outlives the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, **popen: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(reconciler_argv("--backend", f"sqlite:///{big_billing}", "state",
                                                "dump", *args),
                                cwd=big_billing.parent, env=clean_env(), stderr=subprocess.PIPE,
                                **popen)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_state_dump_into_a_full_disk(dump: Callable[..., subprocess.Popen[bytes]],
                                     fmt: str) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "wb") as full:
        proc = dump("--format", fmt, stdout=full)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.decode() == "error: cannot write the output: No space left on device\n"


def test_state_dump_with_standard_output_closed(
    dump: Callable[..., subprocess.Popen[bytes]],
) -> None:
    proc = dump(stdout=subprocess.DEVNULL, preexec_fn=lambda: os.close(1))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.decode() == "error: cannot write the output: standard output is closed\n"


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_state_dump_into_a_pipe_closed_early(dump: Callable[..., subprocess.Popen[bytes]],
                                             fmt: str) -> None:
    """Like `reconciler state dump | head`: the reader leaves, and like other tools the dump says
    nothing of it; the exit code is the command's own (the dump itself went well: 0)."""
    proc = dump("--format", fmt, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read() if proc.stderr else b""
    assert proc.wait(timeout=60) == 0
    assert err.decode() == ""


def test_apply_workflow_carries_the_audit_log_from_run_to_run() -> None:
    """CI runners are thrown away: the audit log goes from each apply to the next as an artifact.

    The restore itself is run in tests/test_apply_flow.py; here, the order of the steps.
    """
    import yaml

    jobs = yaml.safe_load((REPO / ".github" / "workflows" / "apply.yml").read_text())["jobs"]
    prepare = [step.get("name", "") for step in jobs["prepare"]["steps"]]
    restore = jobs["prepare"]["steps"][prepare.index("Restore the audit log of earlier applies")]
    assert "gh run download" in restore["run"] and "reconciler-audit-log" in restore["run"]
    for job, applying in (("apply", "Apply the saved plan"),
                          ("apply-unsafe", "Apply the unsafe plan, as approved")):
        steps = jobs[job]["steps"]
        names = [step.get("name", "") for step in steps]
        download = next(i for i, s in enumerate(steps)
                        if s.get("with", {}).get("name") == "reconciler-audit-log")
        keep = steps[names.index("Keep the audit log")]
        assert download < names.index(applying) < names.index("Keep the audit log")
        assert keep["with"]["name"] == "reconciler-audit-log"
        # the documented default location
        assert ".reconciler/audit-*.jsonl" in keep["with"]["path"].split()
        assert keep["with"]["include-hidden-files"] is True  # .reconciler/ is a hidden folder
        assert keep["if"].startswith("always()")  # a cancelled (SIGTERM) apply keeps its record too


def test_an_audit_log_that_cannot_be_written_stops_apply_before_any_change(elsewhere: Path) -> None:
    """PortaBilling: the audit log is checked before the first write, not found broken after it."""
    emulator = pytest.importorskip("reconciler.emulator")
    from reconciler.statefile import load_state_file, state_to_dict

    (elsewhere / "README.md").write_text("a file, not a folder\n")
    server = emulator.EmulatorServer(load_state_file(str(DEMO_STATE)))
    server.start()
    try:
        before = state_to_dict(server.dump_state())
        env = {**server.env(), "RECONCILER_AUDIT_LOG": "README.md/audit.jsonl"}
        result = run_cli("--backend", server.url, "apply", str(REPO / "specs" / "customers"),
                         "--auto-approve", env=env)
        assert result.code == 1, result
        _no_crash(result, elsewhere)
        assert (
            f"error: cannot write the audit log {elsewhere / 'README.md' / 'audit.jsonl'}"
            in result.err
        )
        assert "RECONCILER_AUDIT_LOG" in result.err
        assert state_to_dict(server.dump_state()) == before
    finally:
        server.stop()
