"""`reconciler history`: the audit log.

It names the log it read on standard error (standard output stays the entries alone, pure JSON
with ``--format json``). A log that does not exist is not an error (nothing was applied through
it yet: exit 0), but it is said plainly, with where the log is looked for: a PortaBilling audit
log is a local file, relative to the working directory unless RECONCILER_AUDIT_LOG says where.
"""

from __future__ import annotations

import sys

import click

from reconciler.cli.common import CUSTOMER_ID, Context, dump_json, err, out, pass_context


@click.command(short_help="List the applied changes (the audit log).")
@click.option("--customer", "customer_id", type=CUSTOMER_ID, help="Only this customer's changes (i_customer).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people; json: a list of the entries, for tools.")
@pass_context
def history(obj: Context, customer_id: int | None, fmt: str) -> None:
    """The audit log: every applied change with time, plan fingerprint and git commit.

    The log read is named on standard error. A PortaBilling backend's log is a local file:
    .reconciler/audit-HOST_PORT.jsonl in the working directory, or RECONCILER_AUDIT_LOG.
    """
    from reconciler.render.text import describe

    with obj.backend() as backend:
        location = backend.audit_location()
        exists = backend.audit_exists()
        entries = backend.history(customer_id) if exists else []
    if exists:
        err(f"audit log: {location}")
    else:
        err(
            f"no audit log at {location}: nothing has been applied through it. A PortaBilling audit "
            "log is a local file written by apply, relative to the working directory apply ran in "
            "unless RECONCILER_AUDIT_LOG names it; point RECONCILER_AUDIT_LOG at that file to read it."
        )
    if fmt == "json":
        dump_json([e.to_dict() for e in entries], sys.stdout)
        return
    if not entries:
        whose = f" for customer {customer_id}" if customer_id is not None else ""
        out(f"No changes applied yet{whose}.")
    for entry in entries:
        commit = f" commit {entry.git_commit[:12]}" if entry.git_commit else ""
        out(
            f"{entry.time} customer {entry.customer} {describe(entry.change)} "
            f"[{entry.fingerprint[:19]}{commit}]"
        )
