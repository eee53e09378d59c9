"""`reconciler apply`: plan (or read a saved plan), confirm, write, report."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from reconciler.apply import StopSignals, apply_plan
from reconciler.cli.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Context,
    annotate,
    err,
    out,
    pass_context,
    safety_options,
    selection_options,
    styler,
)
from reconciler.cli.plan import _compute_plan
from reconciler.errors import UsageError, interrupt_exit_code
from reconciler.selection import Selection

if TYPE_CHECKING:
    from reconciler.apply import ApplyOutcome
    from reconciler.backends.base import Backend
    from reconciler.owners import OwnersMap
    from reconciler.plan import Plan


def _confirm(count: int) -> bool:
    if not sys.stdin.isatty():
        raise UsageError(
            "refusing to apply: no terminal to confirm on; review the plan and pass --auto-approve"
        )
    answer = click.prompt(f"Apply {count} change(s)? Only 'yes' is accepted", default="",
                          show_default=False)
    return bool(answer.strip() == "yes")


@click.command(short_help="Apply the plan of specs, or a saved plan.")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False),
              help="Apply this saved plan exactly.")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation (CI).")
@click.option("--force", is_flag=True, help="Apply plans marked unsafe.")
@safety_options
@selection_options
@pass_context
def apply(obj: Context, paths: tuple[str, ...], plan_file: str | None, auto_approve: bool,
          force: bool, unsafe_share: float, unsafe_min_accounts: int, selection: Selection) -> None:
    """Plan, then apply the changes (or apply a saved plan with --plan).

    Ctrl-C (SIGINT) or SIGTERM while writing: the write in flight finishes and is recorded in
    the audit log, nothing more is started, what was applied is listed per customer, and the
    exit code is 130 (143 for SIGTERM).
    """
    if plan_file and paths:
        raise UsageError("give spec PATHs or --plan FILE, not both")
    if not plan_file and not paths:
        raise UsageError("give spec PATHs to plan and apply, or --plan FILE")
    # From the approval on (or from an interrupt while planning), signals only ask to stop: the
    # run stops at the next safe point, and the report and the closing of the backend (which may
    # wait for reads in flight) are not cut short by a second Ctrl-C.
    signals = StopSignals(announce=err)
    failed = False
    owners = obj.owners(paths)  # before the backend: a map missing in CI stops the run at once
    try:
        with obj.backend() as backend:
            try:
                result, commit = _plan_and_confirm(obj, backend, paths, plan_file, auto_approve,
                                                   unsafe_share, unsafe_min_accounts, selection,
                                                   owners)
            except KeyboardInterrupt as exc:
                signals.install(already=interrupt_exit_code(exc) - 128)
                signals.settle()
                err("interrupted; nothing was changed")
            else:
                signals.install()
                outcomes = apply_plan(result, backend, force=force, commit=commit,
                                      stop=signals.requested)
                failed = _report(outcomes, interrupted=signals.requested()) or bool(result.errors)
                signals.settle()  # everything is written: a signal from here on stops nothing
                if any(o.done for o in outcomes):
                    _report_head(backend)
                if signals.requested():
                    _report_interrupt(outcomes, signals, backend.audit_location(), paths, plan_file)
                else:
                    _report_summary(outcomes)
    finally:
        signals.restore()
    if signals.requested():
        sys.exit(signals.exit_code)
    sys.exit(EXIT_PROBLEM if failed else EXIT_OK)


def _plan_and_confirm(obj: Context, backend: Backend, paths: tuple[str, ...], plan_file: str | None,
                      auto_approve: bool, unsafe_share: float, unsafe_min_accounts: int,
                      selection: Selection, owners: OwnersMap | None) -> tuple[Plan, str | None]:
    """The plan to apply and the commit it comes from; exits when there is nothing to do.

    Nothing is written here: an interrupt (KeyboardInterrupt) is left to the caller.
    """
    from reconciler.apply import git_commit
    from reconciler.render.text import render_text

    try:
        if plan_file:
            from reconciler.plan import check_plan_backend, read_plan_file

            result = read_plan_file(plan_file)
            check_plan_backend(result, backend)
            result.customers = [c for c in result.customers if selection.wants(c.customer)]
            if owners is not None:
                from reconciler.owners import check_saved_plan

                check_saved_plan(result, owners)
            # The commit the specs were at when the plan was made (plan --out records it): the
            # plan was computed from them, whatever the repository holds now.
            commit = result.git_commit or os.environ.get("GITHUB_SHA") or None
        else:
            # With the state it was computed from, so a customer that changes before its turn is
            # explained field by field, as for a saved plan.
            result = _compute_plan(obj, backend, paths, None, unsafe_share, unsafe_min_accounts,
                                   selection, snapshot=True, owners=owners)
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
    except click.exceptions.Abort as exc:
        # click.prompt turns Ctrl-C into Abort: the caller reports it as the interrupt it was.
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise exc.__context__ from None
        err("Apply cancelled (no answer); nothing was changed.")
        sys.exit(EXIT_PROBLEM)
    return result, commit


def _report(outcomes: list[ApplyOutcome], *, interrupted: bool = False) -> bool:
    """One line per customer that had work (and what was done where it stopped); True if any failed.

    A customer that did not apply is told on standard error; after an interrupt the whole report
    is one account of what happened, and all of it goes to standard output, in order.
    """
    from reconciler.apply import APPLIED, INTERRUPTED, NOT_STARTED, NOTHING
    from reconciler.render.text import describe_change

    failed = False
    for outcome in outcomes:
        if outcome.status == NOTHING:
            continue
        line = f"customer {outcome.customer}: {outcome.status}"
        if outcome.status == APPLIED:
            line += f", {len(outcome.done)} change(s)"
        elif outcome.status == INTERRUPTED:
            line += f" after {len(outcome.done)} of {outcome.planned} change(s); these were made:"
        elif outcome.status != NOT_STARTED:
            failed = True
            line += f": {outcome.message}"
            if outcome.done:
                line += (f"; {len(outcome.done)} of {outcome.planned} change(s) were made "
                         "before it stopped:")
        to_err = not outcome.ok and not interrupted
        (err if to_err else out)(line)
        if not outcome.ok:
            for change in outcome.done:
                (err if to_err else out)(f"    done: {describe_change(change)}")
    return failed


def _report_head(backend: Backend) -> None:
    """The audit log's head after this run, for CI to keep and pin
    (`history --verify --expect-head`)."""
    from reconciler.errors import ReconcilerError

    try:
        count, head = backend.audit_head()
    except ReconcilerError as exc:
        err(f"warning: cannot read the audit log's head: {exc}")
        return
    err(f"audit log head: {head} ({count} entries)")


def _report_summary(outcomes: list[ApplyOutcome]) -> None:
    """The last line of an apply: how many customers were applied, and how many were not, why."""
    from reconciler.apply import APPLIED, NOTHING

    applied = [o for o in outcomes if o.status == APPLIED]
    if not applied and all(o.status == NOTHING for o in outcomes):
        return
    parts = [f"{len(applied)} customer(s) applied ({sum(len(o.done) for o in applied)} change(s))"]
    others: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.status not in (APPLIED, NOTHING):
            others[outcome.status] = others.get(outcome.status, 0) + 1
    parts += [f"{count} {status}" for status, count in others.items()]
    click.echo(f"Apply: {', '.join(parts)}.", err=bool(others))


def _report_interrupt(outcomes: list[ApplyOutcome], signals: StopSignals, audit_log: str,
                      paths: tuple[str, ...], plan_file: str | None) -> None:
    from reconciler.apply import APPLIED, INTERRUPTED, NOT_STARTED

    applied = sum(1 for o in outcomes if o.status == APPLIED)
    cut = [o for o in outcomes if o.status == INTERRUPTED]
    waiting = sum(1 for o in outcomes if o.status == NOT_STARTED)
    parts = [f"{applied} customer(s) applied in full"]
    parts += [f"customer {o.customer} stopped after {len(o.done)} of {o.planned} change(s)"
              for o in cut]
    parts.append(f"{waiting} customer(s) not started")
    if plan_file:
        # The saved plan is out of date for every customer it changed: applied again, those are
        # refused as stale. What is left is found by planning again from the specs.
        advice = (f"to finish, plan again from the specs and apply that plan (or run `reconciler "
                  f"apply` on the specs): {plan_file} is out of date for the customers it changed")
    else:
        advice = f"to finish, run `reconciler apply {' '.join(paths)}` again: it plans what is left"
    out(
        f"interrupted ({signals.name}): {'; '.join(parts)}. Every change made is in the audit log "
        f"({audit_log}); {advice}."
    )
