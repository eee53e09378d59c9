"""`reconciler doctor`: a read-only check of a PortaBilling server, before the first plan."""

from __future__ import annotations

import os
import sys

import click

from reconciler.cli.common import (
    CUSTOMER_ID,
    EXIT_OK,
    EXIT_PROBLEM,
    Context,
    dump_json,
    err,
    out,
    pass_context,
)


@click.command(short_help="Check a PortaBilling server, read-only.")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--customer",
    "customer_id",
    type=CUSTOMER_ID,
    help="The customer whose reads to check (i_customer; default: the first spec's, else the first "
    "customer billing lists).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help='text for people; json for tools: {"ok": ..., "checks": [...]}.',
)
@pass_context
def doctor(obj: Context, paths: tuple[str, ...], customer_id: int | None, fmt: str) -> None:
    """Check a PortaBilling server read-only: login, operating mode, products, and one customer's
    reads and fields. Never writes. Exit 0 when nothing fails.

    PATHS (optional) are spec files or folders: the customer of the first spec is the one whose
    reads are checked, unless --customer names one. A path that does not exist is an error.
    """
    from reconciler.doctor import run_doctor
    from reconciler.specfiles import discover

    # A mistyped path is a usage error before anything is checked, as for every other command:
    # doctor must not quietly check some other customer instead.
    files = discover(list(paths)) if paths else []
    chosen = _spec_customer(obj, paths, files) if files and customer_id is None else None

    def spec_customer() -> int | None:
        return chosen

    report = run_doctor(
        obj.backend_url, customer_id=customer_id, spec_customer=spec_customer, env=os.environ
    )
    if fmt == "json":
        dump_json(report.to_dict(), sys.stdout)
    else:
        for line in report.text_lines():
            out(line)
        failed = sum(1 for c in report.checks if c.status == "fail")
        warned = sum(1 for c in report.checks if c.status == "warn")
        out(f"{len(report.checks)} check(s): {failed} failed, {warned} warning(s)")
    sys.exit(EXIT_OK if report.ok else EXIT_PROBLEM)


def _spec_customer(obj: Context, paths: tuple[str, ...], files: list[str]) -> int | None:
    """The first spec's customer; a spec not bound to its customer stops doctor before any read."""
    from reconciler.render.text import where
    from reconciler.runner import load_checked

    owners = obj.owners(paths)
    for path in files:
        loaded = load_checked(path, owners)
        if loaded.disowned:
            for problem in loaded.errors:
                if problem.code == "customer_not_owned":
                    err(f"error[{problem.code}] {where(problem.to_dict())}: {problem.message}")
            sys.exit(EXIT_PROBLEM)
        if loaded.customer_id is not None:
            return loaded.customer_id
    return None
