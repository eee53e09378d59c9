"""GitHub Actions annotations (workflow commands) for the problems of a plan.

A line such as ``::error file=specs/customers/abc.yaml,line=12,col=5,title=quantity_exceeded::…``
printed by a step makes GitHub show the problem on that line of the pull request's diff.
The escaping follows the Actions runner: ``%``, CR and LF are encoded in the message,
and in property values ``:`` and ``,`` as well, since those delimit the properties. Other
characters that act on a log (ESC, bidi overrides, ``##[``) are written as visible escapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.render import safe

__all__ = ["annotation", "escape_data", "escape_property", "github_annotations"]


def escape_data(text: str) -> str:
    """Escape the message part of a workflow command.

    GitHub's own escaping first (``%``, CR, LF), so the value can neither end the line nor start
    another command; then the rest of reconciler.render.safe: an ESC or a bidi override would
    still act on the log, and ``##[`` is a command anywhere in a line.
    """
    return safe.text(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def escape_property(text: str) -> str:
    """Escape a property value (file, title, …) of a workflow command."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, problem: Mapping[str, Any]) -> str:
    """One ``::error`` or ``::warning`` line; properties that are null are left out."""
    properties = [
        (name, problem.get(key))
        for name, key in (("file", "file"), ("line", "line"), ("col", "column"), ("title", "code"))
    ]
    rendered = ",".join(
        f"{name}={escape_property(str(value))}"
        for name, value in properties
        if value is not None and value != ""
    )
    head = f"::{level} {rendered}" if rendered else f"::{level}"
    return f"{head}::{escape_data(str(problem.get('message') or problem.get('code') or ''))}"


def _problems(plan: Mapping[str, Any], key: str) -> Iterable[Mapping[str, Any]]:
    yield from plan.get(key) or []
    for customer in plan.get("customers") or []:
        yield from customer.get(key) or []


def github_annotations(plan: Mapping[str, Any]) -> list[str]:
    """Annotation lines for every error and warning of ``plan`` (the Plan JSON dict).

    Errors come first, then warnings; within each, problems not tied to a customer
    come before the customers', in plan order.
    """
    return [annotation("error", p) for p in _problems(plan, "errors")] + [
        annotation("warning", p) for p in _problems(plan, "warnings")
    ]
