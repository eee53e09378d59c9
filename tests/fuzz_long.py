"""The long reliability run: many fuzz examples, crash trials, interrupt trials, concurrency rounds.

    python -m tests.fuzz_long --examples 5000 --crash-trials 20 --interrupt-trials 40
    --concurrency-rounds 10

runs tests/test_fuzz.py, tests/test_crash.py, tests/test_interrupts.py and
tests/test_concurrency_many.py (and, with
``--all``, the other reliability tests) with those settings, then prints the figures the tests
gathered (cases tried, kills survived, ...) and the time taken. The same knobs work with plain
pytest through environment variables:

    RECONCILER_FUZZ_EXAMPLES=5000     examples per fuzz test and per random isolation test (default
                                      40, and 30 for isolation); the pure schema property tests
                                      use four times as many (default 100)
    RECONCILER_CRASH_TRIALS=20        apply runs killed with SIGKILL (default 3)
    RECONCILER_INTERRUPT_TRIALS=40    trials of applies sent SIGINT/SIGTERM, per backend (default 2)
    RECONCILER_CONCURRENCY_ROUNDS=10  rounds of four concurrent applies (default 1)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter

FILES = ["tests/test_fuzz.py", "tests/test_crash.py", "tests/test_interrupts.py",
         "tests/test_concurrency_many.py"]
OTHERS = ["tests/test_hostile.py", "tests/test_isolation.py", "tests/test_secrets_sqlite.py"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz_long", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=5000,
                        help="hypothesis examples per fuzz test")
    parser.add_argument("--crash-trials", type=int, default=20, help="SIGKILL trials of apply")
    parser.add_argument("--interrupt-trials", type=int, default=40,
                        help="trials per backend of applies interrupted with SIGINT/SIGTERM")
    parser.add_argument("--concurrency-rounds", type=int, default=10,
                        help="rounds of four concurrent applies")
    parser.add_argument("--all", action="store_true",
                        help="also run hostile, isolation and secrets tests")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    parser.add_argument("files", nargs="*",
                        help="test files (default: fuzz, crash, interrupts, concurrency)")
    args = parser.parse_args(argv)

    handle, figures_path = tempfile.mkstemp(prefix="reliability-figures-", suffix=".jsonl")
    os.close(handle)
    os.environ.update({
        "RECONCILER_FUZZ_EXAMPLES": str(args.examples),
        "RECONCILER_CRASH_TRIALS": str(args.crash_trials),
        "RECONCILER_INTERRUPT_TRIALS": str(args.interrupt_trials),
        "RECONCILER_CONCURRENCY_ROUNDS": str(args.concurrency_rounds),
        "RECONCILER_FIGURES_FILE": figures_path,
    })
    import pytest  # imported after the environment is set: the tests read it at import time

    files = args.files or (FILES + (OTHERS if args.all else []))
    pytest_args = ["-q", "-p", "no:cacheprovider", "-o", "addopts=", *files]
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    start = time.monotonic()
    code = pytest.main(pytest_args)
    seconds = time.monotonic() - start

    totals: Counter[str] = Counter()
    with open(figures_path, encoding="utf-8") as lines:
        for line in lines:
            totals.update(json.loads(line))
    os.unlink(figures_path)
    print(f"\nreliability figures ({seconds:.0f} s, pytest exit {code}):")
    for name, count in sorted(totals.items()):
        print(f"  {count:>8}  {name}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
