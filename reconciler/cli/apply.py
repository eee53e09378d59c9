"""`reconciler apply`: plan (or read a saved plan), confirm, write, report."""

from __future__ import annotations

import os
import sys

import click

from reconciler.cli.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Context,
    annotate,
    err,
    pass_context,
    safety_options,
    selection_options,
    styler,
)
from reconciler.cli.plan import _compute_plan
from reconciler.errors import UsageError
from reconciler.selection import Selection


def _confirm(count: int) -> bool:
    if not sys.stdin.isatty():
        raise UsageError(
            "refusing to apply: no terminal to confirm on; review the plan and pass --auto-approve"
        )
    answer = click.prompt(f"Apply {count} change(s)? Only 'yes' is accepted", default="", show_default=False)
    return bool(answer.strip() == "yes")


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), help="Apply this saved plan exactly.")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation (CI).")
@click.option("--force", is_flag=True, help="Apply plans marked unsafe.")
@safety_options
@selection_options
@pass_context
def apply(obj: Context, paths: tuple[str, ...], plan_file: str | None, auto_approve: bool, force: bool,
          unsafe_share: float, unsafe_min_accounts: int, selection: Selection) -> None:
    """Plan, then apply the changes (or apply a saved plan with --plan)."""
    from reconciler.apply import apply_plan, git_commit
    from reconciler.render.text import render_text

    if plan_file and paths:
        raise UsageError("give spec PATHs or --plan FILE, not both")
    if not plan_file and not paths:
        raise UsageError("give spec PATHs to plan and apply, or --plan FILE")
    with obj.backend() as backend:
        if plan_file:
            from reconciler.planfile import read_plan_file
            from reconciler.runner import check_plan_backend

            result = read_plan_file(plan_file)
            check_plan_backend(result, backend)
            result.customers = [c for c in result.customers if selection.wants(c.customer)]
            commit = os.environ.get("GITHUB_SHA") or None
        else:
            result = _compute_plan(obj, backend, paths, None, unsafe_share, unsafe_min_accounts, selection)
            commit = git_commit(list(paths))
        data = result.to_dict()
        click.echo(render_text(data, style=styler(sys.stdout.isatty())))
        annotate(data)
        if result.change_count == 0:
            click.echo("Nothing to apply.")
            sys.exit(EXIT_PROBLEM if result.error_count else EXIT_OK)
        if not plan_file and not auto_approve and not _confirm(result.change_count):
            click.echo("Apply cancelled; nothing was changed.")
            sys.exit(EXIT_PROBLEM)
        outcomes = apply_plan(result, backend, force=force, commit=commit)
    failed = False
    for outcome in outcomes:
        if outcome.status == "no changes":
            continue
        line = f"customer {outcome.customer}: {outcome.status}"
        if outcome.status == "applied":
            line += f", {len(outcome.done)} change(s)"
        else:
            failed = True
            line += f": {outcome.message}"
            if outcome.done:
                line += f"; {len(outcome.done)} of {outcome.planned} change(s) were made before it stopped:"
        click.echo(line, err=not outcome.ok)
        if not outcome.ok:
            from reconciler.render.text import describe

            for change in outcome.done:
                err(f"    done: {describe(change.to_dict())}")
    if result.errors:
        failed = True
    sys.exit(EXIT_PROBLEM if failed else EXIT_OK)
