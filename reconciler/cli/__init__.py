"""The command line: the only package that imports click, prints, and picks exit codes.

Exit codes: 0 success; 1 any problem (spec, refused change, stale plan, unsafe apply, usage,
backend); 2 only from ``plan --detailed-exitcode`` when changes are present.
"""

from __future__ import annotations

import errno
import io
import os
import signal
import sys
import tempfile
import threading
import traceback
from datetime import UTC, datetime
from types import FrameType
from typing import Any, NoReturn

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
from reconciler.cli.gate import gate
from reconciler.cli.history import history
from reconciler.cli.init import init
from reconciler.cli.owners import owners
from reconciler.cli.plan import plan
from reconciler.cli.show import show
from reconciler.cli.state import state
from reconciler.cli.validate import validate
from reconciler.errors import ProblemsError, ReconcilerError, Terminated, interrupt_exit_code
from reconciler.render import safe


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
@click.option(
    "--owners",
    "owners_file",
    envvar="RECONCILER_OWNERS",
    metavar="FILE",
    help="The owners map binding each customer to its spec file (default: owners.yaml at the git "
    "top level of the spec paths, or in the current folder outside git). Env: RECONCILER_OWNERS.",
)
@click.option(
    "--require-owners",
    is_flag=True,
    envvar="RECONCILER_REQUIRE_OWNERS",
    help="A missing owners map is an error (CI). Env: RECONCILER_REQUIRE_OWNERS=1.",
)
@click.version_option(__version__, prog_name="reconciler")
@click.pass_context
def cli(ctx: click.Context, backend: str, lock_timeout: float, parallelism: int,
        owners_file: str | None, require_owners: bool) -> None:
    """Reconcile PBX customers' extensions, products and DIDs from YAML specs with billing."""
    ctx.obj = Context(backend, BackendSettings(lock_timeout=lock_timeout, parallelism=parallelism),
                      owners_file=owners_file, require_owners=require_owners)



for _command in (validate, plan, apply, export, state, history, emulator, doctor):
    cli.add_command(_command)
cli.add_command(show)
cli.add_command(adopt)
cli.add_command(fmt)
cli.add_command(gate)
cli.add_command(init)
cli.add_command(owners)




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


# Errors of writing the output (standard output redirected to a full disk, a closed descriptor,
# a failing device) that reach main() as plain OSError: files the reconciler writes itself are
# wrapped into ReconcilerErrors where they are written.
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF})


class _ClosedOutput(io.RawIOBase):
    """Standard output when its descriptor was closed (``reconciler state dump >&-``).

    Python sets ``sys.stdout`` to None then, and click writes nothing without a word; this
    stream makes the first write fail, so the command says it could not write its output.
    """

    def writable(self) -> bool:
        return True

    def write(self, _data: object) -> int:
        raise OSError(errno.EBADF, "standard output is closed")


class _QuietWhenReaderLeaves:
    """Standard output that goes quiet once its reader has left (``reconciler plan | head -3``).

    A reader that stops reading early is not a failure of the command, and other command-line
    tools say nothing then: what is written after that is dropped, the command runs to its end,
    and it exits with the code its work decides (a plan with errors still exits 1). Any other
    failure to write (a full disk, a closed descriptor) is still reported.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._write = stream.write  # bound once: this is on the path of every write
        self.reader_left = False

    def write(self, text: str) -> int:
        try:
            return self._write(text)  # type: ignore[no-any-return]
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self) -> None:
        if not self.reader_left:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        self.reader_left = True
        self._write = len  # what is written from now on is dropped
        if self._stream is sys.__stdout__ and self._stream is not None:
            # What is left in the buffer goes to /dev/null, so Python's last flush cannot fail.
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._stream.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _raise_terminated(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated()


def _discard_stdout() -> None:
    """Send what is left in the stdout buffer to /dev/null, so Python's last flush cannot fail.

    Only for the process's own standard output (not a stream a test harness put in its place).
    """
    if sys.__stdout__ is None or sys.stdout is not sys.__stdout__:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _output_failed(detail: str) -> NoReturn:
    _discard_stdout()
    try:
        err(f"error: cannot write the output: {detail}")
    except (OSError, ValueError):
        pass  # standard error is gone too: the exit code says it
    sys.exit(EXIT_PROBLEM)


def main(argv: list[str] | None = None) -> None:
    """The console entry point: runs the command and turns every outcome into an exit code.

    Ctrl-C (SIGINT) or SIGTERM stops a command that only reads with the one word "interrupted"
    and exit 130 / 143; ``apply`` handles both itself while it writes
    (reconciler.apply.StopSignals).
    """
    if sys.stdout is None:
        sys.stdout = io.TextIOWrapper(_ClosedOutput(), encoding="utf-8")
    previous = None
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    ):
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    original = sys.stdout
    stdout = sys.stdout = _QuietWhenReaderLeaves(original)  # type: ignore[assignment]
    try:
        _dispatch(argv)
    except SystemExit:
        if sys.stdout is not stdout:
            # click replaces standard output after a broken pipe, and exits 1 without a word.
            sys.stdout = stdout
            _output_failed("the reader closed the pipe (broken pipe)")
        raise
    finally:
        if sys.stdout is stdout:
            sys.stdout = original
        if argv is None and threading.current_thread() is threading.main_thread():
            # The process's own run is over and its outcome decided: a signal arriving while
            # Python shuts down would only turn that outcome into a traceback.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _dispatch(argv: list[str] | None) -> None:
    args = global_options_first(list(sys.argv[1:] if argv is None else argv), set(cli.commands))
    try:
        cli.main(args=args, prog_name="reconciler", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C (and SIGTERM, raised as KeyboardInterrupt) into Abort, and so
        # does end of input at a prompt.
        if isinstance(exc.__context__, KeyboardInterrupt):
            err("interrupted")
            sys.exit(interrupt_exit_code(exc.__context__))
        err("aborted: no answer (end of input)")
        sys.exit(EXIT_PROBLEM)
    except click.ClickException as exc:
        # Usage errors exit 1, not click's 2: 2 is reserved for "changes present". The message
        # may quote an argument (a spec path from a CI job's list of changed files).
        exc.message = safe.text(exc.message)  # type: ignore[misc]
        exc.show()
        sys.exit(EXIT_PROBLEM)
    except ProblemsError as exc:
        err(f"error: {exc}")
        from reconciler.render.text import where

        for problem in exc.problems:
            err(f"  error[{problem.code}] {where(problem.to_dict())}: {problem.message}")
        sys.exit(EXIT_PROBLEM)
    except ReconcilerError as exc:
        err(f"error: {exc}")
        sys.exit(EXIT_PROBLEM)
    except KeyboardInterrupt as exc:
        err("interrupted")
        sys.exit(interrupt_exit_code(exc))
    except BrokenPipeError:
        _output_failed("the reader closed the pipe (broken pipe)")
    except OSError as exc:
        if exc.errno not in _OUTPUT_ERRNOS:
            _crash(exc)
        if exc.filename:
            err(f"error: cannot write {exc.filename}: {exc.strerror}")
            sys.exit(EXIT_PROBLEM)
        _output_failed(exc.strerror or str(exc))
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        _crash(exc)
