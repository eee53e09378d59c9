"""Running the build job of .github/workflows/release.yml as a runner would, step by step.

The `run:` steps are taken from the workflow file and run with bash (`-eo pipefail`, as GitHub
runs them) in a copy of this checkout; the expressions in their `env:` are given the values a
tag push would give them, and step outputs are read back from the GITHUB_OUTPUT file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO

RELEASE = REPO / ".github" / "workflows" / "release.yml"
_IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", ".pytest_cache", ".hypothesis", "__pycache__", "build", "dist",
    "*.egg-info", ".reconciler", "mutants",
)


def build_steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(RELEASE.read_text())
    return [step for step in workflow["jobs"]["build"]["steps"] if "run" in step]


def checkout(into: Path, release_date: str | None = "2026-12-04") -> Path:
    """A copy of this working tree, as `actions/checkout` would give it; with ``release_date``
    the CHANGELOG's Unreleased section is made the section of the current version, as the
    commit that a release tag points at has it."""
    from reconciler import __version__

    shutil.copytree(REPO, into, ignore=_IGNORED, symlinks=True)
    if release_date:
        changelog = into / "CHANGELOG.md"
        text = changelog.read_text()
        assert "## [Unreleased]" in text
        changelog.write_text(text.replace("## [Unreleased]", f"## [{__version__}] - {release_date}",
                                          1))
    return into


@dataclass
class Runner:
    workdir: Path
    temp: Path
    env: dict[str, str]
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    def run(self, step: dict[str, Any], timeout: int = 600) -> subprocess.CompletedProcess[str]:
        output_file = self.temp / f"output-{len(self.outputs)}"
        output_file.write_text("")
        env = dict(self.env, GITHUB_OUTPUT=str(output_file), RUNNER_TEMP=str(self.temp))
        for name, value in (step.get("env") or {}).items():
            env[name] = self._expression(str(value))
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=self.workdir, env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )
        if "id" in step:
            self.outputs[step["id"]] = dict(
                line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line
            )
        return result

    def _expression(self, value: str) -> str:
        def resolve(match: re.Match[str]) -> str:
            expression = match.group(1).strip()
            if expression == "github.ref_name":
                return self.env["GITHUB_REF_NAME"]
            step_output = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression)
            if step_output:
                return self.outputs.get(step_output.group(1), {}).get(step_output.group(2), "")
            raise AssertionError("release.yml uses an expression this runner does not know: "
                                 f"{expression}")

        return re.sub(r"\$\{\{(.*?)\}\}", resolve, value)


def runner_env(python_bin: Path, tag: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a step: the runner's Python first on PATH, nothing of this session's
    reconciler or GitHub settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RECONCILER_", "PORTABILLING_", "GITHUB_"))}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = str(python_bin) + os.pathsep + env.get("PATH", "")
    env["GITHUB_REF_NAME"] = tag
    env.update(extra or {})
    return env
