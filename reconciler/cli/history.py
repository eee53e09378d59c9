"""`reconciler history`: the audit log."""

from __future__ import annotations

import json

import click

from reconciler.cli.common import Context, pass_context


@click.command()
@click.option("--customer", "customer_id", type=int, help="Only this customer's changes.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_context
def history(obj: Context, customer_id: int | None, fmt: str) -> None:
    """The audit log: every applied change with time, plan fingerprint and git commit."""
    from reconciler.render.text import describe

    with obj.backend() as backend:
        entries = backend.history(customer_id)
    if fmt == "json":
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2, ensure_ascii=False))
        return
    if not entries:
        click.echo("No changes applied yet.")
    for entry in entries:
        commit = f" commit {entry.git_commit[:12]}" if entry.git_commit else ""
        click.echo(
            f"{entry.time} customer {entry.customer} {describe(entry.change)} "
            f"[{entry.fingerprint[:19]}{commit}]"
        )
