"""The command line: the only module that imports click, prints, and picks exit codes.

Exit codes: 0 success; 1 any problem (spec, refused change, stale plan, unsafe apply, usage,
backend); 2 only from ``plan --detailed-exitcode`` when changes are present.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

from reconciler import __version__
from reconciler.backends import DEFAULT_BACKEND, BackendSettings, open_backend
from reconciler.backends.base import Backend
from reconciler.errors import ReconcilerError, StateFileError, UsageError
from reconciler.plan import PlanOptions

EXIT_OK, EXIT_PROBLEM, EXIT_CHANGES = 0, 1, 2


# ---- output helpers -----------------------------------------------------------------------------


def _err(message: str) -> None:
    click.echo(message, err=True)


def _styler(stream_is_tty: bool) -> Callable[..., str] | None:
    if not stream_is_tty or os.environ.get("NO_COLOR"):
        return None
    return lambda text, **kw: click.style(text, **kw)


def _write_atomically(path: str, content: str | Callable[[Any], None]) -> None:
    """Write a file whole or not at all: ``content`` is text, or a function writing to a stream."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".reconciler-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            if callable(content):
                content(out)
            else:
                out.write(content)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _annotate(plan_dict: dict[str, Any]) -> None:
    """Inside GitHub Actions, problems also become annotations on the spec lines."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return
    from reconciler.render.annotations import github_annotations

    for line in github_annotations(plan_dict):
        _err(line)


def _dump_json(data: Any, stream: Any) -> None:
    # Streamed, not built as one string: a plan creating 100,000 accounts is a big document.
    json.dump(data, stream, indent=2, ensure_ascii=False)
    stream.write("\n")
    stream.flush()


def _emit_plan(plan_dict: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        _dump_json(plan_dict, sys.stdout)
    elif fmt == "markdown":
        from reconciler.render.markdown import render_markdown_parts

        for part in render_markdown_parts(plan_dict):
            click.echo(part)
    else:
        from reconciler.render.text import render_text

        click.echo(render_text(plan_dict, style=_styler(sys.stdout.isatty())))
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if os.environ.get("GITHUB_ACTIONS") == "true" and summary_file:
        from reconciler.render.markdown import render_markdown_parts

        try:
            with open(summary_file, "a", encoding="utf-8") as out:
                out.write("\n".join(render_markdown_parts(plan_dict)) + "\n")
        except OSError as exc:
            _err(f"warning: cannot write the job summary {summary_file}: {exc.strerror}")


# ---- the group ------------------------------------------------------------------------------------


class Context:
    def __init__(self, backend_url: str, settings: BackendSettings) -> None:
        self.backend_url = backend_url
        self.settings = settings

    def backend(self, *, create: bool = False) -> Backend:
        return open_backend(self.backend_url, self.settings, create=create)


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--backend",
    envvar="RECONCILER_BACKEND",
    default=DEFAULT_BACKEND,
    show_default=True,
    metavar="URL",
    help="Billing backend: sqlite:///PATH (embedded) or portabilling+https://HOST[:PORT]. "
    "Env: RECONCILER_BACKEND.",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds an apply waits for another apply on the same customer.",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1, max=64),
    default=8,
    show_default=True,
    help="Customers read concurrently from a PortaBilling server.",
)
@click.version_option(__version__, prog_name="reconciler")
@click.pass_context
def cli(ctx: click.Context, backend: str, lock_timeout: float, parallelism: int) -> None:
    """Reconcile PBX customers' extensions, products and DIDs from YAML specs with billing."""
    ctx.obj = Context(backend, BackendSettings(lock_timeout=lock_timeout, parallelism=parallelism))


_paths = click.argument("paths", nargs=-1, required=True, type=click.Path())
_format = click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True
)


def _safety_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--unsafe-min-accounts",
        type=click.IntRange(min=0),
        default=8,
        show_default=True,
        help="The safety check applies to customers with at least this many open managed accounts.",
    )(func)
    return click.option(
        "--unsafe-share",
        type=click.FloatRange(min=0, max=1),
        default=0.25,
        show_default=True,
        help="A plan terminating or blocking more than this share of managed accounts is unsafe.",
    )(func)


# ---- validate -------------------------------------------------------------------------------------


@cli.command()
@_paths
@click.option("--offline", is_flag=True, help="Schema and duplicate checks only; no billing state.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_context
def validate(obj: Context, paths: tuple[str, ...], offline: bool, fmt: str) -> None:
    """Check spec files: schema, duplicates and (unless --offline) the customer's agreement."""
    from reconciler.runner import build_plan, validate_offline

    if offline:
        plan = validate_offline(list(paths))
    else:
        with obj.backend() as backend:
            plan = build_plan(list(paths), backend)
    data = plan.to_dict()
    for customer in data["customers"]:
        customer["changes"] = []
    data["summary"]["changes"] = 0
    _annotate(data)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        from reconciler.render.text import where

        problems = data["errors"] + [p for c in data["customers"] for p in c["errors"]]
        warnings = [p for c in data["customers"] for p in c["warnings"]]
        for problem in problems:
            click.echo(f"error[{problem['code']}] {where(problem)}: {problem['message']}")
        for problem in warnings:
            click.echo(f"warning[{problem['code']}] {where(problem)}: {problem['message']}")
        files = len(data["customers"]) + len({p["file"] for p in data["errors"]})
        verdict = "valid" if not problems else "invalid"
        click.echo(f"{files} spec file(s) {verdict}: {len(problems)} error(s), {len(warnings)} warning(s).")
    sys.exit(EXIT_PROBLEM if plan.error_count else EXIT_OK)


# ---- plan ---------------------------------------------------------------------------------------------


def _compute_plan(obj: Context, backend: Backend, paths: tuple[str, ...], changed_since: str | None,
                  unsafe_share: float, unsafe_min_accounts: int):  # type: ignore[no-untyped-def]
    from reconciler.runner import build_plan

    options = PlanOptions(unsafe_share=unsafe_share, unsafe_min_accounts=unsafe_min_accounts)
    if changed_since is None:
        return build_plan(list(paths), backend, options=options)
    from reconciler.gitchanges import GitChangesError, changed_spec_files

    try:
        changes = changed_spec_files(changed_since, list(paths))
    except GitChangesError as exc:
        raise UsageError(str(exc)) from exc
    plan = build_plan(None, backend, options=options, files=sorted(changes.changed))
    for deleted in changes.deleted:
        plan.notes.append(
            f"{deleted} was deleted since {changed_since}: its accounts are left as they are "
            "(a deleted spec never prunes)"
        )
    if not changes.changed:
        plan.notes.append(f"no spec file changed since {changed_since}")
    return plan


@cli.command()
@_paths
@_format
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan (JSON) to FILE for `apply --plan`.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 no changes, 2 changes present, 1 error.")
@click.option("--changed-since", metavar="REF", help="Only customers whose spec files changed since git REF.")
@_safety_options
@pass_context
def plan(obj: Context, paths: tuple[str, ...], fmt: str, out: str | None, detailed_exitcode: bool,
         changed_since: str | None, unsafe_share: float, unsafe_min_accounts: int) -> None:
    """Show what apply would change."""
    with obj.backend() as backend:
        result = _compute_plan(obj, backend, paths, changed_since, unsafe_share, unsafe_min_accounts)
    data = result.to_dict()
    if out:
        _write_atomically(out, lambda stream: _dump_json(data, stream))
        _err(f"plan saved to {out}")
    _emit_plan(data, fmt)
    _annotate(data)
    if result.error_count:
        sys.exit(EXIT_PROBLEM)
    if detailed_exitcode and result.change_count:
        sys.exit(EXIT_CHANGES)
    sys.exit(EXIT_OK)


# ---- apply ------------------------------------------------------------------------------------------


def _confirm(count: int) -> bool:
    if not sys.stdin.isatty():
        raise UsageError(
            "refusing to apply: no terminal to confirm on; review the plan and pass --auto-approve"
        )
    answer = click.prompt(f"Apply {count} change(s)? Only 'yes' is accepted", default="", show_default=False)
    return bool(answer.strip() == "yes")


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), help="Apply this saved plan exactly.")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation (CI).")
@click.option("--force", is_flag=True, help="Apply plans marked unsafe.")
@_safety_options
@pass_context
def apply(obj: Context, paths: tuple[str, ...], plan_file: str | None, auto_approve: bool, force: bool,
          unsafe_share: float, unsafe_min_accounts: int) -> None:
    """Plan, then apply the changes (or apply a saved plan with --plan)."""
    from reconciler.apply import apply_plan, git_commit
    from reconciler.render.text import render_text

    if plan_file and paths:
        raise UsageError("give spec PATHs or --plan FILE, not both")
    if not plan_file and not paths:
        raise UsageError("give spec PATHs to plan and apply, or --plan FILE")
    with obj.backend() as backend:
        if plan_file:
            from reconciler.planfile import read_plan_file
            from reconciler.runner import check_plan_backend

            result = read_plan_file(plan_file)
            check_plan_backend(result, backend)
            commit = os.environ.get("GITHUB_SHA") or None
        else:
            result = _compute_plan(obj, backend, paths, None, unsafe_share, unsafe_min_accounts)
            commit = git_commit(list(paths))
        data = result.to_dict()
        click.echo(render_text(data, style=_styler(sys.stdout.isatty())))
        _annotate(data)
        if result.change_count == 0:
            click.echo("Nothing to apply.")
            sys.exit(EXIT_PROBLEM if result.error_count else EXIT_OK)
        if not plan_file and not auto_approve and not _confirm(result.change_count):
            click.echo("Apply cancelled; nothing was changed.")
            sys.exit(EXIT_PROBLEM)
        outcomes = apply_plan(result, backend, force=force, commit=commit)
    failed = False
    for outcome in outcomes:
        if outcome.status == "no changes":
            continue
        line = f"customer {outcome.customer}: {outcome.status}"
        if outcome.status == "applied":
            line += f", {len(outcome.done)} change(s)"
        else:
            failed = True
            line += f": {outcome.message}"
            if outcome.done:
                line += f"; {len(outcome.done)} of {outcome.planned} change(s) were made before it stopped:"
        click.echo(line, err=not outcome.ok)
        if not outcome.ok:
            from reconciler.render.text import describe

            for change in outcome.done:
                _err(f"    done: {describe(change.to_dict())}")
    if result.errors:
        failed = True
    sys.exit(EXIT_PROBLEM if failed else EXIT_OK)


# ---- export -----------------------------------------------------------------------------------------


@cli.command()
@click.option("--customer", "customer_id", type=int, required=True, help="i_customer to export.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the spec to FILE instead of stdout.")
@pass_context
def export(obj: Context, customer_id: int, out: str | None) -> None:
    """Write the spec that describes a customer's current managed accounts (adoption)."""
    from reconciler.export import export_spec

    with obj.backend() as backend:
        state = backend.read_customer(customer_id, backend.catalogue())
    if state is None:
        raise UsageError(f"billing has no customer {customer_id}")
    text = export_spec(state)
    if out:
        _write_atomically(out, text)
        _err(f"spec for customer {customer_id} written to {out}")
    else:
        click.echo(text, nl=False)


# ---- state --------------------------------------------------------------------------------------------


@cli.group()
def state() -> None:
    """Embedded backend: load or dump the whole billing state."""


def _embedded(obj: Context, *, create: bool = False):  # type: ignore[no-untyped-def]
    if not obj.backend_url.startswith("sqlite:///"):
        raise UsageError("`state` works on the embedded sqlite backend only")
    return obj.backend(create=create)


@state.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_context
def state_load(obj: Context, file: str) -> None:
    """Replace the billing state with FILE (creates the database; keeps the audit log)."""
    from reconciler.statefile import load_state_file

    billing = load_state_file(file)
    with _embedded(obj, create=True) as backend:
        backend.load_state(billing)
    _err(
        f"loaded {len(billing.products)} product(s), {len(billing.customers)} customer(s), "
        f"{len(billing.accounts)} account(s) into {obj.backend_url}"
    )


@state.command("dump")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@pass_context
def state_dump(obj: Context, fmt: str) -> None:
    """Print the billing state in the state file format (sorted, deterministic)."""
    from reconciler.statefile import state_to_dict

    with _embedded(obj) as backend:
        data = state_to_dict(backend.dump_state())
    if fmt == "json":
        _dump_json(data, sys.stdout)
    else:
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100), nl=False)


# ---- history ----------------------------------------------------------------------------------------


@cli.command()
@click.option("--customer", "customer_id", type=int, help="Only this customer's changes.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_context
def history(obj: Context, customer_id: int | None, fmt: str) -> None:
    """The audit log: every applied change with time, plan fingerprint and git commit."""
    from reconciler.render.text import describe

    with obj.backend() as backend:
        entries = backend.history(customer_id)
    if fmt == "json":
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2, ensure_ascii=False))
        return
    if not entries:
        click.echo("No changes applied yet.")
    for entry in entries:
        commit = f" commit {entry.git_commit[:12]}" if entry.git_commit else ""
        click.echo(
            f"{entry.time} customer {entry.customer} {describe(entry.change)} "
            f"[{entry.fingerprint[:19]}{commit}]"
        )


# ---- emulator -----------------------------------------------------------------------------------------


@cli.command()
@click.option("--state", "state_file", type=click.Path(dir_okay=False), required=True,
              help="Billing state file to serve.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8899, show_default=True)
@click.option("--latency-ms", type=float, default=0.0, show_default=True, help="Added latency per call.")
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of calls that fail (fault, 502/503, timeout, dropped connection).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fault injection.")
@click.option("--fault-kinds", default="fault,502,503,timeout,drop", show_default=True,
              help="Comma-separated kinds of injected failure.")
@click.option("--fault-scope", type=click.Choice(["reads", "writes", "both"]), default="both",
              show_default=True, help="Which calls may fail.")
@click.option("--page-cap", type=click.IntRange(min=1), default=100, show_default=True,
              help="Most items the server returns per page, whatever the client asks for.")
@click.option("--token-ttl-calls", type=click.IntRange(min=1), default=None,
              help="Expire each session token after this many calls (exercises re-login).")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="SQLite file behind the emulator (default: a temporary one).")
def emulator(state_file: str, host: str, port: int, latency_ms: float, fault_rate: float, seed: int,
             fault_kinds: str, fault_scope: str, page_cap: int, token_ttl_calls: int | None,
             db_path: str | None) -> None:
    """Serve a PortaBilling-compatible JSON API for local development and tests."""
    from reconciler.emulator import run_emulator

    run_emulator(state_file=state_file, host=host, port=port, latency_ms=latency_ms,
                 fault_rate=fault_rate, seed=seed, announce=_err, fault_kinds=fault_kinds,
                 fault_scope=fault_scope, page_cap=page_cap, token_ttl_calls=token_ttl_calls,
                 db_path=db_path)


# ---- entry point ------------------------------------------------------------------------------------


def _crash(exc: BaseException) -> NoReturn:
    """An unexpected failure: one line on screen, the traceback in a log file."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    text = "".join(traceback.format_exception(exc))
    log_path = None
    for folder in (os.path.join(".reconciler", "logs"), tempfile.gettempdir()):
        try:
            os.makedirs(folder, exist_ok=True)
            log_path = os.path.join(folder, f"crash-{stamp}-{os.getpid()}.log")
            with open(log_path, "w", encoding="utf-8") as out:
                out.write(text)
            break
        except OSError:
            log_path = None
    where = f"; the details are in {log_path}" if log_path else ""
    _err(f"internal error: {type(exc).__name__}: {exc}{where}. Please report it.")
    sys.exit(EXIT_PROBLEM)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="reconciler", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _err("aborted; nothing more was changed")
        sys.exit(EXIT_PROBLEM)
    except click.ClickException as exc:
        # Usage errors exit 1, not click's 2: 2 is reserved for "changes present".
        exc.show()
        sys.exit(EXIT_PROBLEM)
    except StateFileError as exc:
        _err(f"error: {exc}")
        from reconciler.render.text import where

        for problem in exc.problems:
            _err(f"  error[{problem.code}] {where(problem.to_dict())}: {problem.message}")
        sys.exit(EXIT_PROBLEM)
    except ReconcilerError as exc:
        _err(f"error: {exc}")
        sys.exit(EXIT_PROBLEM)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(EXIT_PROBLEM)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        _crash(exc)
