"""Running the real CLI in-process, and reading fixtures."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from reconciler.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def run_cli(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """Run ``reconciler ARGS`` through the same entry point as the console script."""
    runner = CliRunner()
    base = {"GITHUB_ACTIONS": None, "GITHUB_STEP_SUMMARY": None, "RECONCILER_BACKEND": None,
            "GITHUB_SHA": None}
    base.update(env or {})
    with runner.isolation(input=input, env=base) as (stdout, stderr, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = stdout.getvalue().decode("utf-8", "replace")
        err = stderr.getvalue().decode("utf-8", "replace")
    return Result(code, out, err)


def marked_line(path: str | os.PathLike[str]) -> int:
    """The 1-based line of a fixture that carries the ``# <-`` marker:
    where a problem must point."""
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if re.search(r"#\s*<-", line):
            return number
    raise AssertionError(f"{path} has no '# <-' marker")


def all_problems(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return plan.get("errors", []) + [p for c in plan["customers"] for p in c["errors"]]


def all_warnings(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for c in plan["customers"] for p in c["warnings"]]
