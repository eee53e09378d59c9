"""An unsafe plan fails the pull request's check unless a maintainer allows it with a label;
the merge then applies it with --force, and only then.

The workflow steps are run here as GitHub would run them: their `run:` scripts, with bash, on a
plan the real CLI saved.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO, run_cli

WORKFLOWS = REPO / ".github" / "workflows"
LABEL = "reconciler:allow-unsafe"


def _step(workflow: str, name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / workflow).read_text())
    steps = [s for job in document["jobs"].values() for s in job["steps"]]
    return next(s for s in steps if s.get("name") == name)


def _unsafe_plan(tmp_path: Path) -> Path:
    """A saved plan in which prune drops 60 of a customer's 100 extensions."""
    accounts = "".join(
        f"  - {{id: ph300x{n}, customer: 300, name: E{n}, product: Cloud PBX service}}\n" for n in range(100)
    )
    state = tmp_path / "state.yaml"
    state.write_text(
        "products:\n  - {id: 1, name: Cloud PBX service, type: main}\n"
        "customers:\n  - id: 300\n    name: Big\n    self_care: {block_extensions: true}\n"
        "    agreement: [{product: Cloud PBX service, quantity: 0}]\n    dids: []\n"
        f"accounts:\n{accounts}"
    )
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    assert run_cli("--backend", url, "state", "load", str(state)).code == 0
    entries = "".join(
        f'  - {{extension: "{n}", name: E{n}, product: Cloud PBX service}}\n' for n in range(40)
    )
    spec = tmp_path / "specs" / "customers" / "big.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text(f"version: 1\ncustomer: {{id: 300, name: Big}}\nprune: true\nextensions:\n{entries}")
    plan_file = tmp_path / "plan.json"
    planned = run_cli("--backend", url, "plan", str(spec), "--out", str(plan_file))
    assert planned.code == 0, planned
    return plan_file


def _run_step(step: dict[str, Any], workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    summary = workdir / "summary.md"
    full = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), **env}
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
        cwd=workdir, env=full, capture_output=True, text=True, timeout=60, check=False,
    )


needs_jq = pytest.mark.skipif(shutil.which("jq") is None, reason="jq (preinstalled on GitHub runners) is missing")


@needs_jq
def test_an_unsafe_plan_fails_the_pull_request_check_saying_why_and_how_to_proceed(tmp_path: Path) -> None:
    _unsafe_plan(tmp_path)
    step = _step("plan.yml", "Refuse an unsafe plan")
    assert LABEL in step["env"]["ALLOW_UNSAFE"]
    result = _run_step(step, tmp_path, {"ALLOW_UNSAFE": "false"})
    assert result.returncode == 1
    assert "::error title=pbx-reconciler unsafe plan::customer 300" in result.stdout
    assert "terminates or blocks 60 of 100 managed accounts" in result.stdout
    summary = (tmp_path / "summary.md").read_text()
    assert f"`{LABEL}`" in summary and "--force" in summary


@needs_jq
def test_the_label_lets_an_unsafe_plan_pass_the_check(tmp_path: Path) -> None:
    _unsafe_plan(tmp_path)
    result = _run_step(_step("plan.yml", "Refuse an unsafe plan"), tmp_path, {"ALLOW_UNSAFE": "true"})
    assert result.returncode == 0, result.stderr
    assert "::warning title=pbx-reconciler unsafe plan allowed::customer 300" in result.stdout


@needs_jq
def test_a_safe_plan_passes_the_check(tmp_path: Path) -> None:
    plan_file = _unsafe_plan(tmp_path)
    text = plan_file.read_text().replace('"unsafe": true', '"unsafe": false')
    plan_file.write_text(text)
    result = _run_step(_step("plan.yml", "Refuse an unsafe plan"), tmp_path, {"ALLOW_UNSAFE": "false"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_runs_again_when_the_label_changes() -> None:
    document = yaml.safe_load((WORKFLOWS / "plan.yml").read_text())
    triggers = document.get("on", document.get(True))
    assert {"labeled", "unlabeled", "synchronize"} <= set(triggers["pull_request"]["types"])


def test_apply_forces_only_a_merge_whose_pull_request_carries_the_label(tmp_path: Path) -> None:
    find = _step("apply.yml", "Find whether the merged pull request allows an unsafe plan")
    assert f"'{LABEL}'" in find["with"]["script"]
    assert "merge_commit_sha === context.sha" in find["with"]["script"]
    apply = _step("apply.yml", "Apply the saved plan")
    assert apply["env"]["FORCE"] == "${{ steps.pr.outputs.allow-unsafe }}"
    # Run the apply step with a stand-in `reconciler` that records its arguments.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "reconciler"
    fake.write_text('#!/bin/sh\necho "$@" >> "$CALLS"\n')
    fake.chmod(0o755)
    calls = tmp_path / "calls"
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    for force, expected in (("true", "apply --plan applied-plan.json --force"),
                            ("false", "apply --plan applied-plan.json"),
                            ("", "apply --plan applied-plan.json")):
        calls.write_text("")
        result = _run_step(apply, tmp_path, {"FORCE": force, "PATH": path, "CALLS": str(calls)})
        assert result.returncode == 0, result.stderr
        assert calls.read_text().splitlines() == [expected]
    document = yaml.safe_load((WORKFLOWS / "apply.yml").read_text())
    triggers = document.get("on", document.get(True))
    assert not (triggers.get("workflow_dispatch") or {}).get("inputs"), "no other way to --force"


def test_apply_shows_the_saved_plan_before_applying_exactly_that_file() -> None:
    document = yaml.safe_load((WORKFLOWS / "apply.yml").read_text())
    names = [s.get("name") for s in document["jobs"]["apply"]["steps"]]
    assert names.index("Show the saved plan") < names.index("Apply the saved plan")
    assert _step("apply.yml", "Show the saved plan")["run"].strip() == "reconciler show applied-plan.json"
