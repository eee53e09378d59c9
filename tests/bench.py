"""The scale benchmark: ``python -m tests.bench [--customers 1000 --extensions 100 --cases
1,2,3,4,5,6]``.

Every measured command runs as its own process (``python -m reconciler …``), so its wall time
includes start-up and its peak RSS is its own (read with ``os.wait4``). Each case is compared
with a reference measured in the same run, repeats interleaved, so the ratios hold on a busy
machine even when the seconds do not. Prints one table; ``--check`` exits 1 when a target is
missed. Not collected by pytest (the smoke version is tests/test_bench_smoke.py).

Every case verifies what it timed against the generator's record before the time counts: every
customer planned, no problem, the exact (op, account) list of the changes, or the exact accounts,
add-ons and aliases billing holds after an apply. A wrong result makes the case WRONG (not a
score) and the benchmark exit 1, with or without ``--check``.

Cases (targets for a 2-core machine):

1. plan, no change, N × M accounts, embedded backend: wall ≤ 2.5 × PyYAML's C loader
   (``yaml.load_all`` with ``CSafeLoader`` in a process loading the same spec files);
   peak RSS ≤ 400 MB. Verified: every customer planned, no change, no problem.
2. plan with ``--change-share`` of the accounts changed: ≤ 1.2 × case 1. Verified: the plan's
   (op, account) list is exactly the generator's.
3. apply from a billing state with customers, agreements and pools but no accounts (creates
   every account with its add-ons and DIDs): ≤ 3 × case 1. Verified: billing then holds exactly
   the generator's accounts (name, product, status), add-ons and aliases.
4. plan of one changed customer's file against all N customers: ≤ 1.5 × planning the same file
   against a database that holds only that customer. Verified: the exact (op, account) list, in
   both runs.
5. PortaBilling emulator, 200 × 50, 30 ms latency per call: API calls per customer ≤ 8 plus
   pages, and ``--parallelism`` (16) at least 10 × faster than parallelism 1.
6. Fleet through the emulator: 1,000 × 20 at 30 ms latency, page cap 100, ``--parallelism``
   (16): API calls per customer ≤ 8 plus pages, and wall ≤ 1.5 × the latency bound
   (calls × latency / parallelism).

Cases 5 and 6 start the emulator (the server ``reconciler emulator`` runs) in a process of its own,
so its threads do not share the client's interpreter, and read its call counts over a pipe; the
plan goes through the CLI as a separate process. Calls per customer are the calls of every method
but the per-run ones (``Session/*``, ``Product/*``, ``Generic/*``: log in, renew, catalogue,
operating mode) divided by the customers; the per-run calls are shown apart. Verified: every
customer planned, no change, no problem. They run only when ``reconciler.emulator`` is importable.

``--runner "CMD"`` replaces ``python -m reconciler`` by another command, for testing the
benchmark itself: tests/test_bench_smoke.py proves that a runner that plans only some
customers fails the check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.generate import Generated, generate

# The reference for case 1: what PyYAML's C loader alone takes to read the same files.
YAML_REFERENCE = """
import os, sys, yaml
count = 0
for folder, _, names in os.walk(sys.argv[1]):
    for name in sorted(names):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(folder, name), "rb") as handle:
                count += len(list(yaml.load_all(handle, Loader=yaml.CSafeLoader)))
print(count)
"""


# ---- measuring one process ----------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    rss_mb: float
    code: int
    stdout: Path
    stderr: Path


# The measured command is started by this small launcher, not by the benchmark itself: on Linux a
# child's peak RSS starts from its parent's at fork (exec keeps the old high-water mark), and the
# benchmark holds the generated data. The launcher is a fresh small process, so the peak RSS it
# reads with os.wait4 is the command's own. It times the command too, without its own start-up.
LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
wall = time.perf_counter() - start
# ru_maxrss is in kilobytes on Linux, in bytes on macOS.
rss = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
with open(sys.argv[1], "w") as out:
    json.dump({"wall": wall, "rss_mb": rss, "code": os.waitstatus_to_exitcode(status)}, out)
"""


def measure(argv: list[str], *, workdir: Path, label: str,
            env: dict[str, str] | None = None) -> Run:
    """Run ``argv`` as a child process: its wall time and its own peak RSS."""
    stdout, stderr = workdir / f"{label}.out", workdir / f"{label}.err"
    result = workdir / f"{label}.rusage.json"
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("GITHUB_", "RECONCILER_", "PORTABILLING_"))}
    environment.update(env or {})
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        launcher = subprocess.run([sys.executable, "-c", LAUNCHER, str(result), *argv],
                                  stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                  cwd=workdir, env=environment, check=False)
    if launcher.returncode != 0 or not result.exists():
        raise BenchFailure(f"{label}: the launcher failed (exit {launcher.returncode})")
    measured = json.loads(result.read_text())
    return Run(measured["wall"], measured["rss_mb"], measured["code"], stdout, stderr)


RUNNER = [sys.executable, "-m", "reconciler"]


def reconciler(args: argparse.Namespace, backend: Path | str, *rest: str) -> list[str]:
    """The measured command: the runner (``python -m reconciler`` unless --runner) on a backend."""
    url = f"sqlite:///{backend}" if isinstance(backend, Path) else backend
    return [*args.runner, "--backend", url, *rest]


def plan_document(run: Run, what: str) -> dict[str, Any]:
    try:
        document = json.loads(run.stdout.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WrongResult(f"{what}: the output is not a JSON plan ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("customers"), list):
        raise WrongResult(f"{what}: the output is not a JSON plan")
    return document


def plan_ops(document: dict[str, Any]) -> Counter[str]:
    return Counter(c["op"] for customer in document["customers"] for c in customer["changes"])


def _listed(items: list[Any], limit: int = 5) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def verify_plan(document: dict[str, Any], customers: list[int],
                expected: list[tuple[str, str]], what: str) -> None:
    """The plan covers exactly ``customers``, has no problem, and its changes are exactly
    ``expected`` as (op, account) pairs. Raises WrongResult saying what differs."""
    planned = [c.get("customer") for c in document["customers"]]
    missing = sorted(set(customers) - set(planned))
    extra = sorted(set(planned) - set(customers))
    if missing or extra or len(planned) != len(set(planned)):
        raise WrongResult(
            f"{what}: planned {len(set(planned))} of {len(customers)} customers"
            + (f"; not planned: {_listed(missing)}" if missing else "")
            + (f"; not expected: {_listed(extra)}" if extra else "")
            + ("; a customer planned twice" if len(planned) != len(set(planned)) else ""))
    problems = (list(document.get("errors") or [])
                + [p for c in document["customers"] for p in c.get("errors") or []])
    if problems:
        raise WrongResult(f"{what}: {len(problems)} problem(s), first: "
                          f"{problems[0].get('code')}: {problems[0].get('message')}")
    got = Counter((c["op"], c["account"]) for customer in document["customers"]
                  for c in customer["changes"])
    wanted = Counter(expected)
    if got != wanted:
        lacking = sorted((wanted - got).elements())
        surplus = sorted((got - wanted).elements())
        raise WrongResult(
            f"{what}: the plan has {sum(got.values())} changes, the generator recorded "
            f"{sum(wanted.values())}"
            + (f"; missing: {_listed(lacking)}" if lacking else "")
            + (f"; not expected: {_listed(surplus)}" if surplus else ""))


def verify_applied(db: Path, generated: Generated, what: str) -> None:
    """Billing holds exactly the generator's accounts, add-ons and aliases."""
    from reconciler.backends.sqlite import SqliteBackend

    backend = SqliteBackend(f"sqlite:///{db}")
    try:
        state = backend.dump_state()
    finally:
        backend.close()
    expected = generated.state()

    def accounts(accounts: tuple[Any, ...]) -> set[tuple[Any, ...]]:
        return {(a.id, a.customer, a.name, a.product, a.status, a.blocked_by) for a in accounts}

    def addons(accounts: tuple[Any, ...]) -> set[tuple[str, str]]:
        return {(a.id, addon) for a in accounts for addon in a.addons}

    def aliases(accounts: tuple[Any, ...]) -> set[tuple[str, str]]:
        return {(a.id, did) for a in accounts for did in a.dids}

    for label, read in (("accounts", accounts), ("add-ons", addons), ("aliases", aliases)):
        got, wanted = read(state.accounts), read(expected.accounts)
        if got != wanted:
            raise WrongResult(
                f"{what}: billing holds {len(got)} {label}, the generator recorded {len(wanted)}"
                f"; missing: {_listed(sorted(wanted - got))}; not expected: "
                f"{_listed(sorted(got - wanted))}")


class BenchFailure(Exception):
    """The benchmark itself could not run (a launcher or the emulator failed)."""


class WrongResult(Exception):
    """A measured command did not do what it should: its time would mean nothing."""


def expect(run: Run, ok_codes: tuple[int, ...], what: str) -> None:
    if run.code not in ok_codes:
        tail = run.stderr.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise WrongResult(f"{what}: exit {run.code}\n{tail}")


# ---- the table -----------------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    what: str
    runs: list[Run] = field(default_factory=list)
    reference: str = ""
    reference_runs: list[Run] = field(default_factory=list)
    reference_row: Row | None = None  # the reference is another case's median
    reference_value: float | None = None  # the reference is a computed bound (case 6)
    max_ratio: float | None = None
    max_rss_mb: float | None = None
    extra: str = ""  # a case with its own verdict (the emulator cases)
    extra_met: bool | None = None
    wrong: str | None = None  # why the measured command's result was wrong

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs) if self.runs else math.nan

    @property
    def rss(self) -> float:
        return max(r.rss_mb for r in self.runs) if self.runs else math.nan

    @property
    def reference_wall(self) -> float | None:
        if self.reference_value is not None:
            return self.reference_value
        if self.reference_row is not None:
            return self.reference_row.wall if self.reference_row.runs else None
        if self.reference_runs:
            return statistics.median(r.wall for r in self.reference_runs)
        return None

    @property
    def ratio(self) -> float | None:
        ref = self.reference_wall
        return self.wall / ref if ref and self.runs else None

    @property
    def target(self) -> str:
        parts = []
        if self.max_ratio is not None:
            parts.append(f"≤ {self.max_ratio:g}×")
        if self.max_rss_mb is not None:
            parts.append(f"RSS ≤ {self.max_rss_mb:g} MB")
        if self.extra:
            parts.append(self.extra)
        return ", ".join(parts)

    @property
    def met(self) -> bool:
        if self.wrong is not None or not self.runs:
            return False
        if self.max_ratio is not None and self.ratio is None:
            return False  # no reference to compare with: the target cannot be met
        ok = True
        if self.max_ratio is not None and self.ratio is not None:
            ok &= self.ratio <= self.max_ratio
        if self.max_rss_mb is not None:
            ok &= self.rss <= self.max_rss_mb
        if self.extra_met is not None:
            ok &= self.extra_met
        return ok


def render_table(rows: list[Row], fmt: str) -> str:
    header = ["case", "what", "wall s", "peak RSS MB", "reference", "ref s", "ratio", "target",
              "met"]
    body = []
    for row in rows:
        ref = row.reference_wall
        body.append([
            row.case,
            row.what,
            f"{row.wall:.2f}",
            f"{row.rss:.0f}",
            row.reference,
            f"{ref:.2f}" if ref is not None else "",
            f"{row.ratio:.2f}" if row.ratio is not None else "",
            row.target,
            "WRONG" if row.wrong else ("yes" if row.met else "NO"),
        ])
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()
             for cells in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---- the cases -----------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_db(path: Path, generated: Generated, customer_ids: list[int] | None = None,
            *, accounts: bool = True) -> Path:
    from reconciler.backends.sqlite import SqliteBackend
    from reconciler.statefile import BillingState

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    state = generated.state(customer_ids)
    if not accounts:
        state = BillingState(state.products, state.customers, ())
    backend = SqliteBackend(f"sqlite:///{path}", create=True)
    try:
        backend.load_state(state)
    finally:
        backend.close()
    return path


@dataclass
class Setup:
    """A case's prepared inputs and the step run for each repeat."""

    row: Row
    measure_once: Callable[[int], None]
    finish: Callable[[], None] = lambda: None


def write_specs(generated: Generated, folder: Path,
                customer_ids: list[int] | None = None) -> list[Path]:
    """Spec files in an emptied folder: a reused --workdir must not keep another run's files."""
    shutil.rmtree(folder, ignore_errors=True)
    return generated.write_specs(folder, customer_ids)


def case_plan_no_change(args: argparse.Namespace, work: Path) -> Setup:
    log(f"case 1: generating {args.customers} × {args.extensions} without differences …")
    same = generate(args.customers, args.extensions, seed=args.seed)
    specs = work / "specs-same"
    write_specs(same, specs)
    db = load_db(work / "same.db", same)
    customers = [c.id for c in same.customers]
    row = Row("1", f"plan, no change, {args.customers}×{args.extensions} "
              f"({same.account_count} accounts)", reference="PyYAML CSafeLoader, same files",
              max_ratio=2.5, max_rss_mb=400)

    def once(repeat: int) -> None:
        ref = measure([sys.executable, "-c", YAML_REFERENCE, str(specs)], workdir=work,
                      label=f"yaml-{repeat}")
        if ref.code != 0 or ref.stdout.read_text().strip() != str(len(customers)):
            raise BenchFailure("the PyYAML reference did not read every spec file")
        row.reference_runs.append(ref)
        run = measure(reconciler(args, db, "plan", str(specs), "--format", "json"), workdir=work,
                      label=f"case1-{repeat}")
        expect(run, (0,), "case 1 plan")
        verify_plan(plan_document(run, "case 1"), customers, [], "case 1")
        row.runs.append(run)

    return Setup(row, once)


def case_plan_changed(args: argparse.Namespace, work: Path, case1: Row) -> Setup:
    log(f"case 2: generating {args.customers} × {args.extensions} with "
        f"{args.change_share:.0%} of the accounts different …")
    changed = generate(args.customers, args.extensions, seed=args.seed,
                       change_share=args.change_share)
    specs = work / "specs-changed"
    write_specs(changed, specs)
    db = load_db(work / "changed.db", changed)
    customers = [c.id for c in changed.customers]
    expected = changed.expected
    row = Row("2", f"plan, {args.change_share:.0%} of accounts changed "
              f"({len(expected)} changes)", reference="case 1", reference_row=case1,
              max_ratio=1.2)

    def once(repeat: int) -> None:
        run = measure(reconciler(args, db, "plan", str(specs), "--format", "json"), workdir=work,
                      label=f"case2-{repeat}")
        expect(run, (0,), "case 2 plan")
        verify_plan(plan_document(run, "case 2"), customers, expected, "case 2")
        row.runs.append(run)

    return Setup(row, once)


def case_apply_empty(args: argparse.Namespace, work: Path, case1: Row) -> Setup:
    log("case 3: billing with customers, agreements and pools but no accounts …")
    same = generate(args.customers, args.extensions, seed=args.seed)
    specs = work / "specs-same"  # written by case 1, which runs whenever case 3 does
    template = load_db(work / "empty-template.db", same, accounts=False)
    row = Row("3", f"apply from empty billing (creates {same.account_count} accounts)",
              reference="case 1", reference_row=case1, max_ratio=3)
    db = work / "apply.db"

    def once(repeat: int) -> None:
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, db)
        run = measure(reconciler(args, db, "apply", str(specs), "--auto-approve"), workdir=work,
                      label=f"case3-{repeat}")
        expect(run, (0,), "case 3 apply")
        verify_applied(db, same, "case 3")
        row.runs.append(run)

    return Setup(row, once)


def case_one_customer(args: argparse.Namespace, work: Path) -> Setup:
    middle = args.customers // 2
    log(f"case 4: one customer (index {middle}) changed among {args.customers} …")
    one = generate(args.customers, args.extensions, seed=args.seed,
                   change_share=args.change_share, changed_customers=[middle])
    customer = one.customers[middle]
    specs = work / "specs-one"
    [spec_file] = write_specs(one, specs, [customer.id])
    full = load_db(work / "one-full.db", one)
    alone = load_db(work / "one-alone.db", one, [customer.id])
    expected = list(customer.expected)
    row = Row("4", f"plan one changed customer's file ({len(expected)} changes) "
              f"among {args.customers}", reference="same file, database of that customer only",
              max_ratio=1.5)

    def once(repeat: int) -> None:
        ref = measure(reconciler(args, alone, "plan", str(spec_file), "--format", "json"),
                      workdir=work, label=f"case4-alone-{repeat}")
        run = measure(reconciler(args, full, "plan", str(spec_file), "--format", "json"),
                      workdir=work, label=f"case4-full-{repeat}")
        for what, measured in (("case 4 (alone)", ref), ("case 4 (full)", run)):
            expect(measured, (0,), what)
            verify_plan(plan_document(measured, what), [customer.id], expected, what)
        row.reference_runs.append(ref)
        row.runs.append(run)

    return Setup(row, once)


# ---- cases 5 and 6: through the PortaBilling emulator --------------------------------------------

EMULATOR_LOGIN, EMULATOR_PASSWORD = "bench", "bench-password"
EMULATOR_WIRE = "v3"
PER_RUN_SERVICES = ("Session/", "Product/", "Generic/")  # once per run, not per customer

# The emulator in a process of its own: the same EmulatorServer that `reconciler emulator` serves,
# with its call counts read over a pipe (one command a line: "reset", "counts", "stop").
EMULATOR = """
import json, sys
from reconciler.emulator import EmulatorServer
from reconciler.statefile import load_state_file
state_file, latency_ms, page_cap, login, password, wire = sys.argv[1:7]
server = EmulatorServer(load_state_file(state_file), page_cap=int(page_cap),
                        latency_ms=float(latency_ms), login=login, password=password, wire=wire)
server.start()
print(server.url, flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "reset":
        server.reset_counts()
        print("{}", flush=True)
    elif command == "counts":
        print(json.dumps(server.call_counts), flush=True)
    elif command == "stop":
        break
server.stop()
"""


class EmulatorProcess:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def ask(self, command: str) -> dict[str, int]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise BenchFailure(f"the emulator process stopped (asked {command!r})")
        return json.loads(answer)  # type: ignore[no-any-return]


@contextmanager
def emulator_process(generated: Generated, work: Path, name: str, latency_ms: float,
                     page_cap: int) -> Iterator[EmulatorProcess]:
    state_file = generated.write_state_file(work / f"{name}-state.yaml")
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("PORTABILLING_", "RECONCILER_"))}
    process = subprocess.Popen(
        [sys.executable, "-c", EMULATOR, str(state_file), str(latency_ms), str(page_cap),
         EMULATOR_LOGIN, EMULATOR_PASSWORD, EMULATOR_WIRE],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment, cwd=work)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("portabilling+http://"):
            raise BenchFailure(f"the emulator did not start: {url!r}")
        yield EmulatorProcess(process, url)
    finally:
        try:
            if process.poll() is None and process.stdin is not None:
                process.stdin.write("stop\n")
                process.stdin.flush()
            process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()


@dataclass
class Calls:
    per_customer: float
    per_run: int
    total: int


def plan_through_emulator(args: argparse.Namespace, server: EmulatorProcess, specs: Path,
                          customers: list[int], parallelism: int, work: Path, label: str
                          ) -> tuple[Run, Calls]:
    server.ask("reset")
    run = measure(
        reconciler(args, server.url, "--parallelism", str(parallelism), "plan", str(specs),
                   "--format", "json"),
        workdir=work, label=label,
        env={"PORTABILLING_LOGIN": EMULATOR_LOGIN, "PORTABILLING_PASSWORD": EMULATOR_PASSWORD},
    )
    counts = server.ask("counts")
    expect(run, (0,), label)
    verify_plan(plan_document(run, label), customers, [], label)
    per_run = sum(n for method, n in counts.items() if method.startswith(PER_RUN_SERVICES))
    total = sum(counts.values())
    return run, Calls((total - per_run) / len(customers), per_run, total)


def allowed_calls(extensions: int, page_cap: int) -> int:
    """"8 + pages": eight calls per customer when every list fits in one page; each list read
    (accounts, extensions, DIDs) longer than the server's page cap costs one call per extra page."""
    return 8 + 3 * (-(-(extensions + 1) // page_cap) - 1)


# A run may log in, renew its token, read the catalogue and the operating mode: a few calls.
MAX_PER_RUN_CALLS = 6


def case_emulator(args: argparse.Namespace, work: Path) -> Setup:
    customers, extensions = args.emulator_customers, args.emulator_extensions
    latency, fast = args.emulator_latency_ms, args.parallelism
    log(f"case 5: emulator with {customers} × {extensions}, {latency:g} ms latency …")
    generated = generate(customers, extensions, seed=args.seed)
    specs = work / "specs-emulator"
    write_specs(generated, specs)
    ids = [c.id for c in generated.customers]
    limit = allowed_calls(extensions, args.page_cap)
    row = Row("5", f"PortaBilling emulator plan, {customers}×{extensions}, {latency:g} ms latency, "
              f"parallelism {fast}", reference="same, parallelism 1", max_ratio=0.1)
    seen: list[Calls] = []
    stack: list[Any] = []

    def once(repeat: int) -> None:
        if not stack:
            context = emulator_process(generated, work, "case5", latency, args.page_cap)
            stack.append((context, context.__enter__()))
        server = stack[0][1]
        for parallelism, runs in ((1, row.reference_runs), (fast, row.runs)):
            run, calls = plan_through_emulator(args, server, specs, ids, parallelism, work,
                                               f"case5-p{parallelism}-{repeat}")
            runs.append(run)
            seen.append(calls)

    def finish() -> None:
        if stack:
            stack[0][0].__exit__(None, None, None)
        if seen:
            worst = max(c.per_customer for c in seen)
            per_run = max(c.per_run for c in seen)
            row.extra = (f"≤ {limit} calls/customer (got {worst:.2f}, + {per_run} per run)")
            row.extra_met = worst <= limit and per_run <= MAX_PER_RUN_CALLS

    return Setup(row, once, finish)


def case_fleet(args: argparse.Namespace, work: Path) -> Setup:
    customers, extensions = args.fleet_customers, args.fleet_extensions
    latency, parallelism = args.emulator_latency_ms, args.parallelism
    log(f"case 6: fleet of {customers} × {extensions} through the emulator, "
        f"{latency:g} ms latency …")
    generated = generate(customers, extensions, seed=args.seed)
    specs = work / "specs-fleet"
    write_specs(generated, specs)
    ids = [c.id for c in generated.customers]
    limit = allowed_calls(extensions, args.page_cap)
    row = Row("6", f"fleet plan through the emulator, {customers}×{extensions}, {latency:g} ms "
              f"latency, page cap {args.page_cap}, parallelism {parallelism}",
              reference="latency bound: calls × latency / parallelism", max_ratio=1.5)
    seen: list[Calls] = []
    stack: list[Any] = []

    def once(repeat: int) -> None:
        if not stack:
            context = emulator_process(generated, work, "case6", latency, args.page_cap)
            stack.append((context, context.__enter__()))
        run, calls = plan_through_emulator(args, stack[0][1], specs, ids, parallelism, work,
                                           f"case6-p{parallelism}-{repeat}")
        row.runs.append(run)
        seen.append(calls)

    def finish() -> None:
        if stack:
            stack[0][0].__exit__(None, None, None)
        if not seen:
            return
        worst = max(c.per_customer for c in seen)
        per_run = max(c.per_run for c in seen)
        # With no latency there is no bound to be near: the ratio is then not a target.
        row.reference_value = (
            statistics.median(c.total for c in seen) * latency / 1000 / parallelism
        )
        row.extra = f"≤ {limit} calls/customer (got {worst:.2f}, + {per_run} per run)"
        row.extra_met = worst <= limit and per_run <= MAX_PER_RUN_CALLS

    return Setup(row, once, finish)


# ---- main ----------------------------------------------------------------------------------------

ALL_CASES = {1, 2, 3, 4, 5, 6}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="Scale benchmark of pbx-reconciler: one table of wall time, peak RSS and "
        "the ratio of each case to its reference, all measured in the same run; every case "
        "verifies its result against the generator's record.",
    )
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--extensions", type=int, default=100, help="extensions per customer")
    parser.add_argument("--cases", default="1,2,3,4,5,6", help="comma-separated cases (1-6)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--change-share", type=float, default=0.1,
                        help="share of accounts that differ in cases 2 and 4")
    parser.add_argument("--emulator-customers", type=int, default=200)
    parser.add_argument("--emulator-extensions", type=int, default=50)
    parser.add_argument("--emulator-latency-ms", type=float, default=30.0,
                        help="latency the emulator adds to every call (cases 5 and 6)")
    parser.add_argument("--fleet-customers", type=int, default=1000)
    parser.add_argument("--fleet-extensions", type=int, default=20)
    parser.add_argument("--page-cap", type=int, default=100,
                        help="most items the emulator returns per page (cases 5 and 6)")
    parser.add_argument("--parallelism", type=int, default=16,
                        help="parallelism of the fast runs of cases 5 and 6 (1-64)")
    parser.add_argument("--runner", default=None, metavar="CMD",
                        help="for testing the benchmark only: run CMD instead of "
                        "'python -m reconciler' (split like a shell command line)")
    parser.add_argument("--workdir", type=Path,
                        help="keep generated files here (default: a temp dir)")
    parser.add_argument("--format", dest="fmt", choices=["text", "markdown"], default="text")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    try:
        args.cases = sorted({int(c) for c in args.cases.split(",") if c.strip()})
    except ValueError:
        parser.error("--cases takes numbers such as 1,2,3")
    if not set(args.cases) <= ALL_CASES:
        parser.error("cases are 1 to 6")
    if args.repeat < 1 or args.customers < 1 or args.extensions < 1:
        parser.error("--repeat, --customers and --extensions must be positive")
    if not 1 <= args.parallelism <= 64:
        parser.error("--parallelism is 1 to 64")
    args.runner = shlex.split(args.runner) if args.runner else list(RUNNER)
    return args


def run(args: argparse.Namespace, work: Path) -> list[Row]:
    setups: list[Setup] = []
    case1: Row | None = None
    if {1, 2, 3} & set(args.cases):
        setup = case_plan_no_change(args, work)
        case1 = setup.row
        setups.append(setup)  # cases 2 and 3 are measured against case 1, so it always runs
    if 2 in args.cases and case1 is not None:
        setups.append(case_plan_changed(args, work, case1))
    if 3 in args.cases and case1 is not None:
        setups.append(case_apply_empty(args, work, case1))
    if 4 in args.cases:
        setups.append(case_one_customer(args, work))
    for number, make in ((5, case_emulator), (6, case_fleet)):
        if number in args.cases:
            through_emulator = make(args, work)
            if through_emulator is not None:
                setups.append(through_emulator)
    # Repeats are interleaved (1, 2, 3, 4, 1, 2, …) so a busy spell hits every case alike.
    try:
        for repeat in range(args.repeat):
            for setup in setups:
                if setup.row.wrong is not None:
                    continue  # a wrong result is final: its time is not measured again
                log(f"repeat {repeat + 1}/{args.repeat}: case {setup.row.case}")
                try:
                    setup.measure_once(repeat)
                except WrongResult as exc:
                    setup.row.wrong = str(exc)
                    log(f"case {setup.row.case}: WRONG: {exc}")
    finally:
        for setup in setups:
            setup.finish()
    return [s.row for s in setups]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        work = args.workdir.resolve()
        cleanup = False
    else:
        work = Path(tempfile.mkdtemp(prefix="reconciler-bench-"))
        cleanup = True
    try:
        rows = run(args, work)
    except BenchFailure as exc:
        log(f"benchmark failed: {exc}")
        return 1
    finally:
        if cleanup:
            shutil.rmtree(work, ignore_errors=True)
    print(render_table(rows, args.fmt))
    print(f"\n{os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, median of {args.repeat} "
          f"run(s); ratio = wall / reference wall, measured in the same run.")
    for number in (5, 6):
        if number in args.cases and not any(r.case == str(number) for r in rows):
            print(f"case {number} (PortaBilling emulator) skipped: "
                  "reconciler.emulator is not available.")
    wrong = [r for r in rows if r.wrong is not None]
    for row in wrong:
        print(f"case {row.case}: WRONG RESULT: {row.wrong}")
    missed = [r.case for r in rows if not r.met and r.wrong is None]
    if missed:
        print(f"targets missed: case {', '.join(missed)}")
    if wrong:
        return 1  # a wrong result is never a score
    return 1 if (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
