"""The nightly drift workflow, end to end: its own shell steps, run in a temporary git repository.

The steps of .github/workflows/drift.yml are taken from the file and run with bash as a runner
would: a plan per shard, the shards' plans merged with `show`, `adopt` per drifted customer
on its own branch pushed to an "origin" repository, and a stand-in `gh` that records the pull
requests. The test then reads what a pull request would carry: the branch's diff.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.generate import generate

ROOT = Path(__file__).resolve().parent.parent
DRIFT = ROOT / ".github" / "workflows" / "drift.yml"

pytestmark = pytest.mark.skipif(
    shutil.which("jq") is None or shutil.which("git") is None,
    reason="the workflow needs jq and git"
)

# Records every call; `pr list` answers the number of an open pull request for the head branch.
FAKE_GH = r"""#!/usr/bin/env bash
set -euo pipefail
echo "$*" >> "$GH_LOG"
state="$GH_STATE"
mkdir -p "$state"
case "$1 $2" in
  "pr list")
    head=""; while [ $# -gt 0 ]; do [ "$1" = "--head" ] && head="$2"; shift; done
    key="${head//\//_}"
    [ -f "$state/$key" ] && cat "$state/$key"
    exit 0 ;;
  "pr create")
    head=""; body=""
    while [ $# -gt 0 ]; do
      case "$1" in --head) head="$2" ;; --body-file) body="$2" ;; esac; shift
    done
    key="${head//\//_}"
    number=$(( $(ls "$state" | wc -l) + 1 ))
    echo "$number" > "$state/$key"
    cp "$body" "$state/body-$number.md"
    exit 0 ;;
  "pr edit")
    number="$3"; body=""
    while [ $# -gt 0 ]; do [ "$1" = "--body-file" ] && body="$2"; shift; done
    cp "$body" "$state/body-$number.md"
    exit 0 ;;
esac
echo "fake gh: unexpected call: $*" >&2
exit 1
"""


def _steps() -> dict[str, dict[str, Any]]:
    workflow = yaml.safe_load(DRIFT.read_text())
    return {
        step["name"]: step
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if "name" in step and "run" in step
    }


class Runner:
    """Runs one workflow step's script the way a GitHub runner does (bash -e, outputs file)."""

    def __init__(self, tmp: Path, backend: str) -> None:
        self.tmp = tmp
        self.steps = _steps()
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        gh = bin_dir / "gh"
        gh.write_text(FAKE_GH)
        gh.chmod(0o755)
        self.summary = tmp / "summary.md"
        self.env = {
            "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent),
                                     os.environ["PATH"]]),
            "HOME": str(tmp),
            "RECONCILER_BACKEND": backend,
            "GITHUB_ACTIONS": "true",
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "RUNNER_TEMP": str(tmp / "runner-temp"),
            "GH_LOG": str(tmp / "gh.log"),
            "GH_STATE": str(tmp / "gh-state"),
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        (tmp / "runner-temp").mkdir()

    def run(self, name: str, cwd: Path, **env: str) -> tuple[int, dict[str, str], str]:
        step = self.steps[name]
        # Every variable the step takes from ${{ }} must be given here: a new one fails the test.
        assert set(step.get("env", {})) == set(env), (name, set(step.get("env", {})))
        outputs = self.tmp / "output.txt"
        outputs.write_text("")
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=cwd, env={**self.env, **env, "GITHUB_OUTPUT": str(outputs)},
            capture_output=True, text=True, timeout=300, check=False,
        )
        values = dict(line.split("=", 1) for line in outputs.read_text().splitlines()
                      if "=" in line)
        return result.returncode, values, result.stdout + result.stderr


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def provider(tmp_path: Path) -> tuple[Runner, Path, Any]:
    """A specs repository (pushed to a bare origin) whose billing drifted for a few customers."""
    fleet = generate(customers=9, extensions=6, change_share=0.3, seed=5,
                     changed_customers=[1, 4, 7])
    backend = f"sqlite:///{tmp_path / 'billing.db'}"
    origin, repo = tmp_path / "origin.git", tmp_path / "repo"
    _git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    _git(tmp_path, "clone", "--quiet", str(origin), str(repo))
    _git(repo, "config", "user.name", "Provider")
    _git(repo, "config", "user.email", "ops@provider.example")
    fleet.write_specs(repo / "specs" / "customers")
    # A comment a customer's team wrote: it must survive adoption.
    first = repo / "specs" / "customers" / fleet.customers[1].file_name
    first.write_text("# Reviewed by the customer's team.\n" + first.read_text())
    _git(repo, "add", "specs")
    _git(repo, "commit", "--quiet", "-m", "specs")
    _git(repo, "push", "--quiet", "origin", "HEAD:main")
    state = fleet.write_state_file(tmp_path / "state.yaml")
    subprocess.run(["reconciler", "--backend", backend, "state", "load", str(state)], check=True,
                   capture_output=True,
                   env={**os.environ,
                        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    return Runner(tmp_path, backend), repo, fleet


def _night(runner: Runner, repo: Path, shards: int = 3) -> tuple[dict[str, str], str]:
    """The shards job, the plan matrix and the merge step; the merge step's outputs."""
    code, out, log = runner.run("List the shards", runner.tmp, SHARDS=str(shards))
    assert code == 0, log
    assert json.loads(out["list"]) == list(range(1, shards + 1)) and out["count"] == str(shards)
    plans = repo / "plans"
    shutil.rmtree(plans, ignore_errors=True)
    for shard in json.loads(out["list"]):
        code, _, log = runner.run("Plan this shard", repo, SHARD=f"{shard}/{shards}")
        assert code == 0, log
        # upload-artifact, then download-artifact with a pattern: one folder per artifact.
        (plans / f"drift-plan-{shard}").mkdir(parents=True)
        shutil.move(repo / "plan.json", plans / f"drift-plan-{shard}" / "plan.json")
    runner.summary.write_text("")  # each job has a summary of its own
    code, merged, log = runner.run("Merge the shards' plans", repo, SHARDS=str(shards))
    assert code == 0, log
    return merged, log


def test_the_drift_flow_end_to_end(provider: tuple[Runner, Path, Any]) -> None:
    runner, repo, fleet = provider
    merged, _ = _night(runner, repo)
    drifted = sorted(c.id for c in fleet.changed_customers())
    assert len(drifted) == 3
    assert sorted(int(c) for c in merged["customers"].split()) == drifted
    assert merged["errors"] == "0" and merged["missing"] == "0"
    # The merged report is the plan of every customer, in the job summary.
    report = json.loads((repo / "drift.json").read_text())
    assert report["summary"]["customers"] == 9
    assert report["summary"]["changes"] == len(fleet.expected)
    summary = runner.summary.read_text()
    assert summary.count("<!-- reconciler:part 1/1 -->") == 1

    code, _, log = runner.run("Open or update a pull request per drifted customer", repo,
                              CUSTOMERS=merged["customers"], BASE="main")
    assert code == 0, log
    main = _git(repo, "rev-parse", "origin/main").strip()
    assert _git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    for customer in fleet.customers:
        branch = f"reconciler/adopt-{customer.id}"
        exists = _git(runner.tmp / "origin.git", "branch", "--list", branch).strip()
        assert bool(exists) == (customer.id in drifted), branch
        if customer.id not in drifted:
            continue
        # The pull request carries the customer's own spec file and nothing else ...
        _git(repo, "fetch", "--quiet", "origin", branch)
        changed = _git(repo, "diff", "--name-only", main, "FETCH_HEAD").split()
        assert changed == [f"specs/customers/{customer.file_name}"]
        # ... whose every removed line is a line the drift touched, and which billing now matches.
        diff = _git(repo, "diff", "--unified=0", main, "FETCH_HEAD")
        removed = [line[1:] for line in diff.splitlines()
                   if line.startswith("-") and not line.startswith("---")]
        assert not any(line.startswith(("#", "version:", "customer:", "  id:")) for line in removed)
        spec = runner.tmp / f"adopted-{customer.id}.yaml"
        spec.write_text(_git(repo, "show", f"FETCH_HEAD:specs/customers/{customer.file_name}"))
        plan = subprocess.run(
            ["reconciler", "plan", str(spec), "--format", "json"],
            env={**runner.env, "GITHUB_ACTIONS": ""}, capture_output=True, text=True, check=True,
        )
        assert json.loads(plan.stdout)["summary"]["changes"] == 0
    reviewed = _git(
        repo,
        "show",
        f"origin/reconciler/adopt-{fleet.customers[1].id}:specs/customers/{fleet.customers[1].file_name}",
    )
    assert reviewed.startswith("# Reviewed by the customer's team.\n")
    calls = Path(runner.env["GH_LOG"]).read_text().splitlines()
    assert sum(call.startswith("pr create") for call in calls) == 3
    body = (runner.tmp / "gh-state" / "body-1.md").read_text()
    assert body.startswith("## Billing changed customer ")

    # The run fails while drift is found.
    code, _, log = runner.run("Fail when drift was found", repo, CUSTOMERS=merged["customers"],
                              ERRORS=merged["errors"], MISSING=merged["missing"])
    assert code == 1 and "::error title=Drift::" in log

    # The next night, with the same drift: the pull requests are updated, not opened again,
    # and an unchanged proposal is not pushed again.
    heads = {c: _git(runner.tmp / "origin.git", "rev-parse", f"reconciler/adopt-{c}")
             for c in drifted}
    merged, _ = _night(runner, repo)
    code, _, log = runner.run("Open or update a pull request per drifted customer", repo,
                              CUSTOMERS=merged["customers"], BASE="main")
    assert code == 0, log
    calls = Path(runner.env["GH_LOG"]).read_text().splitlines()
    assert sum(call.startswith("pr create") for call in calls) == 3
    assert sum(call.startswith("pr edit") for call in calls) == 3
    assert heads == {c: _git(runner.tmp / "origin.git", "rev-parse", f"reconciler/adopt-{c}")
                     for c in drifted}

    # Closing the pull requests and applying main restores billing: the next night is clean.
    subprocess.run(["reconciler", "apply", "specs/customers/", "--auto-approve"], cwd=repo,
                   env={**runner.env, "GITHUB_ACTIONS": ""}, check=True, capture_output=True)
    merged, _ = _night(runner, repo)
    assert merged["customers"] == ""
    code, _, log = runner.run("Fail when drift was found", repo, CUSTOMERS=merged["customers"],
                              ERRORS=merged["errors"], MISSING=merged["missing"])
    assert code == 0 and "No drift" in log


def test_a_shard_without_a_plan_fails_the_run(provider: tuple[Runner, Path, Any]) -> None:
    runner, repo, _ = provider
    code, _, log = runner.run("Fail when drift was found", repo, CUSTOMERS="", ERRORS="0",
                              MISSING="1")
    assert code == 1 and "produced no plan" in log


@pytest.mark.parametrize("shards", ["0", "257", "four", "1; rm -rf /"])
def test_a_bad_shard_count_is_refused(provider: tuple[Runner, Path, Any], shards: str) -> None:
    runner, _, _ = provider
    code, out, log = runner.run("List the shards", runner.tmp, SHARDS=shards)
    assert code == 1 and "shards must be a whole number" in log and "list" not in out


def test_workflow_shape() -> None:
    workflow = yaml.safe_load(DRIFT.read_text())
    triggers = workflow.get("on", workflow.get(True))
    assert triggers["schedule"] and "cron" in triggers["schedule"][0]
    assert triggers["workflow_dispatch"]["inputs"]["shards"]["default"] == "4"
    plan = workflow["jobs"]["plan"]
    assert plan["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.shards.outputs.list) }}"
    assert plan["strategy"]["fail-fast"] is False
    assert workflow["permissions"] == {"contents": "read"}
    report = workflow["jobs"]["report"]
    assert report["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert set(report["needs"]) == {"shards", "plan"}
