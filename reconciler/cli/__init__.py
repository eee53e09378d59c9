"""The command line: the only package that imports click, prints, and picks exit codes.

Exit codes: 0 success; 1 any problem (spec, refused change, stale plan, unsafe apply, usage,
backend); 2 only from ``plan --detailed-exitcode`` when changes are present.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from typing import NoReturn

import click

from reconciler import __version__
from reconciler.backends import DEFAULT_BACKEND, BackendSettings
from reconciler.cli.adopt import adopt
from reconciler.cli.apply import apply
from reconciler.cli.argv import global_options_first
from reconciler.cli.common import EXIT_PROBLEM, Context, err
from reconciler.cli.doctor import doctor
from reconciler.cli.emulator import emulator
from reconciler.cli.export import export
from reconciler.cli.fmt import fmt
from reconciler.cli.history import history
from reconciler.cli.plan import plan
from reconciler.cli.show import show
from reconciler.cli.state import state
from reconciler.cli.validate import validate
from reconciler.errors import ReconcilerError, StateFileError


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



for _command in (validate, plan, apply, export, state, history, emulator, doctor):
    cli.add_command(_command)
cli.add_command(show)
cli.add_command(adopt)
cli.add_command(fmt)




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
    err(f"internal error: {type(exc).__name__}: {exc}{where}. Please report it.")
    sys.exit(EXIT_PROBLEM)


def main(argv: list[str] | None = None) -> None:
    args = global_options_first(list(sys.argv[1:] if argv is None else argv), set(cli.commands))
    try:
        cli.main(args=args, prog_name="reconciler", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err("aborted; nothing more was changed")
        sys.exit(EXIT_PROBLEM)
    except click.ClickException as exc:
        # Usage errors exit 1, not click's 2: 2 is reserved for "changes present".
        exc.show()
        sys.exit(EXIT_PROBLEM)
    except StateFileError as exc:
        err(f"error: {exc}")
        from reconciler.render.text import where

        for problem in exc.problems:
            err(f"  error[{problem.code}] {where(problem.to_dict())}: {problem.message}")
        sys.exit(EXIT_PROBLEM)
    except ReconcilerError as exc:
        err(f"error: {exc}")
        sys.exit(EXIT_PROBLEM)
    except KeyboardInterrupt:
        err("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(EXIT_PROBLEM)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        _crash(exc)
