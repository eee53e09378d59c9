"""Helpers for tests that drive the reconciler against the emulator (no pytest import here)."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.statefile import BillingState, load_state_file


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@contextlib.contextmanager
def patched_env(env: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the duration of the block."""
    saved = {name: os.environ.get(name) for name in env}
    try:
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_cli(argv: list[str], env: Mapping[str, str | None] | None = None) -> CliResult:
    """Run ``reconciler ARGV`` in this process, as its console script does, and capture it."""
    from reconciler.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with patched_env(env or {}), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())


def state_from_yaml(text: str, folder: str) -> BillingState:
    """A BillingState from state-file YAML text (checked as `state load` checks it)."""
    path = os.path.join(folder, "billing-state.yaml")
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
    return load_state_file(path)


def write_spec(folder: str, name: str, spec: dict[str, Any]) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as out:
        yaml.safe_dump(spec, out, sort_keys=False)
    return path
