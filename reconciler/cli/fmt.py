"""`reconciler fmt`: rewrite spec files in the canonical layout (or, with --check, list them)."""

from __future__ import annotations

import sys

import click

from reconciler.cli.common import EXIT_OK, EXIT_PROBLEM, err, paths_argument, rewrite_spec


@click.command("fmt")
@paths_argument
@click.option("--check", is_flag=True, help="Change nothing; exit 1 listing the files fmt would change.")
def fmt(paths: tuple[str, ...], check: bool) -> None:
    """Rewrite specs in the canonical layout: key order, 2-space indentation, quoted extensions
    and DIDs. Comments and entry order are kept; running it twice changes nothing more."""
    from reconciler.fmt import format_file
    from reconciler.render.text import where
    from reconciler.spec import discover

    files = discover(list(paths))
    changed: list[str] = []
    failed = 0
    for path in files:
        result = format_file(path)
        if result.problems:
            failed += 1
            for problem in result.problems:
                click.echo(f"error[{problem.code}] {where(problem.to_dict())}: {problem.message}")
            click.echo(f"{path}: not formatted (nothing was changed)")
            continue
        if not result.changed:
            continue
        changed.append(path)
        if check:
            click.echo(f"would reformat {path}")
            continue
        assert result.text is not None
        rewrite_spec(path, result.text, bom=result.bom)
        click.echo(f"reformatted {path}")
    verb = "would be reformatted" if check else "reformatted"
    summary = f"{len(files)} spec file(s): {len(changed)} {verb}"
    if failed:
        summary += f", {failed} not formatted because of the errors above"
    err(summary + ".")
    sys.exit(EXIT_PROBLEM if failed or (check and changed) else EXIT_OK)
