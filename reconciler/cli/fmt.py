"""`reconciler fmt`: rewrite spec files in the canonical layout (or, with --check, list them)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from reconciler.cli.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Context,
    err,
    out,
    pass_context,
    paths_argument,
    rewrite_spec,
)

if TYPE_CHECKING:
    from reconciler.fmt import Formatted
    from reconciler.owners import OwnersMap


@click.command("fmt", short_help="Rewrite specs in the canonical layout.")
@paths_argument
@click.option("--check", is_flag=True,
              help="Change nothing; exit 1 listing the files fmt would change.")
@pass_context
def fmt(obj: Context, paths: tuple[str, ...], check: bool) -> None:
    """Rewrite specs in the canonical layout: key order, 2-space indentation, quoted extensions
    and DIDs. Comments and entry order are kept; running it twice changes nothing more."""
    from reconciler.fmt import format_file
    from reconciler.render.text import where
    from reconciler.specfiles import discover

    files = discover(list(paths))
    owners = obj.owners(paths)
    changed: list[str] = []
    failed = 0
    for path in files:
        # Like every command that reads specs, fmt leaves a file alone that the owners map does
        # not bind to the customer it names.
        result = format_file(path) if owners is None else _owned_or_refused(path, owners)
        if result.problems:
            failed += 1
            for problem in result.problems:
                out(f"error[{problem.code}] {where(problem.to_dict())}: {problem.message}")
            out(f"{path}: not formatted (nothing was changed)")
            continue
        if not result.changed:
            continue
        changed.append(path)
        if check:
            out(f"would reformat {path}")
            continue
        assert result.text is not None
        rewrite_spec(path, result.text, bom=result.bom)  # through a link inside the folder
        out(f"reformatted {path}")
    verb = "would be reformatted" if check else "reformatted"
    summary = f"{len(files)} spec file(s): {len(changed)} {verb}"
    if failed:
        summary += f", {failed} not formatted because of the errors above"
    err(summary + ".")
    sys.exit(EXIT_PROBLEM if failed or (check and changed) else EXIT_OK)


def _owned_or_refused(path: str, owners: OwnersMap) -> Formatted:
    from reconciler.fmt import Formatted, format_file
    from reconciler.runner import load_checked

    result = format_file(path)
    if result.problems:
        return result  # not formatted anyway: a link leaving its folder, a syntax error, ...
    loaded = load_checked(path, owners)
    if loaded.disowned:
        refused = tuple(p for p in loaded.errors if p.code == "customer_not_owned")
        return Formatted(path, result.original, problems=refused)
    return result
