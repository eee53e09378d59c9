"""`reconciler gate`: apply only what the pull requests showed (see reconciler.cigate)."""

from __future__ import annotations

import json
import os
import sys

import click

from reconciler.cli.common import EXIT_OK, EXIT_PROBLEM, dump_json, err, write_atomically
from reconciler.errors import UsageError


def _plain(text: object) -> str:
    """One line of the CI log: a file name with a line break cannot start a workflow command."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


@click.command(short_help="Check a fresh plan against the reviewed ones (CI).")
@click.argument("fresh", type=click.Path(dir_okay=False))
@click.option("--merges", "manifest", required=True, type=click.Path(dir_okay=False),
              help="JSON list of the merged commits, oldest first: {commit, pull_request, plan}.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Save the customers to apply (as reviewed, safe) as a plan for `apply --plan`.")
@click.option("--out-unsafe", required=True, type=click.Path(dir_okay=False),
              help="Save the unsafe customers (as reviewed) as a plan, "
                   "for an approved `apply --force`.")
@click.option("--comments", "comments_dir", type=click.Path(file_okay=False),
              help="Write a comment (NUMBER.md) for each merged pull request "
                   "with refused customers.")
@click.option("--verdicts", type=click.Path(dir_okay=False),
              help="Save every customer's verdict (JSON).")
@click.option("--commit", default=lambda: os.environ.get("GITHUB_SHA", "HEAD"),
              show_default="GITHUB_SHA",
              help="The merged commit the fresh plan was made at (for the report).")
def gate(fresh: str, manifest: str, out: str, out_unsafe: str, comments_dir: str | None,
         verdicts: str | None, commit: str) -> None:
    """Hold a fresh plan (at the merge) against the plans the merged pull requests showed.

    Prints a Markdown report; exits 1 when a customer was refused (stale, not what was
    reviewed, no review, errors). The plan files are written either way.
    """
    from reconciler.cigate import gate as run_gate
    from reconciler.cigate import plan_with, pull_request_comments, read_manifest, report_markdown
    from reconciler.plan import read_plan_file

    fresh_plan = read_plan_file(fresh).to_dict(with_state=True)
    result = run_gate(fresh_plan, read_manifest(manifest))
    write_atomically(out, lambda stream: dump_json(plan_with(fresh_plan, result.safe), stream))
    write_atomically(out_unsafe,
                     lambda stream: dump_json(plan_with(fresh_plan, result.unsafe), stream))
    if verdicts:
        write_atomically(verdicts, json.dumps(result.verdicts_as_dicts(), indent=2) + "\n")
    if comments_dir:
        if not os.path.isdir(comments_dir):
            raise UsageError(f"--comments {comments_dir}: no such folder")
        for number, body in pull_request_comments(result, commit).items():
            write_atomically(os.path.join(comments_dir, f"{number}.md"), body)
    click.echo(report_markdown(result, commit), nl=False)
    for verdict in result.refused:
        where = f"customer {verdict.customer}" if verdict.customer is not None else "the plan"
        err(f"refused: {where} ({_plain(verdict.file)}): {_plain(verdict.detail)}")
    sys.exit(EXIT_PROBLEM if result.refused else EXIT_OK)
