"""Running GitHub Actions steps on this machine: their own `run:` scripts, with bash, in temporary
git repositories, against a stand-in `gh` that answers from a small recorded "GitHub".

The stand-in keeps its world in a JSON file: workflow runs, artifacts (folders on disk), the pull
requests that merged each commit, and a log of the comments posted. A test adds runs and
artifacts as GitHub would (an upload is `World.upload`), then runs the steps.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
REPOSITORY = "example-provider/specs"

FAKE_GH = r'''#!/usr/bin/env python3
"""A stand-in for the GitHub CLI: the calls apply.yml makes, answered from $GH_WORLD."""
import json, os, re, shutil, subprocess, sys
from urllib.parse import parse_qs, urlsplit

world_path = os.environ["GH_WORLD"]
world = json.load(open(world_path))
args = sys.argv[1:]
with open(os.environ["GH_LOG"], "a") as log:
    log.write(" ".join(args) + "\n")

def option(name):
    return args[args.index(name) + 1] if name in args else None

def answer(data):
    text = json.dumps(data)
    expression = option("--jq")
    if expression is not None:
        text = subprocess.run(["jq", "-r", expression], input=text, capture_output=True, text=True,
                              check=True).stdout
        sys.stdout.write(text)
    else:
        print(text)
    sys.exit(0)

def artifacts(name=None, run=None):
    found = [a for a in world["artifacts"] if (name is None or a["name"] == name)
             and (run is None or a["workflow_run"]["id"] == run)]
    shown = [{k: v for k, v in a.items() if k != "dir"} for a in found]
    return {"total_count": len(found), "artifacts": shown}

if args[0] == "api":
    url = urlsplit(args[1])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    path = url.path
    prefix = "repos/" + os.environ["GITHUB_REPOSITORY"] + "/"
    assert path.startswith(prefix), path
    path = path[len(prefix):]
    if match := re.fullmatch(r"actions/workflows/([^/]+)/runs", path):
        runs = [r for r in world["runs"] if r["path"] == ".github/workflows/" + match[1]
                and r["status"] == query.get("status", r["status"])
                and r["head_branch"] == query.get("branch", r["head_branch"])]
        answer({"total_count": len(runs), "workflow_runs": runs})
    if match := re.fullmatch(r"actions/runs/(\d+)/artifacts", path):
        answer(artifacts(query.get("name"), int(match[1])))
    if match := re.fullmatch(r"actions/runs/(\d+)", path):
        answer(next(r for r in world["runs"] if r["id"] == int(match[1])))
    if path == "actions/artifacts":
        answer(artifacts(query.get("name")))
    if match := re.fullmatch(r"commits/([0-9a-f]+)/pulls", path):
        answer(world["pulls"].get(match[1], []))
if args[:2] == ["run", "download"]:
    run, name, folder = int(args[2]), option("--name"), option("--dir")
    (artifact,) = [a for a in world["artifacts"]
                   if a["name"] == name and a["workflow_run"]["id"] == run]
    shutil.copytree(artifact["dir"], folder, dirs_exist_ok=True)
    sys.exit(0)
if args[:2] == ["pr", "comment"]:
    body = open(option("--body-file")).read()
    world["comments"].append({"pull_request": int(args[2]), "body": body})
    json.dump(world, open(world_path, "w"))
    sys.exit(0)
print("fake gh: unexpected call: " + " ".join(args), file=sys.stderr)
sys.exit(1)
'''


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


class World:
    """The recorded GitHub: runs, artifacts and merged pull requests."""

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "github-world.json"
        self.store = tmp / "artifacts"
        self.store.mkdir()
        self.data: dict[str, Any] = {"runs": [], "artifacts": [], "pulls": {}, "comments": []}
        self.save()

    def load(self) -> dict[str, Any]:
        self.data = json.loads(self.path.read_text())
        return self.data

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=1))

    def add_run(self, workflow: str, *, event: str, head_branch: str = "main",
                head_sha: str = "0" * 40,
                status: str = "completed", repository: str = REPOSITORY) -> int:
        self.load()
        run_id = 1000 + len(self.data["runs"])
        self.data["runs"].append({
            "id": run_id, "run_number": len(self.data["runs"]) + 1,
            "path": f".github/workflows/{workflow}",
            "event": event, "head_branch": head_branch, "head_sha": head_sha, "status": status,
            "head_repository": {"full_name": repository}, "repository": {"full_name": REPOSITORY},
        })
        self.save()
        return run_id

    def upload(self, run_id: int, name: str, files: dict[str, Path]) -> None:
        """upload-artifact: the files (name in the artifact -> file) kept under ``name``."""
        self.load()
        folder = self.store / f"{run_id}-{name}"
        folder.mkdir()
        for inside, source in files.items():
            (folder / inside).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, folder / inside)
        self.data["artifacts"].insert(0, {
            "name": name, "expired": False,
            "created_at": f"2026-12-04T{len(self.data['artifacts']):06d}",
            "workflow_run": {"id": run_id}, "dir": str(folder),
        })
        self.save()

    def merged(self, commit: str, number: int, head: str) -> None:
        self.load()
        self.data["pulls"][commit] = [{"number": number, "merged_at": "2026-12-04T10:00:00Z",
                                       "merge_commit_sha": commit, "base": {"ref": "main"},
                                       "head": {"sha": head}}]
        self.save()

    def comments(self) -> list[dict[str, Any]]:
        return list(self.load()["comments"])


def steps_of(workflow: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(job, step name) -> step, for the steps that run a script.

    Each step carries, under ``fixed_env``, the workflow's and its job's variables that need no
    expression (``RECONCILER_REQUIRE_OWNERS: "1"``): a runner sets those for every step.
    """
    document = yaml.safe_load((WORKFLOWS / workflow).read_text())
    steps = {}
    for job_name, job in document["jobs"].items():
        fixed = {name: str(value) for scope in (document, job)
                 for name, value in (scope.get("env") or {}).items()
                 if "${{" not in str(value)}
        for step in job["steps"]:
            if "name" in step and "run" in step:
                steps[(job_name, step["name"])] = {**step, "fixed_env": fixed}
    return steps


class StepRunner:
    """Runs one step's script the way a GitHub runner does (bash -eo pipefail, outputs file)."""

    def __init__(self, tmp: Path, workflow: str, backend: str, world: World) -> None:
        self.tmp = tmp
        self.steps = steps_of(workflow)
        bin_dir = tmp / "bin"
        bin_dir.mkdir(exist_ok=True)
        gh = bin_dir / "gh"
        gh.write_text(FAKE_GH.replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1))
        gh.chmod(0o755)
        self.summary = tmp / "summary.md"
        self.summary.write_text("")
        self.env = {
            "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent),
                                     os.environ["PATH"]]),
            "HOME": str(tmp),
            "RECONCILER_BACKEND": backend,
            "GITHUB_ACTIONS": "true",
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_RUN_ID": "999999",
            "GITHUB_ACTOR": "ops",
            "GH_WORLD": str(world.path),
            "GH_LOG": str(tmp / "gh.log"),
            "GIT_CONFIG_NOSYSTEM": "1",
        }

    def run(self, job: str, name: str, cwd: Path, **env: str) -> tuple[int, dict[str, str], str]:
        step = self.steps[(job, name)]
        # Every variable the step takes from ${{ }} must be given here: a new one fails the test.
        assert set(step.get("env", {})) == set(env), (name, set(step.get("env", {})))
        outputs = self.tmp / "output.txt"
        outputs.write_text("")
        workdir = cwd / step.get("working-directory", ".")
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=workdir,
            env={**self.env, **step["fixed_env"], "GITHUB_SHA": git(cwd, "rev-parse", "HEAD"),
                              **env, "GITHUB_OUTPUT": str(outputs)},
            capture_output=True, text=True, timeout=300, check=False,
        )
        values = dict(line.split("=", 1) for line in outputs.read_text().splitlines()
                      if "=" in line)
        return result.returncode, values, result.stdout + result.stderr
