"""`reconciler plan`: what apply would change."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from reconciler.backends.base import Backend
from reconciler.cli.common import (
    EXIT_CHANGES,
    EXIT_OK,
    EXIT_PROBLEM,
    Context,
    annotate,
    dump_json,
    emit_plan,
    err,
    format_option,
    pass_context,
    paths_argument,
    safety_options,
    selection_options,
    write_atomically,
)
from reconciler.errors import UsageError
from reconciler.plan import PlanOptions
from reconciler.selection import Selection

if TYPE_CHECKING:
    from reconciler.owners import OwnersMap


def _compute_plan(obj: Context, backend: Backend, paths: tuple[str, ...], changed_since: str | None,
                  unsafe_share: float, unsafe_min_accounts: int,
                  selection: Selection | None = None, snapshot: bool = False,
                  owners: OwnersMap | None = None):  # type: ignore[no-untyped-def]
    from reconciler.runner import build_plan

    options = PlanOptions(unsafe_share=unsafe_share, unsafe_min_accounts=unsafe_min_accounts,
                          snapshot=snapshot)
    if changed_since is None:
        return build_plan(list(paths), backend, options=options, selection=selection, owners=owners)
    from reconciler.gitchanges import GitChangesError, changed_spec_files

    try:
        changes = changed_spec_files(changed_since, list(paths))
    except GitChangesError as exc:
        raise UsageError(str(exc)) from exc
    plan = build_plan(None, backend, options=options, files=sorted(changes.changed),
                      selection=selection, owners=owners)
    for deleted in changes.deleted:
        plan.notes.append(
            f"{deleted} was deleted since {changed_since}: its accounts are left as they are "
            "(a deleted spec never prunes)"
        )
    if not changes.changed:
        plan.notes.append(f"no spec file changed since {changed_since}")
    return plan


@click.command()
@paths_argument
@format_option
@click.option("--out", type=click.Path(dir_okay=False),
              help="Save the plan (JSON) to FILE for `apply --plan`.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 no changes, 2 changes present, 1 error.")
@click.option("--changed-since", metavar="REF",
              help="Only customers whose spec files changed since git REF.")
@safety_options
@selection_options
@pass_context
def plan(obj: Context, paths: tuple[str, ...], fmt: str, out: str | None, detailed_exitcode: bool,
         changed_since: str | None, unsafe_share: float, unsafe_min_accounts: int,
         selection: Selection) -> None:
    """Show what apply would change."""
    owners = obj.owners(paths)  # before the backend: a map missing in CI stops the run at once
    with obj.backend() as backend:
        result = _compute_plan(obj, backend, paths, changed_since, unsafe_share,
                               unsafe_min_accounts, selection, snapshot=bool(out), owners=owners)
    if out:
        from reconciler.apply import git_commit

        # What apply --plan records: the commit the specs were at when this plan was made.
        result.git_commit = git_commit(list(paths))
    data = result.to_dict(with_state=bool(out))
    if out:
        write_atomically(out, lambda stream: dump_json(data, stream))
        err(f"plan saved to {out}")
        for customer in data["customers"]:
            customer.pop("state_at_plan", None)  # for apply --plan only, not for the output
    emit_plan(data, fmt)
    annotate(data)
    if result.error_count:
        sys.exit(EXIT_PROBLEM)
    if detailed_exitcode and result.change_count:
        sys.exit(EXIT_CHANGES)
    sys.exit(EXIT_OK)
