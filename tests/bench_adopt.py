"""Adopt at fleet scale: ``python -m tests.bench_adopt [--customers 1000 --extensions 100]``.

Cases, each compared with a no-change ``plan`` of the same fleet measured in the same run
(repeats interleaved, medians compared, so the ratios hold on a busy machine when the seconds
do not):

1. ``adopt`` with no drift (no file is written): wall <= 1.5 x the no-change plan.
2. ``adopt`` with ``--change-share`` (default 10%) of the accounts drifted in billing
   (renames, add-ons, DIDs, accounts missing from billing): wall <= 3 x the no-change plan.
   Every repeat starts from fresh copies of the spec files; after it, a plan of the adopted
   files must show no changes, and every file of a drifted customer must have been rewritten.

Every command runs as its own process (``python -m reconciler``), start-up included. Prints one
table; ``--check`` exits 1 when a target is missed. Not collected by pytest (the smoke run is
tests/test_bench_adopt.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.generate import Generated, generate


@dataclass
class Case:
    name: str
    target: float | None  # the largest ratio to the reference that passes
    walls: list[float] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def reconciler(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", "--backend", f"sqlite:///{db}", *args]


def timed(argv: list[str], ok: tuple[int, ...], what: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if result.returncode not in ok:
        raise SystemExit(f"{what}: exit {result.returncode}\n{result.stderr[-2000:]}")
    return wall, result.stdout


def load(db: Path, generated: Generated, work: Path) -> None:
    state = generated.write_state_file(work / f"{db.stem}.yaml")
    subprocess.run([*reconciler(db, "state", "load", str(state))], check=True, capture_output=True)


def run(args: argparse.Namespace) -> list[Case]:
    work = Path(tempfile.mkdtemp(prefix="bench-adopt-"))
    try:
        return _run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> list[Case]:
    log(f"generating {args.customers} x {args.extensions} ...")
    clean = generate(args.customers, args.extensions, seed=args.seed)
    drifted = generate(args.customers, args.extensions, change_share=args.change_share,
                       seed=args.seed)
    clean_specs, drift_specs = work / "clean", work / "drift-original"
    clean.write_specs(clean_specs)
    drifted.write_specs(drift_specs)
    clean_db, drift_db = work / "clean.db", work / "drift.db"
    log("loading billing ...")
    load(clean_db, clean, work)
    load(drift_db, drifted, work)

    reference = Case("plan, no change (reference)", None)
    no_drift = Case("adopt, no drift", 1.5)
    with_drift = Case(f"adopt, {args.change_share:.0%} of accounts drifted", 3.0)
    for repeat in range(args.repeat):
        log(f"repeat {repeat + 1}/{args.repeat} ...")
        wall, _ = timed(reconciler(clean_db, "plan", str(clean_specs), "--detailed-exitcode"),
                        (0,), "plan")
        reference.walls.append(wall)
        wall, out = timed(reconciler(clean_db, "adopt", str(clean_specs), "--format", "json"),
                          (0,), "adopt")
        assert json.loads(out)["summary"]["rewritten"] == 0, "adopt rewrote a spec without drift"
        no_drift.walls.append(wall)
        specs = work / f"drift-{repeat}"
        shutil.copytree(drift_specs, specs)
        wall, out = timed(reconciler(drift_db, "adopt", str(specs), "--format", "json"),
                          (0,), "adopt")
        with_drift.walls.append(wall)
        summary = json.loads(out)["summary"]
        expected = len(drifted.changed_customers())
        assert summary["rewritten"] == expected, (
            f"{summary['rewritten']} files rewritten, {expected} drifted"
        )
        if repeat == 0:
            _, out = timed(reconciler(drift_db, "plan", str(specs), "--format", "json"), (0,),
                           "plan after adopt")
            assert json.loads(out)["summary"]["changes"] == 0, (
                "a plan after adopt still has changes"
            )
        shutil.rmtree(specs)
    return [reference, no_drift, with_drift]


def render(cases: list[Case], args: argparse.Namespace) -> str:
    reference = cases[0].wall
    lines = [
        (f"adopt benchmark: {args.customers} customers x {args.extensions} extensions, "
         f"median of {args.repeat} (provisional on a shared machine)"),
        "| case | wall s | x plan | target | met |",
        "|---|---:|---:|---:|---|",
    ]
    for case in cases:
        ratio = case.wall / reference
        target = "" if case.target is None else f"<= {case.target}"
        met = "" if case.target is None else ("yes" if ratio <= case.target else "NO")
        lines.append(f"| {case.name} | {case.wall:.2f} | {ratio:.2f} | {target} | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_adopt",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--extensions", type=int, default=100, help="extensions per customer")
    parser.add_argument("--change-share", type=float, default=0.1, help="share of accounts drifted")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    cases = run(args)
    print(render(cases, args))
    missed = [c for c in cases if c.target is not None and c.wall / cases[0].wall > c.target]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
