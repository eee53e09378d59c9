"""`reconciler init [DIR]`: a new specs repository from the files the installed package ships."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from reconciler import __version__


@click.command(short_help="Make a specs repository to start from.")
@click.argument("directory", metavar="[DIR]", default=".", type=click.Path(file_okay=False))
def init(directory: str) -> None:
    """Make a specs repository in DIR (default: the current folder): example specs, the demo
    billing state, the owners map, the JSON Schemas, the plan, apply and drift workflows
    (installing this release), CODEOWNERS, a pre-commit config and a .gitignore.

    Never overwrites: if any of those files exists, nothing is written (exit 1).
    """
    from reconciler.scaffold import CUSTOMERS, DEMO_STATE, create, scaffold

    root = Path(directory)
    files = scaffold(__version__)
    create(root, files)
    width = max(len(f.path) for f in files)
    click.echo(f"Created a specs repository for pbx-reconciler {__version__} in {directory}:")
    for new in files:
        click.echo(f"  {new.path.ljust(width)}  {new.about}")
    click.echo("\nTry it with the embedded billing database (.reconciler/billing.db):")
    if Path(directory).resolve() != Path.cwd().resolve():
        click.echo(f"  cd {shlex.quote(directory)}")
    click.echo(f"  reconciler state load {DEMO_STATE}")
    click.echo(f"  reconciler plan {CUSTOMERS}")
    click.echo(
        "\nThen replace the examples with your customers' specs in specs/customers/, bind each to "
        "its\ncustomer id and editors in owners.yaml, regenerate CODEOWNERS with `reconciler "
        "owners --codeowners\n> .github/CODEOWNERS`, and set RECONCILER_BACKEND and the "
        "PortaBilling secrets in GitHub\n(pbx-reconciler's docs/ci.md)."
    )
