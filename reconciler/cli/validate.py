"""`reconciler validate`: schema and agreement checks of spec files."""

from __future__ import annotations

import sys

import click

from reconciler.cli.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Context,
    annotate,
    dump_json,
    out,
    pass_context,
    paths_argument,
    selection_options,
)
from reconciler.selection import Selection


@click.command(short_help="Check specs: schema, duplicates, agreement.")
@paths_argument
@click.option("--offline", is_flag=True, help="Schema and duplicate checks only; no billing state.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="text for people; json for tools (standard output holds the document alone).")
@selection_options
@pass_context
def validate(obj: Context, paths: tuple[str, ...], offline: bool, fmt: str,
             selection: Selection) -> None:
    """Check spec files: schema, duplicates and (unless --offline) the customer's agreement."""
    from reconciler.runner import build_plan, validate_offline

    owners = obj.owners(paths)
    if offline:
        plan = validate_offline(list(paths), selection, owners)
    else:
        with obj.backend() as backend:
            plan = build_plan(list(paths), backend, selection=selection, owners=owners)
    data = plan.to_dict()
    for customer in data["customers"]:
        customer["changes"] = []
    data["summary"]["changes"] = 0
    annotate(data)
    if fmt == "json":
        dump_json(data, sys.stdout)
    else:
        from reconciler.render.text import where

        # One list, in the order of the files and of their lines: a person reads it top down.
        problems = [("error", p) for p in data["errors"]]
        problems += [("error", p) for c in data["customers"] for p in c["errors"]]
        problems += [("warning", p) for c in data["customers"] for p in c["warnings"]]
        problems.sort(key=lambda item: (item[1]["file"] or "", item[1]["line"] or 0,
                                        item[1]["column"] or 0))
        for level, problem in problems:
            out(f"{level}[{problem['code']}] {where(problem)}: {problem['message']}")
        errors = sum(1 for level, _ in problems if level == "error")
        warnings = len(problems) - errors
        broken = len({p["file"] for level, p in problems if level == "error"})
        verdict = "valid" if not errors else f"checked, {broken} invalid"
        out(
            f"{plan.files} spec file(s) {verdict}: {errors} error(s), {warnings} warning(s)."
        )
    sys.exit(EXIT_PROBLEM if plan.error_count else EXIT_OK)
