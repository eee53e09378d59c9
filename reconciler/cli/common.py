"""What every command shares: the context, output helpers, common options and exit codes.

The ``reconciler.cli`` package is the only place that imports click, prints, and picks exit codes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from reconciler.backends import BackendSettings, open_backend
from reconciler.backends.base import Backend
from reconciler.errors import OutputError
from reconciler.render import safe

if TYPE_CHECKING:
    from reconciler.owners import OwnersMap

EXIT_OK, EXIT_PROBLEM, EXIT_CHANGES = 0, 1, 2

def err(message: str) -> None:
    """One line on standard error. It is made safe (reconciler.render.safe) as a whole, since
    file names, keys, names and values from specs and billing are quoted in messages: it stays
    one line, with no terminal escape, bidi override or GitHub workflow command in it."""
    click.echo(safe.text(message), err=True)


def out(message: str) -> None:
    """One line on standard output, made safe like :func:`err`."""
    click.echo(safe.text(message))


def styler(stream_is_tty: bool) -> Callable[..., str] | None:
    if not stream_is_tty or os.environ.get("NO_COLOR"):
        return None
    return lambda text, **kw: click.style(text, **kw)


def write_atomically(path: str, content: str | Callable[[Any], None]) -> None:
    """Write a file whole or not at all: ``content`` is text, or a function writing to a stream.

    The text goes to a temporary file in the same folder, renamed over ``path`` once complete, so
    a reader never sees half a file and a failure leaves any earlier file as it was. Missing
    folders are not created (a typo in a path is not a request for a new tree). A path that cannot
    be written raises OutputError, which names the path and why; the temporary file is removed.
    """
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise OutputError(f"cannot write {path}: it is a folder")
    if not os.path.isdir(folder):
        raise OutputError(f"cannot write {path}: {_why_not_a_folder(folder)}")
    temp = None
    try:
        handle, temp = tempfile.mkstemp(dir=folder, prefix=".reconciler-", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            if callable(content):
                content(out)
            else:
                out.write(content)
        os.replace(temp, path)
        temp = None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def rewrite_spec(path: str, text: str, *, bom: bool) -> None:
    """Replace a spec file in place (fmt, adopt): whole or not at all, keeping its permissions and
    its byte order mark (``text`` keeps the file's line breaks itself).

    A link that stays inside its folder is written through and stays a link; one that leaves its
    folder is refused (UsageError) and nothing is written (reconciler.specfiles).
    """
    from reconciler.specfiles import write_target

    target = write_target(path)
    mode = os.stat(target).st_mode & 0o7777
    write_atomically(target, ("\ufeff" if bom else "") + text)
    os.chmod(target, mode)


def _why_not_a_folder(folder: str) -> str:
    """Why ``folder`` cannot take a file: the first part of it that is missing or not a folder."""
    parts: list[str] = []
    current = folder
    while current and not os.path.exists(current) and os.path.dirname(current) != current:
        parts.append(current)
        current = os.path.dirname(current)
    if current and os.path.exists(current) and not os.path.isdir(current):
        return f"{current} is not a folder"
    missing = parts[-1] if parts else folder
    return f"the folder {missing} does not exist (it is not created)"


def annotate(plan_dict: dict[str, Any]) -> None:
    """Inside GitHub Actions, problems also become annotations on the spec lines."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return
    from reconciler.render.annotations import github_annotations

    # The only lines the reconciler starts with "::": GitHub's own escaping (annotations.py)
    # keeps every value in them from ending the command or starting another.
    for line in github_annotations(plan_dict):
        click.echo(line, err=True)


def dump_json(data: Any, stream: Any) -> None:
    # Streamed, not built as one string: a plan creating 100,000 accounts is a big document.
    # Characters that act on a terminal or a CI log are written as \uXXXX escapes: the same
    # JSON to a program (reconciler.render.safe.write_json).
    safe.write_json(data, stream)
    stream.write("\n")
    stream.flush()


def emit_plan(plan_dict: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        dump_json(plan_dict, sys.stdout)
    elif fmt == "markdown":
        from reconciler.render.markdown import render_markdown_parts

        for part in render_markdown_parts(plan_dict):
            click.echo(part)
    else:
        from reconciler.render.text import render_text

        click.echo(render_text(plan_dict, style=styler(sys.stdout.isatty())))
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if os.environ.get("GITHUB_ACTIONS") == "true" and summary_file:
        from reconciler.render.markdown import render_markdown_parts

        try:
            with open(summary_file, "a", encoding="utf-8") as out:
                out.write("\n".join(render_markdown_parts(plan_dict)) + "\n")
        except OSError as exc:
            err(f"warning: cannot write the job summary {summary_file}: {exc.strerror}")


class Context:
    def __init__(self, backend_url: str, settings: BackendSettings, *,
                 owners_file: str | None = None, require_owners: bool = False) -> None:
        self.backend_url = backend_url
        self.settings = settings
        self.owners_file = owners_file
        self.require_owners = require_owners

    def backend(self, *, create: bool = False) -> Backend:
        return open_backend(self.backend_url, self.settings, create=create)

    def owners(self, paths: Sequence[str]) -> OwnersMap | None:
        """The owners map for spec ``paths`` (see reconciler.owners.find_owners), or None."""
        from reconciler.owners import find_owners

        return find_owners(paths, given=self.owners_file, required=self.require_owners)


pass_context = click.make_pass_decorator(Context)

paths_argument = click.argument("paths", nargs=-1, required=True, type=click.Path())
format_option = click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text",
    show_default=True,
    help="text for people; json for tools (standard output holds the document alone); "
    "markdown for a pull-request comment.",
)


class CustomerId(click.ParamType):
    """A customer's id in billing (i_customer): a whole number of 1 or more, the same for every
    command that takes ``--customer``."""

    name = "ID"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                number = 0
        if number < 1:
            self.fail(f"{value!r} is not a customer id (i_customer: a whole number, 1 or more)",
                      param, ctx)
        return number


CUSTOMER_ID = CustomerId()


def safety_options(func: Callable[..., Any]) -> Callable[..., Any]:
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




def selection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--customer ID`` (repeatable) and ``--shard I/N``, given to the command as ``selection``."""
    import functools

    from reconciler.selection import Selection

    @functools.wraps(func)
    def wrapper(*args: Any, customers: tuple[int, ...], shard: str | None, **kwargs: Any) -> Any:
        return func(*args, selection=Selection.of(customers, shard), **kwargs)

    wrapper = click.option(
        "--shard",
        metavar="I/N",
        help="Only the customers of shard I of N (a fixed function of the customer id).",
    )(wrapper)
    return click.option(
        "--customer",
        "customers",
        type=CUSTOMER_ID,
        multiple=True,
        help="Only this customer's spec file (i_customer; repeatable).",
    )(wrapper)
