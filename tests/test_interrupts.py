"""Interrupts: SIGINT and SIGTERM sent to real `apply` processes at random moments.

On the embedded SQLite backend (120 customers x 40 extensions in the long run, about 13,000
changes; 30 x 30 by default) and on the PortaBilling emulator (4 customers x 8 extensions; 2 x 6
by default; 20 ms of latency per call), each trial starts `apply`, sends SIGINT
or SIGTERM at a random moment (a random time, or a random delay after the first write reached
the audit log), sometimes a second signal right after, one to three times in a row, and after
every run checks what an operator would:

- the exit code is 130 for SIGINT and 143 for SIGTERM (or 0 if the run had finished);
- what apply printed per customer (applied; stopped after N of M changes with the list of
  them; not started) is what billing holds and what the audit log added, customer by customer;
- billing after the run is billing before it plus exactly the changes the run added to
  `history`: no change in billing lacks its audit entry, none is recorded twice
  (``interrupt_support.billing_differences``);
- on SQLite no customer is half applied; on PortaBilling at most the one in flight;

then an uninterrupted apply converges: no changes left, billing equals the specs, and `history`
holds every change of the first plan exactly once.

Default run: 2 trials on SQLite and 1 on the emulator, seeded (the seed is in every failure
message; timings are not, so a failure may need several runs to reproduce). Long run:
RECONCILER_INTERRUPT_TRIALS=40 pytest tests/test_interrupts.py (or python -m tests.fuzz_long
--interrupt-trials 40).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Result, run_cli
from tests.interrupt_support import Report, billing_differences, parse_report
from tests.reliability_support import (
    INTERRUPT_TRIALS,
    change_key,
    check_invariants,
    clean_env,
    dump_db,
    generate_world,
    reconciler_argv,
    record_figure,
    state_matches_specs,
)

LATENCY_MS = 20.0


# ---- one billing to interrupt applies against ------------------------------------------------


class Target:
    """A billing (SQLite file or emulator) with its specs, run through the real CLI."""

    kind = ""

    def __init__(self, folder: Path, specs: Path, spec_docs: dict[int, dict[str, Any]]) -> None:
        self.folder = folder
        self.specs = specs
        self.spec_docs = spec_docs
        self.url = ""
        self.env: dict[str, str] = {}

    def cli(self, *args: str) -> Result:
        return run_cli("--backend", self.url, *args, env=self.env)

    def dump(self) -> dict[str, Any]:
        raise NotImplementedError

    def history(self) -> list[dict[str, Any]]:
        result = self.cli("history", "--format", "json")
        assert result.code == 0, result
        return json.loads(result.out)  # type: ignore[no-any-return]

    def audit_size(self) -> int:
        """Grows when a change is recorded: how a test knows the first write happened."""
        raise NotImplementedError

    def problems(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


class SqliteTarget(Target):
    kind = "sqlite"

    def __init__(self, folder: Path, specs: Path, spec_docs: dict[int, dict[str, Any]],
                 template: Path) -> None:
        super().__init__(folder, specs, spec_docs)
        self.db = folder / "billing.db"
        shutil.copyfile(template, self.db)
        self.url = f"sqlite:///{self.db}"

    def dump(self) -> dict[str, Any]:
        return dump_db(self.db)

    def audit_size(self) -> int:
        try:
            con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=0.05)
            try:
                return int(con.execute("SELECT COUNT(*) FROM audit").fetchone()[0])
            finally:
                con.close()
        except sqlite3.Error:
            return 0  # busy: ask again

    def problems(self) -> list[str]:
        return check_invariants(self.db)


class EmulatorTarget(Target):
    kind = "portabilling"

    def __init__(self, folder: Path, specs: Path, spec_docs: dict[int, dict[str, Any]],
                 state_file: Path, latency_ms: float = LATENCY_MS) -> None:
        from reconciler.emulator import EmulatorServer
        from reconciler.statefile import load_state_file

        super().__init__(folder, specs, spec_docs)
        self.server = EmulatorServer(load_state_file(str(state_file)), latency_ms=latency_ms)
        self.server.start()
        self.url = self.server.url
        self.audit_log = folder / "audit.jsonl"
        self.env = {**self.server.env(), "RECONCILER_AUDIT_LOG": str(self.audit_log)}

    def dump(self) -> dict[str, Any]:
        from reconciler.statefile import state_to_dict

        return state_to_dict(self.server.dump_state())

    def audit_size(self) -> int:
        try:
            return self.audit_log.stat().st_size
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        self.server.stop()


# ---- worlds ----------------------------------------------------------------------------------


@dataclass
class World:
    folder: Path
    state_file: Path
    specs: Path
    spec_docs: dict[int, dict[str, Any]]
    expected: Counter[tuple[str, str, str]]  # every change of the first plan
    seconds: float  # an uninterrupted apply, start to exit
    template: Path | None = None  # SQLite: the loaded database

    def target(self, folder: Path) -> Target:
        folder.mkdir(parents=True, exist_ok=True)
        if self.template is not None:
            return SqliteTarget(folder, self.specs, self.spec_docs, self.template)
        return EmulatorTarget(folder, self.specs, self.spec_docs, self.state_file)


def _make_world(folder: Path, kind: str, customers: int, extensions: int) -> World:
    generated = generate_world(seed=20261129, customers=customers, extensions=extensions)
    state_file = generated.write_state(folder / "state.yaml")
    generated.write_specs(folder / "specs")
    template = None
    if kind == "sqlite":
        template = folder / "template.db"
        assert (
            run_cli("--backend", f"sqlite:///{template}", "state", "load", str(state_file)).code
            == 0
        )
    world = World(folder, state_file, folder / "specs", generated.specs, Counter(), 0.0, template)
    probe = world.target(folder / "probe")
    try:
        plan = probe.cli("plan", str(world.specs), "--format", "json")
        assert plan.code == 0, plan
        world.expected = Counter(change_key(c) for customer in plan.json["customers"]
                                 for c in customer["changes"])
        assert world.expected and all(n == 1 for n in world.expected.values())
        start = time.monotonic()
        done = subprocess.run(reconciler_argv("--backend", probe.url, "apply", str(world.specs),
                                              "--auto-approve"),
                              cwd=probe.folder, env=clean_env(probe.env), capture_output=True,
                              text=True, timeout=300, check=False)
        world.seconds = time.monotonic() - start
        assert done.returncode == 0, done.stderr
    finally:
        probe.close()
    return world


# The long run's worlds take seconds to apply, so random moments fall everywhere in a run; the
# default run's are smaller, to keep it fast.
LONG_RUN = INTERRUPT_TRIALS > 2
SQLITE_WORLD = (120, 40) if LONG_RUN else (30, 30)
EMULATOR_WORLD = (4, 8) if LONG_RUN else (2, 6)


@pytest.fixture(scope="module")
def sqlite_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _make_world(tmp_path_factory.mktemp("interrupt-sqlite"), "sqlite", *SQLITE_WORLD)


@pytest.fixture(scope="module")
def emulator_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _make_world(tmp_path_factory.mktemp("interrupt-pb"), "portabilling", *EMULATOR_WORLD)


# ---- one interrupted run ---------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str
    how: str
    signals: list[int]

    @property
    def started_python_only(self) -> bool:
        """The signal came while Python was starting (site, the program's imports), before the
        reconciler ran: Python's own reaction (killed; or KeyboardInterrupt in an import)."""
        if not self.signals or self.out:
            return False
        if self.code == -self.signals[0]:
            return True
        python_said = "KeyboardInterrupt" in self.err or "Fatal Python error" in self.err
        return signal.SIGINT in self.signals and python_said and ", in main" not in self.err

    @property
    def report(self) -> Report:
        return parse_report(self.out, self.err)

    def __str__(self) -> str:
        names = [signal.Signals(s).name for s in self.signals]
        return (f"{self.how}, signals {names}, exit {self.code}\n--- stdout "
                f"(end)\n{self.out[-2000:]}\n--- stderr (end)\n{self.err[-3000:]}")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test started: killed and reaped at the end whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _start_apply(target: Target, processes: list[subprocess.Popen[bytes]], tag: str) -> tuple[
        subprocess.Popen[bytes], Path, Path]:
    out_path, err_path = target.folder / f"{tag}.out", target.folder / f"{tag}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            reconciler_argv("--backend", target.url, "apply", str(target.specs), "--auto-approve"),
            cwd=target.folder, env=clean_env(target.env), stdout=out, stderr=err,
            stdin=subprocess.DEVNULL,
        )
    processes.append(proc)
    return proc, out_path, err_path


def _wait_until(deadline: float, proc: subprocess.Popen[bytes]) -> None:
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)


def _interrupted_apply(target: Target, world: World, rng: random.Random,
                       processes: list[subprocess.Popen[bytes]], tag: str) -> Run:
    audited = target.audit_size()
    proc, out_path, err_path = _start_apply(target, processes, tag)
    if rng.random() < 0.5:
        how = "at a random time"
        _wait_until(time.monotonic() + rng.uniform(0.05, world.seconds * 1.1), proc)
    else:
        how = "after the first write"
        deadline = time.monotonic() + 120
        while (
            proc.poll() is None and target.audit_size() == audited and time.monotonic() < deadline
        ):
            time.sleep(0.003)
        _wait_until(time.monotonic() + rng.uniform(0, world.seconds * 0.4), proc)
    sent: list[int] = []
    if proc.poll() is None:
        sent.append(rng.choice((signal.SIGINT, signal.SIGTERM)))
        proc.send_signal(sent[0])
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0, 0.05))
            if proc.poll() is None:
                sent.append(rng.choice((signal.SIGINT, signal.SIGTERM)))
                proc.send_signal(sent[1])
    else:
        how = "finished before the signal"
    code = proc.wait(timeout=120)
    return Run(code, out_path.read_text("utf-8", "replace"), err_path.read_text("utf-8", "replace"),
               how, sent)


def check_run(target: Target, run: Run, before: dict[str, Any], after: dict[str, Any],
              entries: list[dict[str, Any]]) -> list[str]:
    """Everything that must hold after one interrupted (or finished) apply; returns the problems."""
    from reconciler.render.text import describe

    problems = billing_differences(before, after, entries)
    problems += target.problems()
    report = run.report
    audited = Counter(entry["customer"] for entry in entries)
    if run.started_python_only:
        # The signal came while Python was starting and loading the program, before the
        # reconciler's handlers: Python's own reaction (for SIGINT, a KeyboardInterrupt raised in
        # an import). Nothing may have been written.
        if entries:
            problems.append("stopped while starting, yet it recorded something")
        return problems
    if "Traceback" in run.err or "internal error" in run.err:
        problems.append("a traceback or an internal error was shown")
    if not run.signals or run.code == 0:
        # No signal, or one that came once the run was over (its outcome already decided).
        if run.code != 0 or report.not_started or report.cut or report.summary:
            problems.append(f"exit {run.code}: a run that was not stopped must finish and exit 0")
    elif run.code not in [128 + sent for sent in run.signals]:
        problems.append(f"exit {run.code} after {[signal.Signals(s).name for s in run.signals]}")
    elif report.summary and not report.summary.startswith(
        f"interrupted ({signal.Signals(run.code - 128).name})"
    ):
        # Two signals may both be pending when Python runs its handlers (in signal number
        # order): the one apply names is the one whose exit code it uses.
        problems.append(f"exit {run.code} but the report says {report.summary[:40]!r}")
    elif (
        not report.summary
        and not report.before_writing
        and not run.err.strip().endswith("interrupted")
    ):
        problems.append("interrupted without saying what was applied")
    if report.before_writing and entries:
        problems.append("'nothing was changed', yet the audit log grew")
    for cid, count in report.applied.items():
        if audited[cid] != count:
            problems.append(f"customer {cid}: printed {count} change(s) applied, "
                            f"{audited[cid]} audited")
        spec_problems = state_matches_specs(after, [target.spec_docs[cid]])
        if spec_problems:
            problems.append(f"customer {cid}: printed as applied, but {spec_problems[:3]}")
    for cid, (done, _planned, lines) in report.cut.items():
        made = [describe(e["change"]) for e in entries if e["customer"] == cid]
        if not (done == len(lines) == audited[cid]) or lines != made:
            problems.append(f"customer {cid}: printed {lines} as made, the audit log added {made}")
    for cid in report.not_started:
        if audited[cid]:
            problems.append(f"customer {cid}: printed 'not started', "
                            f"{audited[cid]} change(s) audited")
    unreported = set(audited) - set(report.applied) - set(report.cut)
    if unreported:
        problems.append(f"customers {sorted(unreported)} were changed but not reported as applied")
    if target.kind == "sqlite" and report.cut:
        problems.append(f"customers {sorted(report.cut)} half applied on a transactional backend")
    if len(report.cut) > 1:
        problems.append(f"more than one customer cut short: {sorted(report.cut)}")
    return problems


def _trial(world: World, seed: int, tmp_path: Path,
           processes: list[subprocess.Popen[bytes]]) -> None:
    rng = random.Random(seed)
    target = world.target(tmp_path / f"trial-{seed}")
    try:
        for attempt in range(rng.choice((1, 1, 2, 3))):
            before, logged = target.dump(), len(target.history())
            run = _interrupted_apply(target, world, rng, processes, f"run-{attempt}")
            entries = target.history()[logged:]
            problems = check_run(target, run, before, target.dump(), entries)
            assert problems == [], (
                f"{target.kind} seed {seed}, run {attempt + 1}: {problems[:8]}\n{run}"
            )
            if not run.signals:
                how = "runs that finished before the signal was sent"
            elif run.started_python_only:
                how = "runs signalled during Python's start-up (before the reconciler's handlers)"
            elif run.code == 0:
                how = "runs signalled once their work was done (exit 0)"
            else:
                how = f"runs signalled {run.how}"
            record_figure(f"interrupts ({target.kind}): {how}")
            for sent in run.signals:
                record_figure(f"interrupts ({target.kind}): {signal.Signals(sent).name} sent")
            if len(run.signals) > 1:
                record_figure(f"interrupts ({target.kind}): second signals while stopping")
            if run.report.cut:
                record_figure(f"interrupts ({target.kind}): customers stopped between two writes")
            record_figure(f"interrupts ({target.kind}): changes audited by interrupted runs, each "
                          "checked against billing", len(entries))
        final = target.cli("apply", str(world.specs), "--auto-approve")
        assert final.code == 0, f"{target.kind} seed {seed}: the re-run failed\n{final}"
        again = target.cli("plan", str(world.specs), "--detailed-exitcode")
        assert again.code == 0, f"{target.kind} seed {seed}: not converged\n{again}"
        assert state_matches_specs(target.dump(), world.spec_docs.values()) == []
        logged_all = Counter(change_key(entry["change"]) for entry in target.history())
        missing, extra = world.expected - logged_all, logged_all - world.expected
        assert not missing and not extra, (
            f"{target.kind} seed {seed}: history lacks {list(missing)[:5]}, holds extra "
            f"{list(extra)[:5]}")
        record_figure(f"interrupts ({target.kind}): trials converged, every change audited once")
        record_figure(f"interrupts ({target.kind}): changes lost (in billing, not in history)", 0)
    finally:
        target.close()


@pytest.mark.parametrize("trial", range(INTERRUPT_TRIALS))
def test_sqlite_apply_interrupted_at_random_moments(
    sqlite_world: World, tmp_path: Path, trial: int, processes: list[subprocess.Popen[bytes]]
) -> None:
    _trial(sqlite_world, 5000 + trial, tmp_path, processes)


@pytest.mark.parametrize("trial", range(INTERRUPT_TRIALS if LONG_RUN else 1))
def test_emulator_apply_interrupted_at_random_moments(
    emulator_world: World, tmp_path: Path, trial: int, processes: list[subprocess.Popen[bytes]]
) -> None:
    _trial(emulator_world, 7000 + trial, tmp_path, processes)


# ---- interrupts placed on purpose --------------------------------------------------------------


def test_second_ctrl_c_waits_for_the_write_in_flight(
    emulator_world: World, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """Two Ctrl-C in a row while a slow write is in flight:
    it finishes, is audited, then apply stops."""
    target = EmulatorTarget(tmp_path, emulator_world.specs, emulator_world.spec_docs,
                            emulator_world.state_file, latency_ms=100)
    try:
        before = target.dump()
        proc, out_path, err_path = _start_apply(target, processes, "run")
        deadline = time.monotonic() + 120
        while proc.poll() is None and target.audit_size() == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(0.02)  # inside the next write's 100 ms
        proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        run = Run(proc.wait(timeout=60), out_path.read_text(), err_path.read_text(), "mid-write",
                  [signal.SIGINT, signal.SIGINT])
        assert run.code == 130, run
        assert "stopping after the write in flight" in run.err
        assert "already stopping" in run.err
        entries = target.history()
        assert entries, run
        assert check_run(target, run, before, target.dump(), entries) == []
        assert run.report.cut or run.report.applied, run
    finally:
        target.close()


def test_interrupt_while_planning_changes_nothing(emulator_world: World, tmp_path: Path,
                                                  processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM before the first write (reads are slow here): nothing changed, said so, exit 143."""
    target = EmulatorTarget(tmp_path, emulator_world.specs, emulator_world.spec_docs,
                            emulator_world.state_file, latency_ms=150)
    try:
        before = target.dump()
        proc, out_path, err_path = _start_apply(target, processes, "run")
        # started (0.2 s when idle) and reading: planning takes some twenty 0.15 s calls
        time.sleep(1.0)
        assert out_path.stat().st_size == 0, "the plan was already printed: reads were too fast"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        err = err_path.read_text()
        assert code == 143, err
        # (On a machine so loaded that start-up took a second, the signal comes before apply
        # starts reading, and the one word "interrupted" is all there is to say.)
        assert err.strip() in ("interrupted; nothing was changed", "interrupted")
        assert target.dump() == before
        assert not target.audit_log.exists()
    finally:
        target.close()


def test_report_names_every_customer_and_the_audit_log(
    sqlite_world: World, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """After the first commit: applied ones on stdout, the others 'not started', a summary line."""
    target = sqlite_world.target(tmp_path / "t")
    assert isinstance(target, SqliteTarget)
    proc, out_path, err_path = _start_apply(target, processes, "run")
    deadline = time.monotonic() + 120
    while proc.poll() is None and target.audit_size() == 0 and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    run = Run(proc.wait(timeout=60), out_path.read_text(), err_path.read_text(),
              "after the first commit", [signal.SIGINT])
    assert run.code == 130, run
    report = run.report
    customers = set(sqlite_world.spec_docs)
    assert report.applied, run
    assert set(report.applied) | report.not_started == customers, run
    assert not set(report.applied) & report.not_started
    assert report.summary.startswith(f"interrupted (SIGINT): {len(report.applied)} customer(s) "
                                     "applied in full")
    assert f"{len(report.not_started)} customer(s) not started" in report.summary
    assert str(target.db) in report.summary  # where the record is
    assert "nothing more was changed" not in run.err


# ---- read-only commands ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "sent"),
    [
        (("plan", "{specs}", "--format", "json"), signal.SIGINT),
        (("state", "dump"), signal.SIGTERM),
        (("history", "--format", "json"), signal.SIGINT),
    ],
)
def test_read_only_command_interrupted_says_only_interrupted(
    sqlite_world: World, tmp_path: Path, command: tuple[str, ...], sent: int,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    target = sqlite_world.target(tmp_path)
    if command[0] == "history":
        # a long one
        assert target.cli("apply", str(sqlite_world.specs), "--auto-approve").code == 0
    argv = reconciler_argv("--backend", target.url,
                           *(a.format(specs=sqlite_world.specs) for a in command))
    proc = subprocess.Popen(argv, cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    processes.append(proc)
    # Nobody reads the output beyond its first byte: the command blocks writing the rest (more
    # than a pipe holds), so the signal surely comes inside the command, not in Python's start-up.
    assert proc.stdout is not None and proc.stdout.read(1)
    time.sleep(0.3)
    assert proc.poll() is None, "the output fitted in the pipe: the command is not blocked"
    proc.send_signal(sent)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sent, err
    # history names the log it reads before it starts writing; then only the one word.
    said = [line for line in err.decode().splitlines()
            if line.strip() and not line.startswith("audit log: ")]
    assert said == ["interrupted"], err.decode()


def test_apply_handlers_are_restored(tmp_path: Path) -> None:
    """apply's stop handlers are the process's only while it writes: afterwards, the old ones."""
    from reconciler.apply import StopSignals

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    said: list[str] = []
    with StopSignals(announce=said.append) as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        deadline = time.monotonic() + 5
        while signals.received < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert signals.requested() and signals.name == "SIGTERM" and signals.exit_code == 143
        signals.settle()  # the outcome is reported: later signals change nothing, say nothing
        os.kill(os.getpid(), signal.SIGINT)
        while signals.received < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert signals.received == 3 and signals.exit_code == 143
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert (
        len(said) == 2
        and said[0].startswith("SIGTERM received")
        and said[1].startswith("already stopping")
    )


def test_an_interrupted_saved_plan_reports_on_one_stream_and_its_advice_finishes_the_work(
        sqlite_world: World, tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    """apply --plan interrupted: the report is one account on standard output, in order, and what
    it advises (plan again from the specs, apply that) converges; the old plan would be stale."""
    target = sqlite_world.target(tmp_path / "t")
    assert isinstance(target, SqliteTarget)
    saved = target.folder / "plan.json"
    assert target.cli("plan", str(target.specs), "--out", str(saved)).code == 0
    out_path, err_path = target.folder / "run.out", target.folder / "run.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(reconciler_argv("--backend", target.url, "apply", "--plan",
                                                str(saved)),
                                cwd=target.folder, env=clean_env(target.env), stdout=out,
                                stderr=err, stdin=subprocess.DEVNULL)
    processes.append(proc)
    deadline = time.monotonic() + 120
    while proc.poll() is None and target.audit_size() == 0 and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    code, said_out, said_err = proc.wait(timeout=60), out_path.read_text(), err_path.read_text()
    assert code == 130, said_err
    report = parse_report(said_out, "")  # standard output alone holds the whole report
    assert report.applied and report.not_started and report.summary, said_out
    assert not any(line.startswith(("customer ", "interrupted (", "    done:"))
                   for line in said_err.splitlines())
    assert "plan again from the specs and apply that plan" in report.summary
    assert f"{saved} is out of date for the customers it changed" in report.summary
    # The advice works: a new plan from the specs, applied, finishes the work.
    fresh = target.folder / "fresh.json"
    assert target.cli("plan", str(target.specs), "--out", str(fresh)).code == 0
    finished = target.cli("apply", "--plan", str(fresh))
    assert finished.code == 0, finished
    assert finished.out.splitlines()[-1].startswith("Apply: "), finished
    assert target.cli("plan", str(target.specs), "--detailed-exitcode").code == 0
    # The old saved plan is what not to run again: every customer it changed is refused as stale.
    again = target.cli("apply", "--plan", str(saved))
    assert again.code == 1 and all(f"customer {c}: stale" in again.err for c in report.applied), (
        again
    )
