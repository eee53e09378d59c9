"""The scale benchmark: ``python -m tests.bench [--customers 1000 --extensions 100 --cases 1,2,3,4,5]``.

Every measured command runs as its own process (``python -m reconciler …``), so its wall time
includes start-up and its peak RSS is its own (read with ``os.wait4``). Each case is compared
with a reference measured in the same run, repeats interleaved, so the ratios hold on a busy
machine even when the seconds do not. Prints one table; ``--check`` exits 1 when a target is
missed. Not collected by pytest (the smoke version is tests/test_bench_smoke.py).

Cases (targets for a 2-core machine):

1. plan, no change, N × M accounts, embedded backend: wall ≤ 2.5 × PyYAML's C loader
   (``yaml.load_all`` with ``CSafeLoader`` in a process loading the same spec files);
   peak RSS ≤ 400 MB.
2. plan with ``--change-share`` of the accounts changed: ≤ 1.2 × case 1.
3. apply from a billing state with customers, agreements and pools but no accounts (creates
   every account with its add-ons and DIDs): ≤ 3 × case 1.
4. plan of one changed customer's file against all N customers: ≤ 1.5 × planning the same file
   against a database that holds only that customer.
5. PortaBilling emulator (200 × 50 by default, 5 ms latency): API calls per customer ≤ 8 plus
   pages, and parallelism 8 at least 5 × faster than parallelism 1. Runs only when
   ``reconciler.emulator`` is importable.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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


def measure(argv: list[str], *, workdir: Path, label: str, env: dict[str, str] | None = None) -> Run:
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


def reconciler(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", "--backend", f"sqlite:///{db}", *args]


def plan_ops(run: Run) -> Counter[str]:
    data = json.loads(run.stdout.read_text(encoding="utf-8"))
    return Counter(c["op"] for customer in data["customers"] for c in customer["changes"])


def plan_errors(run: Run) -> int:
    return int(json.loads(run.stdout.read_text(encoding="utf-8"))["summary"]["errors"])


class BenchFailure(Exception):
    """A measured command did not do what it should: the numbers would mean nothing."""


def expect(run: Run, ok_codes: tuple[int, ...], what: str) -> None:
    if run.code not in ok_codes:
        tail = run.stderr.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise BenchFailure(f"{what}: exit {run.code}\n{tail}")


# ---- the table ------------------------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    what: str
    runs: list[Run] = field(default_factory=list)
    reference: str = ""
    reference_runs: list[Run] = field(default_factory=list)
    reference_row: Row | None = None  # the reference is another case's median
    max_ratio: float | None = None
    max_rss_mb: float | None = None
    extra: str = ""  # a case with its own verdict (the emulator case)
    extra_met: bool | None = None

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def rss(self) -> float:
        return max(r.rss_mb for r in self.runs)

    @property
    def reference_wall(self) -> float | None:
        if self.reference_row is not None:
            return self.reference_row.wall
        if self.reference_runs:
            return statistics.median(r.wall for r in self.reference_runs)
        return None

    @property
    def ratio(self) -> float | None:
        ref = self.reference_wall
        return self.wall / ref if ref else None

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
        ok = True
        if self.max_ratio is not None and self.ratio is not None:
            ok &= self.ratio <= self.max_ratio
        if self.max_rss_mb is not None:
            ok &= self.rss <= self.max_rss_mb
        if self.extra_met is not None:
            ok &= self.extra_met
        return ok


def render_table(rows: list[Row], fmt: str) -> str:
    header = ["case", "what", "wall s", "peak RSS MB", "reference", "ref s", "ratio", "target", "met"]
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
            "yes" if row.met else "NO",
        ])
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip()
             for cells in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---- the cases -------------------------------------------------------------------------------------------


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


def write_specs(generated: Generated, folder: Path, customer_ids: list[int] | None = None) -> list[Path]:
    """Spec files in an emptied folder: a reused --workdir must not keep another run's files."""
    shutil.rmtree(folder, ignore_errors=True)
    return generated.write_specs(folder, customer_ids)


def case_plan_no_change(args: argparse.Namespace, work: Path) -> Setup:
    log(f"case 1: generating {args.customers} × {args.extensions} without differences …")
    same = generate(args.customers, args.extensions, seed=args.seed)
    specs = work / "specs-same"
    write_specs(same, specs)
    db = load_db(work / "same.db", same)
    row = Row("1", f"plan, no change, {args.customers}×{args.extensions} "
              f"({same.account_count} accounts)", reference="PyYAML CSafeLoader, same files",
              max_ratio=2.5, max_rss_mb=400)

    def once(repeat: int) -> None:
        ref = measure([sys.executable, "-c", YAML_REFERENCE, str(specs)], workdir=work,
                      label=f"yaml-{repeat}")
        expect(ref, (0,), "PyYAML reference")
        row.reference_runs.append(ref)
        run = measure(reconciler(db, "plan", str(specs), "--format", "json"), workdir=work,
                      label=f"case1-{repeat}")
        expect(run, (0,), "case 1 plan")
        if plan_ops(run) or plan_errors(run):
            raise BenchFailure(f"case 1: the plan should be empty: {plan_ops(run)}")
        row.runs.append(run)

    return Setup(row, once)


def case_plan_changed(args: argparse.Namespace, work: Path, case1: Row) -> Setup:
    log(f"case 2: generating {args.customers} × {args.extensions} with "
        f"{args.change_share:.0%} of the accounts different …")
    changed = generate(args.customers, args.extensions, seed=args.seed, change_share=args.change_share)
    specs = work / "specs-changed"
    write_specs(changed, specs)
    db = load_db(work / "changed.db", changed)
    expected = changed.expected_ops()
    row = Row("2", f"plan, {args.change_share:.0%} of accounts changed "
              f"({sum(expected.values())} changes)", reference="case 1", reference_row=case1,
              max_ratio=1.2)

    def once(repeat: int) -> None:
        run = measure(reconciler(db, "plan", str(specs), "--format", "json"), workdir=work,
                      label=f"case2-{repeat}")
        expect(run, (0,), "case 2 plan")
        if plan_ops(run) != expected or plan_errors(run):
            raise BenchFailure(f"case 2: plan {plan_ops(run)} != generated {expected}")
        row.runs.append(run)

    return Setup(row, once)


def case_apply_empty(args: argparse.Namespace, work: Path, case1: Row) -> Setup:
    log("case 3: billing with customers, agreements and pools but no accounts …")
    same = generate(args.customers, args.extensions, seed=args.seed)
    specs = work / "specs-same"  # written by case 1, which runs whenever case 3 does
    template = load_db(work / "empty-template.db", same, accounts=False)
    expected_accounts = same.account_count
    expected_aliases = sum(len(e.dids) for c in same.customers for e in c.entries)
    row = Row("3", f"apply from empty billing (creates {expected_accounts} accounts)",
              reference="case 1", reference_row=case1, max_ratio=3)
    db = work / "apply.db"

    def once(repeat: int) -> None:
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, db)
        run = measure(reconciler(db, "apply", str(specs), "--auto-approve"), workdir=work,
                      label=f"case3-{repeat}")
        expect(run, (0,), "case 3 apply")
        with sqlite3.connect(db) as check:
            accounts = check.execute("SELECT count(*) FROM accounts").fetchone()[0]
            aliases = check.execute("SELECT count(*) FROM aliases").fetchone()[0]
        if (accounts, aliases) != (expected_accounts, expected_aliases):
            raise BenchFailure(f"case 3: billing has {accounts} accounts and {aliases} aliases, "
                               f"not {expected_accounts} and {expected_aliases}")
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
    expected = one.expected_ops([customer.id])
    row = Row("4", f"plan one changed customer's file ({sum(expected.values())} changes) "
              f"among {args.customers}", reference="same file, database of that customer only",
              max_ratio=1.5)

    def once(repeat: int) -> None:
        ref = measure(reconciler(alone, "plan", str(spec_file), "--format", "json"), workdir=work,
                      label=f"case4-alone-{repeat}")
        run = measure(reconciler(full, "plan", str(spec_file), "--format", "json"), workdir=work,
                      label=f"case4-full-{repeat}")
        for what, measured in (("alone", ref), ("full", run)):
            expect(measured, (0,), f"case 4 plan ({what})")
            if plan_ops(measured) != expected:
                raise BenchFailure(f"case 4 ({what}): plan {plan_ops(measured)} != {expected}")
        row.reference_runs.append(ref)
        row.runs.append(run)

    return Setup(row, once)


# ---- case 5: the PortaBilling emulator ------------------------------------------------------------------
#
# HOOK: runs only when reconciler.emulator exists (another engineer's work in progress).
# Its API as agreed: EmulatorServer(state, *, db_path=None, page_cap=100, latency_ms=0,
# login=..., password=...), .start(), .stop(), .url, .call_counts.


EMULATOR_LOGIN, EMULATOR_PASSWORD = "bench", "bench-password"


def emulator_available() -> bool:
    try:
        return importlib.util.find_spec("reconciler.emulator") is not None
    except ModuleNotFoundError:
        return False


def case_emulator(args: argparse.Namespace, work: Path) -> Setup | None:
    if not emulator_available():
        log("case 5: skipped: reconciler.emulator does not exist yet")
        return None
    from reconciler.emulator import EmulatorServer

    customers, extensions = args.emulator_customers, args.emulator_extensions
    log(f"case 5: emulator with {customers} × {extensions}, {args.emulator_latency_ms:g} ms latency …")
    generated = generate(customers, extensions, seed=args.seed)
    specs = work / "specs-emulator"
    write_specs(generated, specs)
    # "8 + pages": eight calls per customer when every list fits in one page; each list read
    # (accounts, extensions, DIDs) longer than the server's page cap costs one call per extra page.
    page_cap = 100
    extra_pages = 3 * (-(-(extensions + 1) // page_cap) - 1)
    allowed_calls = 8 + extra_pages
    row = Row("5", f"PortaBilling emulator plan, {customers}×{extensions}, "
              f"{args.emulator_latency_ms:g} ms latency, parallelism 8",
              reference="same, parallelism 1", max_ratio=0.2)
    calls_per_customer: list[float] = []

    def run_with(parallelism: int, label: str) -> Run:
        server = EmulatorServer(generated.state(), page_cap=page_cap,
                                latency_ms=args.emulator_latency_ms,
                                login=EMULATOR_LOGIN, password=EMULATOR_PASSWORD)
        server.start()
        try:
            run = measure(
                [sys.executable, "-m", "reconciler", "--backend", server.url, "--parallelism",
                 str(parallelism), "plan", str(specs), "--format", "json"],
                workdir=work, label=label,
                env={"PORTABILLING_LOGIN": EMULATOR_LOGIN,
                     "PORTABILLING_PASSWORD": EMULATOR_PASSWORD},
            )
            counts = server.call_counts
        finally:
            server.stop()
        expect(run, (0,), f"case 5 plan (parallelism {parallelism})")
        if plan_ops(run) or plan_errors(run):
            raise BenchFailure(f"case 5: the plan should be empty: {plan_ops(run)}")
        # Logging in and reading the product catalogue happen once per run, not per customer.
        per_customer = sum(n for method, n in counts.items()
                           if not method.startswith(("Session/", "Product/")))
        calls_per_customer.append(per_customer / customers)
        return run

    def once(repeat: int) -> None:
        row.reference_runs.append(run_with(1, f"case5-p1-{repeat}"))
        row.runs.append(run_with(8, f"case5-p8-{repeat}"))

    def finish() -> None:
        worst = max(calls_per_customer)
        row.extra = f"≤ {allowed_calls} calls/customer (got {worst:.1f})"
        row.extra_met = worst <= allowed_calls

    return Setup(row, once, finish)


# ---- main ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="Scale benchmark of pbx-reconciler: one table of wall time, peak RSS and "
        "the ratio of each case to its reference, all measured in the same run.",
    )
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--extensions", type=int, default=100, help="extensions per customer")
    parser.add_argument("--cases", default="1,2,3,4,5", help="comma-separated cases (1-5)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--change-share", type=float, default=0.1,
                        help="share of accounts that differ in cases 2 and 4")
    parser.add_argument("--emulator-customers", type=int, default=200)
    parser.add_argument("--emulator-extensions", type=int, default=50)
    parser.add_argument("--emulator-latency-ms", type=float, default=5.0)
    parser.add_argument("--workdir", type=Path, help="keep generated files here (default: a temp dir)")
    parser.add_argument("--format", dest="fmt", choices=["text", "markdown"], default="text")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    try:
        args.cases = sorted({int(c) for c in args.cases.split(",") if c.strip()})
    except ValueError:
        parser.error("--cases takes numbers such as 1,2,3")
    if not set(args.cases) <= {1, 2, 3, 4, 5}:
        parser.error("cases are 1 to 5")
    if args.repeat < 1 or args.customers < 1 or args.extensions < 1:
        parser.error("--repeat, --customers and --extensions must be positive")
    return args


def run(args: argparse.Namespace, work: Path) -> list[Row]:
    setups: list[Setup] = []
    case1: Row | None = None
    if {1, 2, 3} & set(args.cases):
        setup = case_plan_no_change(args, work)
        case1 = setup.row
        setups.append(setup)  # cases 2 and 3 are measured against case 1, so it always runs
    if 2 in args.cases:
        assert case1 is not None
        setups.append(case_plan_changed(args, work, case1))
    if 3 in args.cases:
        assert case1 is not None
        setups.append(case_apply_empty(args, work, case1))
    if 4 in args.cases:
        setups.append(case_one_customer(args, work))
    if 5 in args.cases:
        emulator = case_emulator(args, work)
        if emulator is not None:
            setups.append(emulator)
    # Repeats are interleaved (1, 2, 3, 4, 1, 2, …) so a busy spell hits every case alike.
    for repeat in range(args.repeat):
        for setup in setups:
            log(f"repeat {repeat + 1}/{args.repeat}: case {setup.row.case}")
            setup.measure_once(repeat)
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
    if 5 in args.cases and not any(r.case == "5" for r in rows):
        print("case 5 (PortaBilling emulator) skipped: reconciler.emulator is not available.")
    missed = [r.case for r in rows if not r.met]
    if missed:
        print(f"targets missed: case {', '.join(missed)}")
    return 1 if (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
