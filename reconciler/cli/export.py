"""`reconciler export`: the spec describing a customer's current managed accounts."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.common import CUSTOMER_ID, Context, err, pass_context, write_atomically
from reconciler.errors import UsageError


@click.command(short_help="Print a customer's spec as billing holds it.")
@click.option("--customer", "customer_id", type=CUSTOMER_ID, required=True,
              help="The customer to export (i_customer).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Write the spec to FILE instead of stdout.")
@pass_context
def export(obj: Context, customer_id: int, out: str | None) -> None:
    """Write the spec that describes a customer's current managed accounts (adoption)."""
    from reconciler.export import export_spec
    from reconciler.packaged import schema_comment

    with obj.backend() as backend:
        state = backend.read_customer(customer_id, backend.catalogue())
    if state is None:
        raise UsageError(f"billing has no customer {customer_id}")
    # The $schema comment points from where the file is written (the folder of --out, or the
    # current folder for standard output) to the nearest schemas/ copy, so editors find it.
    folder = Path(out).parent if out else Path.cwd()
    comment = schema_comment(folder)
    text = export_spec(state, comment)
    if out:
        write_atomically(out, text)
        err(f"spec for customer {customer_id} written to {out}")
    else:
        click.echo(text, nl=False)
    if comment is None:
        err(
            f"note: no schemas/customer-spec.schema.json in {folder} or a folder above it, so the "
            "spec has no $schema comment (`reconciler init` puts the schemas in a specs repository)"
        )
