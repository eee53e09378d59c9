"""What the audit log's hash chain costs on a large log (not collected by pytest).

    python -m tests.bench_audit [--entries 100000]

For each backend: write a log of N chained entries, then time what a run pays for the chain:
`history --verify` (reads and hashes everything), apply's check before its first write (the
same, once per run), and one append after it (only what was added since is read). Prints one
table; docs/audit.md keeps the last figures.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.backends.base import AuditEntry

DEMO_STATE = Path(__file__).resolve().parent.parent / "specs" / "demo-billing-state.yaml"


def _entries(count: int, start: int) -> list[AuditEntry]:
    return [
        AuditEntry("2026-12-04T00:00:00+00:00", 46170, "add_alias", f"ph46170x{n}",
                   {"op": "add_alias", "account": f"ph46170x{n}", "did": f"1209{n:07d}"},
                   "sha256:" + "ab" * 32, "0123456789abcdef0123456789abcdef01234567")
        for n in range(start, start + count)
    ]


def _timed(action: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds: on a shared machine the CPU time is the figure that holds."""
    began, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - began, time.process_time() - cpu


def _fill(append: Callable[[list[AuditEntry]], None], count: int) -> tuple[float, float]:
    def fill() -> None:
        for start in range(0, count, 1000):
            append(_entries(min(1000, count - start), start))

    return _timed(fill)


def bench_sqlite(folder: Path, count: int) -> dict[str, tuple[float, float]]:
    from reconciler.backends.sqlite import SqliteBackend
    from reconciler.statefile import load_state_file
    from tests.helpers import run_cli

    url = f"sqlite:///{folder / 'billing.db'}"
    with SqliteBackend(url, create=True) as backend:
        backend.load_state(load_state_file(str(DEMO_STATE)))

        def append(entries: list[AuditEntry]) -> None:
            backend.db.execute("BEGIN IMMEDIATE")
            backend.audit_table.append(entries)
            backend.db.execute("COMMIT")

        fill = _fill(append, count)
    figures = {"write the log": fill}
    figures["history --verify"] = _timed(lambda: run_cli("--backend", url, "history", "--verify"))
    with SqliteBackend(url) as backend:
        figures["apply's check before writing"] = _timed(backend.verify_audit)
        backend.db.execute("BEGIN IMMEDIATE")
        figures["one append after it"] = _timed(
            lambda: backend.audit_table.append(_entries(1, count)))
        backend.db.execute("COMMIT")
    return figures


def bench_jsonl(folder: Path, count: int) -> dict[str, tuple[float, float]]:
    from reconciler.backends.portabilling.audit import AuditLog
    from tests.helpers import run_cli

    path = folder / "audit.jsonl"
    fill = _fill(AuditLog(str(path)).append, count)
    figures = {"write the log": fill}
    env = {"RECONCILER_AUDIT_LOG": str(path)}
    figures["history --verify"] = _timed(
        lambda: run_cli("--backend", "portabilling+http://127.0.0.1:9", "history", "--verify",
                        env=env))
    log = AuditLog(str(path))
    figures["apply's check before writing"] = _timed(log.verify)
    figures["one append after it"] = _timed(lambda: log.append(_entries(1, count)))
    print(f"JSON-lines log: {os.path.getsize(path) / 1e6:.1f} MB")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        results = {
            "SQLite": bench_sqlite(Path(temp), args.entries),
            "PortaBilling (JSON lines)": bench_jsonl(Path(temp), args.entries),
        }
    print(f"| {args.entries:,} entries, seconds wall / CPU | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for row in results["SQLite"]:
        cells = [f"{r[row][0]:.2f} / {r[row][1]:.2f}" for r in results.values()]
        print(f"| {row} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
