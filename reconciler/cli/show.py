"""`reconciler show`: render saved plans (one, or one per shard as a single plan)."""

from __future__ import annotations

import click

from reconciler.cli.common import Context, emit_plan, format_option, pass_context


@click.command(short_help="Render saved plans as `plan` printed them.")
@click.argument("plan_files", nargs=-1, required=True, type=click.Path(dir_okay=False),
                metavar="PLANFILE...")
@format_option
@pass_context
def show(obj: Context, plan_files: tuple[str, ...], fmt: str) -> None:
    """Render saved plans exactly as `plan` printed them; several render as one plan."""
    from reconciler.plan import merge_plans, read_plan_file

    plans = [(path, read_plan_file(path)) for path in plan_files]
    emit_plan(merge_plans(plans).to_dict(), fmt)
