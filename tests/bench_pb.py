"""Planning many customers through the PortaBilling backend, at several parallelisms.

    python -m tests.bench_pb [--customers 200] [--extensions 50] [--latency-ms 30]
                             [--page-cap 100] [--parallelism 1 8 16 64] [--repeat 3]

Not part of the test run (slow on purpose: every call has added latency). The emulator runs in a
process of its own (as a real server would, it does not share the client's interpreter); each
plan runs as its own process, ``python -m reconciler --backend … --parallelism N plan …``, so
start-up is included and no run is warmed by another. Repeats are interleaved (1, 8, 16, 1, 8, …)
and the median counts. Every run is verified before its time counts: every customer planned, no
change (the specs match billing), no problem; a wrong result exits 1. The same machinery is
case 5 and 6 of ``python -m tests.bench``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as `python tests/bench_pb.py`: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.bench import (
    RUNNER,
    BenchFailure,
    Calls,
    Run,
    WrongResult,
    allowed_calls,
    emulator_process,
    plan_through_emulator,
)
from tests.generate import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_pb",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--extensions", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--page-cap", type=int, default=100)
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if any(not 1 <= p <= 64 for p in args.parallelism):
        parser.error("--parallelism values are 1 to 64")
    args.runner = list(RUNNER)
    work = Path(tempfile.mkdtemp(prefix="reconciler-bench-pb-"))
    runs: dict[int, list[Run]] = {p: [] for p in args.parallelism}
    calls: dict[int, list[Calls]] = {p: [] for p in args.parallelism}
    try:
        generated = generate(args.customers, args.extensions, seed=args.seed)
        specs = work / "specs"
        generated.write_specs(specs)
        ids = [c.id for c in generated.customers]
        print(f"{args.customers} customers x {args.extensions} extensions, {args.latency_ms:g} ms "
              f"added per call, server page cap {args.page_cap}, emulator in its own process",
              flush=True)
        with emulator_process(generated, work, "pb", args.latency_ms, args.page_cap) as server:
            for repeat in range(args.repeat):
                for parallelism in args.parallelism:
                    run, counted = plan_through_emulator(
                        args, server, specs, ids, parallelism, work, f"p{parallelism}-{repeat}")
                    runs[parallelism].append(run)
                    calls[parallelism].append(counted)
    except (WrongResult, BenchFailure) as exc:
        print(f"WRONG RESULT: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    slowest = statistics.median(r.wall for r in runs[min(args.parallelism)])
    limit = allowed_calls(args.extensions, args.page_cap)
    for parallelism in args.parallelism:
        wall = statistics.median(r.wall for r in runs[parallelism])
        per_customer = max(c.per_customer for c in calls[parallelism])
        total = statistics.median(c.total for c in calls[parallelism])
        bound = total * args.latency_ms / 1000 / parallelism
        print(f"  parallelism {parallelism:2d}: {wall:6.2f} s (median of {args.repeat}), "
              f"{slowest / wall:5.1f}x parallelism {min(args.parallelism)}, "
              f"{per_customer:.2f} calls per customer (allowed {limit}) "
              f"+ {max(c.per_run for c in calls[parallelism])} per run, "
              f"latency bound {bound:.2f} s ({wall / bound if bound else float('nan'):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
