"""`reconciler state load|dump`: the embedded backend's whole billing state."""

from __future__ import annotations

import sys

import click

from reconciler.backends import Backend, parse_backend_url
from reconciler.cli.common import Context, dump_json, err, pass_context
from reconciler.errors import UsageError


@click.group(short_help="Load or dump the embedded billing state.")
def state() -> None:
    """Embedded backend: load or dump the whole billing state."""


def _embedded(obj: Context, *, create: bool = False) -> Backend:
    # Asked of the backend's kind before it opens: `state load` on a server must not get as far
    # as asking for its credentials.
    if not parse_backend_url(obj.backend_url).capabilities.state_files:
        raise UsageError("`state` works on the embedded sqlite backend only")
    return obj.backend(create=create)


@state.command("load", short_help="Replace the billing state with FILE.")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_context
def state_load(obj: Context, file: str) -> None:
    """Replace the billing state with FILE (creates the database; keeps the audit log)."""
    from reconciler.statefile import load_state_file

    billing = load_state_file(file)
    with _embedded(obj, create=True) as backend:
        backend.load_state(billing)
    err(
        f"loaded {len(billing.products)} product(s), {len(billing.customers)} customer(s), "
        f"{len(billing.accounts)} account(s) into {obj.backend_url}"
    )


@state.command("dump", short_help="Print the billing state as a state file.")
@click.option(
    "--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True,
    help="yaml: the state file format (state load reads it back); json: the same, as JSON.",
)
@pass_context
def state_dump(obj: Context, fmt: str) -> None:
    """Print the billing state in the state file format (sorted, deterministic)."""
    from reconciler.statefile import state_to_dict

    with _embedded(obj) as backend:
        data = state_to_dict(backend.dump_state())
    if fmt == "json":
        dump_json(data, sys.stdout)
    else:
        import yaml

        # Streamed in small writes: one big write to a pipe whose reader left can lose its tail
        # without an error, while the next small write fails and is reported.
        from reconciler.render.safe import SafeTextDumper

        yaml.dump(
            data, sys.stdout, Dumper=SafeTextDumper, sort_keys=False, allow_unicode=True, width=100
        )
        sys.stdout.flush()
