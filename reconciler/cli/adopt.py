"""`reconciler adopt`: rewrite specs in place to describe what billing holds now."""

from __future__ import annotations

import sys

import click

from reconciler.cli.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Context,
    dump_json,
    err,
    pass_context,
    paths_argument,
    rewrite_spec,
    selection_options,
)
from reconciler.errors import UsageError
from reconciler.selection import Selection


@click.command(short_help="Rewrite specs to match billing (drift).")
@paths_argument
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True, help="markdown: a pull-request body of what billing changed.")
@selection_options
@pass_context
def adopt(obj: Context, paths: tuple[str, ...], fmt: str, selection: Selection) -> None:
    """Rewrite specs to describe billing's managed accounts now; comments and layout are kept."""
    from reconciler.adopt import adopt_specs
    from reconciler.render.adoption import render_markdown, render_text, summary

    owners = obj.owners(paths)
    with obj.backend() as backend:
        results = adopt_specs(list(paths), backend, selection, owners=owners)
    for result in results:
        if result.new_text is None:
            continue
        try:
            rewrite_spec(result.file, result.new_text, bom=result.bom)
        except OSError as exc:
            raise UsageError(f"{result.file}: cannot write the spec ({exc.strerror})") from exc
    data = [r.to_dict() for r in results]
    if fmt == "json":
        dump_json({"files": data, "summary": summary(data)}, sys.stdout)
    elif fmt == "markdown":
        click.echo(render_markdown(data))
    else:
        click.echo(render_text(data))
    if fmt != "text":
        total = summary(data)
        err(f"adopt: {total['rewritten']} of {total['files']} spec file(s) rewritten")
    sys.exit(EXIT_PROBLEM if any(r.errors for r in results) else EXIT_OK)
