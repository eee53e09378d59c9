"""`reconciler owners`: the owners map, and the CODEOWNERS it implies."""

from __future__ import annotations

import difflib
import os
import sys
from typing import TYPE_CHECKING

import click

from reconciler.cli.common import EXIT_OK, EXIT_PROBLEM, Context, err, out, pass_context
from reconciler.errors import UsageError

if TYPE_CHECKING:
    from reconciler.owners import OwnersMap

DEFAULT_CODEOWNERS = os.path.join(".github", "CODEOWNERS")


@click.command("owners", short_help="Check the owners map; print CODEOWNERS.")
@click.option("--codeowners", is_flag=True,
              help="Print the CODEOWNERS lines the owners map implies.")
@click.option(
    "--check",
    is_flag=True,
    help="With --codeowners: compare with FILE (default: .github/CODEOWNERS at the repository's "
    "top folder) and exit 1 with a diff when they differ.",
)
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@pass_context
def owners(obj: Context, codeowners: bool, check: bool, file: str | None) -> None:
    """Check the owners map and list who owns which spec file; --codeowners prints (or, with
    --check, compares) the CODEOWNERS it implies."""
    from reconciler.owners import OWNERS_ENV, OWNERS_FILE, find_owners, top_folder
    from reconciler.owners import codeowners as render

    if check and not codeowners:
        raise UsageError("--check compares CODEOWNERS: give it with --codeowners")
    if file is not None and not check:
        raise UsageError(f"FILE ({file}) is the CODEOWNERS file to compare: give it with "
                         "--codeowners --check")
    root = top_folder(".") or os.path.realpath(os.getcwd())
    found = find_owners([], given=obj.owners_file)
    if found is None:
        raise UsageError(
            f"no owners map: {os.path.relpath(os.path.join(root, OWNERS_FILE))} does not exist "
            f"(give one with --owners FILE or {OWNERS_ENV})"
        )
    if not codeowners:
        _list(found)
        sys.exit(EXIT_OK)
    expected = render(found)
    if not check:
        click.echo(expected, nl=False)
        sys.exit(EXIT_OK)
    target = file or os.path.relpath(os.path.join(root, DEFAULT_CODEOWNERS))
    try:
        with open(target, encoding="utf-8", newline="") as handle:
            current = handle.read()
    except FileNotFoundError:
        err(f"{target} does not exist; write it with: reconciler owners --codeowners > {target}")
        sys.exit(EXIT_PROBLEM)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {target}: {getattr(exc, 'strerror', None) or exc}") from exc
    if current == expected:
        err(f"{target} matches the owners map {found.display}.")
        sys.exit(EXIT_OK)
    diff = difflib.unified_diff(
        current.splitlines(keepends=True), expected.splitlines(keepends=True),
        fromfile=target, tofile=f"from {found.display}",
    )
    click.echo("".join(line if line.endswith("\n") else line + "\n" for line in diff), nl=False)
    err(f"{target} differs from what the owners map {found.display} implies; "
        f"write it with: reconciler owners --codeowners > {target}")
    sys.exit(EXIT_PROBLEM)


def _list(found: OwnersMap) -> None:
    root = found.root
    out(f"owners map {found.display}: {len(found.bindings)} customer(s); provider "
        f"{' '.join(found.provider)}; folders {', '.join(found.folders)}")
    for binding in sorted(found.bindings, key=lambda b: b.file):
        editors = " ".join(binding.editors) or "(the provider only)"
        missing = "" if os.path.exists(os.path.join(root, binding.file)) else "  (no such file yet)"
        out(f"  {binding.customer}  {binding.file}  {editors}{missing}")
