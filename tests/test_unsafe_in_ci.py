"""An unsafe plan fails the pull request's check unless a maintainer allows it with a label;
after the merge it is applied with --force only by the job behind the environment
billing-unsafe, whose reviewers approve it: a label alone never applies it.

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
        f"  - {{id: ph300x{n}, customer: 300, name: E{n}, product: Cloud PBX service}}\n"
        for n in range(100)
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
    spec.write_text(f"version: 1\ncustomer: {{id: 300, name: Big}}\nprune: "
                    f"true\nextensions:\n{entries}")
    plan_file = tmp_path / "plan.json"
    planned = run_cli("--backend", url, "plan", str(spec), "--out", str(plan_file))
    assert planned.code == 0, planned
    return plan_file


def _run_step(step: dict[str, Any], workdir: Path,
              env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    summary = workdir / "summary.md"
    full = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), **env}
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
        cwd=workdir, env=full, capture_output=True, text=True, timeout=60, check=False,
    )


needs_jq = pytest.mark.skipif(shutil.which("jq") is None,
                              reason="jq (preinstalled on GitHub runners) is missing")


@needs_jq
def test_an_unsafe_plan_fails_the_pull_request_check_saying_why_and_how_to_proceed(
    tmp_path: Path,
) -> None:
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
    result = _run_step(_step("plan.yml", "Refuse an unsafe plan"), tmp_path,
                       {"ALLOW_UNSAFE": "true"})
    assert result.returncode == 0, result.stderr
    assert "::warning title=pbx-reconciler unsafe plan allowed::customer 300" in result.stdout


@needs_jq
def test_a_safe_plan_passes_the_check(tmp_path: Path) -> None:
    plan_file = _unsafe_plan(tmp_path)
    text = plan_file.read_text().replace('"unsafe": true', '"unsafe": false')
    plan_file.write_text(text)
    result = _run_step(_step("plan.yml", "Refuse an unsafe plan"), tmp_path,
                       {"ALLOW_UNSAFE": "false"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_runs_again_when_the_label_changes() -> None:
    document = yaml.safe_load((WORKFLOWS / "plan.yml").read_text())
    triggers = document.get("on", document.get(True))
    assert {"labeled", "unlabeled", "synchronize"} <= set(triggers["pull_request_target"]["types"])


def _gate_unsafe(tmp_path: Path, plan_file: Path) -> tuple[Path, Path, Any]:
    """apply.yml's gate on the unsafe plan, as reviewed by a merged pull request."""
    import json
    import subprocess as sp

    repo = tmp_path / "specs"
    for args in (["init", "--quiet"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet",
                                                        "-m", "spec"]):
        sp.run(["git", *args], cwd=repo, check=True, capture_output=True)
    commit = sp.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    # The plan names the spec as git does from the repository's top (here: the specs folder).
    data = json.loads(plan_file.read_text())
    for customer in data["customers"]:
        customer["file"] = "customers/big.yaml"
    plan_file.write_text(json.dumps(data))
    merges = tmp_path / "merges.json"
    merges.write_text(json.dumps([{"commit": commit, "pull_request": 5, "plan": str(plan_file)}]))
    safe, unsafe = tmp_path / "safe.json", tmp_path / "unsafe.json"
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        result = run_cli("gate", str(plan_file), "--merges", str(merges), "--out", str(safe),
                         "--out-unsafe", str(unsafe))
    finally:
        os.chdir(cwd)
    return safe, unsafe, result


def test_an_unsafe_plan_is_applied_only_by_the_job_behind_billing_unsafe(tmp_path: Path) -> None:
    import json

    plan_file = _unsafe_plan(tmp_path)
    safe, unsafe, result = _gate_unsafe(tmp_path, plan_file)
    assert result.code == 0, result
    assert "unsafe: waits for approval" in result.out
    assert json.loads(safe.read_text())["customers"] == []
    assert [c["customer"] for c in json.loads(unsafe.read_text())["customers"]] == [300]
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    # The apply job (environment billing) applies only the safe plan; the unsafe plan is refused
    # without --force, which only the job in billing-unsafe (required reviewers) passes.
    assert run_cli("--backend", url, "apply", "--plan", str(safe)).code == 0
    refused = run_cli("--backend", url, "apply", "--plan", str(unsafe))
    assert refused.code == 1 and "unsafe" in refused.out + refused.err
    document = yaml.safe_load((WORKFLOWS / "apply.yml").read_text())
    job = document["jobs"]["apply-unsafe"]
    assert job["environment"] == "billing-unsafe"
    assert "--force" in _step("apply.yml", "Apply the unsafe plan, as approved")["run"]
    # The label is a signal for the pull request's check only: apply.yml never reads it.
    assert LABEL not in (WORKFLOWS / "apply.yml").read_text()
    triggers = document.get("on", document.get(True))
    inputs = (triggers.get("workflow_dispatch") or {}).get("inputs") or {}
    assert set(inputs) == {"start-new-audit-log"}, "no input reaches --force"


def test_apply_shows_each_saved_plan_before_applying_exactly_that_file() -> None:
    document = yaml.safe_load((WORKFLOWS / "apply.yml").read_text())
    for job, show, apply in (("apply", "Show the saved plan", "Apply the saved plan"),
                             ("apply-unsafe", "Show the unsafe plan",
                              "Apply the unsafe plan, as approved")):
        names = [s.get("name") for s in document["jobs"][job]["steps"]]
        assert names.index(show) < names.index(apply)
        shown = _step("apply.yml", show)["run"].split()[-1]
        assert shown in _step("apply.yml", apply)["run"]
