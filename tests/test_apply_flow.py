"""The reviewed plan is the applied plan: plan.yml and apply.yml, end to end, with their own steps.

Pull requests are branches of a temporary repository (pushed to a bare "origin"); plan.yml's
steps plan each one as GitHub would (the base branch checked out, the pull request's files in
pr/) and its plan is kept as the artifact of a pull_request_target run; after the merge,
apply.yml's steps restore the audit log and the last applied commit, plan afresh, hold the plan
against the reviewed ones with `reconciler gate`, and apply what passed. A stand-in `gh` answers
from the recorded runs and artifacts (tests/workflow_support.py).
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

from tests.workflow_support import REPOSITORY, StepRunner, World, git

pytestmark = pytest.mark.skipif(
    shutil.which("jq") is None or shutil.which("git") is None,
    reason="the workflows need jq and git"
)

STATE = """\
products:
  - {id: 1, name: Cloud PBX service, type: main}
customers:
  - id: 100
    name: Alpha
    self_care: {block_extensions: true}
    agreement: [{product: Cloud PBX service, quantity: 0}]
    dids: []
  - id: 200
    name: Beta
    self_care: {block_extensions: true}
    agreement: [{product: Cloud PBX service, quantity: 0}]
    dids: []
accounts:
  - {id: ph100x1, customer: 100, name: Front desk, product: Cloud PBX service}
  - {id: ph200x1, customer: 200, name: Front desk, product: Cloud PBX service}
"""


def spec(customer: int, name: str, extensions: dict[str, str]) -> str:
    entries = "".join(f'  - {{extension: "{ext}", name: {label}, product: Cloud PBX service}}\n'
                      for ext, label in extensions.items())
    return f"version: 1\ncustomer: {{id: {customer}, name: {name}}}\nextensions:\n{entries}"


ALPHA = Path("specs/customers/alpha.yaml")
BETA = Path("specs/customers/beta.yaml")
# The provider's map: the workflows require one (RECONCILER_REQUIRE_OWNERS).
OWNERS = """\
version: 1
provider: ["@provider/ops"]
folders: [specs/customers]
customers:
  - {id: 100, file: specs/customers/alpha.yaml, editors: ["@provider/alpha"]}
  - {id: 200, file: specs/customers/beta.yaml, editors: ["@provider/beta"]}
"""


def _supports_history_verify() -> bool:
    help_text = subprocess.run([sys.executable, "-m", "reconciler", "history", "--help"],
                               capture_output=True, text=True, check=False).stdout
    return "--verify" in help_text


class Provider:
    """The specs repository, its billing, and the recorded GitHub around them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.backend = f"sqlite:///{tmp / 'billing.db'}"
        self.world = World(tmp)
        self.plan_runner = StepRunner(tmp, "plan.yml", self.backend, self.world)
        self.apply_runner = StepRunner(tmp, "apply.yml", self.backend, self.world)
        self.origin = tmp / "origin.git"
        self.work = tmp / "work"
        git(tmp, "init", "--quiet", "--bare", "--initial-branch=main", str(self.origin))
        git(tmp, "clone", "--quiet", str(self.origin), str(self.work))
        git(self.work, "config", "user.name", "Provider")
        git(self.work, "config", "user.email", "ops@provider.example")
        self.write(ALPHA, spec(100, "Alpha", {"1": "Front desk"}))
        self.write(BETA, spec(200, "Beta", {"1": "Front desk"}))
        self.write(Path("owners.yaml"), OWNERS)
        (self.work / ".gitignore").write_text(".reconciler/\n")
        self.commit("specs")
        (tmp / "state.yaml").write_text(STATE)
        self.cli("state", "load", str(tmp / "state.yaml"))
        # An earlier apply recorded the first commit as applied.
        run = self.world.add_run("apply.yml", event="push", head_sha=self.head())
        marker = tmp / "marker"
        marker.write_text(self.head() + "\n")
        self.world.upload(run, "reconciler-audit-log", {"last-applied-commit": marker})
        self.pull_number = 0

    # -- git ------------------------------------------------------------------------------
    def write(self, path: Path, text: str) -> None:
        (self.work / path).parent.mkdir(parents=True, exist_ok=True)
        (self.work / path).write_text(text)

    def commit(self, message: str, branch: str = "main") -> str:
        git(self.work, "add", "-A")
        git(self.work, "commit", "--quiet", "-m", message)
        git(self.work, "push", "--quiet", "origin", f"HEAD:{branch}")
        return self.head()

    def head(self) -> str:
        return git(self.work, "rev-parse", "HEAD")

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.apply_runner.env, "GITHUB_ACTIONS": ""}
        return subprocess.run(["reconciler", "--backend", self.backend, *args], cwd=cwd or self.tmp,
                              env=env, capture_output=True, text=True, check=True)

    def accounts(self, customer: int) -> dict[str, str]:
        state = yaml.safe_load(self.cli("state", "dump").stdout)
        return {a["id"]: a["name"] for a in state.get("accounts", []) if a["customer"] == customer}

    # -- a pull request and its plan (plan.yml) --------------------------------------------
    def pull_request(self, edits: dict[Path, str]) -> tuple[int, str, dict[str, Any]]:
        """A branch with ``edits``, planned by plan.yml's steps; its number, head and plan."""
        self.pull_number += 1
        number = self.pull_number
        git(self.work, "fetch", "--quiet", "origin")
        git(self.work, "switch", "--quiet", "-c", f"pr-{number}", "origin/main")
        for path, text in edits.items():
            self.write(path, text)
        head = self.commit(f"pull request {number}", branch=f"pr-{number}")
        git(self.work, "switch", "--quiet", "main")
        # pull_request_target: the base branch in the workspace, the pull request's files in pr/.
        base = self.tmp / f"plan-{number}"
        git(self.tmp, "clone", "--quiet", str(self.origin), str(base))
        git(self.tmp, "clone", "--quiet", str(self.origin), str(base / "pr"))
        git(base / "pr", "checkout", "--quiet", head)
        runner = self.plan_runner
        code, _, log = runner.run("plan", "Use the base branch's owners map", base)
        assert code == 0, log
        code, out, log = runner.run("plan", "Plan the changed customers", base, BASE_REF="main")
        assert code == 0 and out["exitcode"] == "0", log
        run = self.world.add_run("plan.yml", event="pull_request_target",
                                 head_sha=git(base, "rev-parse", "HEAD"))
        self.world.upload(run, f"reconciler-plan-{head}", {"plan.json": base / "pr" / "plan.json"})
        return number, head, json.loads((base / "pr" / "plan.json").read_text())

    def merge(self, number: int, head: str) -> str:
        git(self.work, "pull", "--quiet", "--ff-only", "origin", "main")
        git(self.work, "merge", "--quiet", "--no-ff", "-m", f"Merge pull request #{number}",
            f"pr-{number}")
        git(self.work, "push", "--quiet", "origin", "HEAD:main")
        commit = self.head()
        self.world.merged(commit, number, head)
        return commit

    # -- apply.yml -------------------------------------------------------------------------
    def apply(self, at: str | None = None, before: str = "") -> dict[str, Any]:
        """apply.yml's jobs for the commit ``at`` (default: main's head), as a fresh runner."""
        work = self.tmp / "runner"
        shutil.rmtree(work, ignore_errors=True)
        git(self.tmp, "clone", "--quiet", str(self.origin), str(work))
        if at:
            git(work, "checkout", "--quiet", at)
        runner = self.apply_runner
        runner.summary.write_text("")
        result: dict[str, Any] = {"work": work}
        code, out, log = runner.run("prepare", "Restore the audit log of earlier applies", work,
                                    BRANCH="main", START_NEW="")
        assert code == 0, log
        last = out["last"]
        result["last"] = last
        if _supports_history_verify():
            code, _, log = runner.run("prepare", "Verify the audit log", work, START_NEW="")
            assert code == 0, log
        code, since, log = runner.run("prepare", "Find what to apply", work, LAST=last,
                                      BEFORE=before)
        result["since"], result["since_log"] = since, log
        assert code == 0, log
        run = self.world.add_run("apply.yml", event="push", head_sha=git(work, "rev-parse", "HEAD"),
                                 status="in_progress")
        if since.get("base"):
            base = since["base"]
            for name, env in (("Plan the changed customers at the merge", {"BASE": base}),
                              ("Find the plans the merged pull requests showed",
                               {"BASE": base, "BRANCH": "main"})):
                code, _, log = runner.run("prepare", name, work, **env)
                assert code == 0, log
            code, gate, log = runner.run("prepare",
                                         "Hold the fresh plan against the reviewed plans", work)
            assert code == 0, log
            result["gate"], result["summary"] = gate, runner.summary.read_text()
            result["verdicts"] = json.loads((work / "verdicts.json").read_text())
            code, _, log = runner.run("prepare", "Tell the merged pull requests what was refused",
                                      work)
            assert code == 0, log
        if since.get("old") != "true":
            code, _, log = runner.run("prepare", "Record the last applied commit", work)
            assert code == 0, log
            self.world.upload(run, "reconciler-audit-log",
                              {"last-applied-commit": work / ".reconciler" / "last-applied-commit"})
        if result.get("gate", {}).get("safe", "0") != "0":
            code, _, log = runner.run("apply", "Apply the saved plan", work)
            result["applied"] = (code, log)
        refused = result.get("gate", {}).get("refused", "0")
        code, _, log = runner.run("report", "Fail if a customer was refused", work, REFUSED=refused)
        result["report"] = (code, log)
        self.world.load()
        self.world.data["runs"][-1]["status"] = "completed"
        self.world.save()
        return result


@pytest.fixture
def provider(tmp_path: Path) -> Provider:
    return Provider(tmp_path)


def _verdicts(result: dict[str, Any]) -> dict[int, str]:
    return {v["customer"]: v["verdict"] for v in result["verdicts"]}


def test_a_merged_pull_request_is_applied_exactly_as_reviewed(provider: Provider) -> None:
    number, head, plan = provider.pull_request({ALPHA: spec(100, "Alpha",
                                                            {"1": "Front desk", "2": "Sales"})})
    assert [c["customer"] for c in plan["customers"]] == [100]
    first = provider.head()
    provider.merge(number, head)
    # Someone renamed Beta's account by hand meanwhile: an unrelated merge must not revert it.
    outside = provider.tmp / "beta-by-hand.yaml"
    outside.write_text(spec(200, "Beta", {"1": "Reception"}))
    provider.cli("apply", str(outside), "--auto-approve")

    result = provider.apply()
    assert result["last"] == first
    assert result["since"]["base"] == first
    assert _verdicts(result) == {100: "apply"}
    assert result["gate"]["safe"] != "0" and result["gate"]["refused"] == "0"
    code, log = result["applied"]
    assert code == 0, log
    assert provider.accounts(100) == {"ph100x1": "Front desk", "ph100x2": "Sales"}
    assert provider.accounts(200) == {"ph200x1": "Reception"}  # the drift is left for drift.yml
    assert result["report"][0] == 0
    assert "applied as reviewed" in result["summary"]
    # Applied with the commit it came from, in the audit log.
    history = json.loads(provider.cli("history", "--format", "json", "--customer", "100").stdout)
    assert history and history[-1]["git_commit"] == provider.head()
    assert provider.world.comments() == []


def test_billing_changed_since_the_review_refuses_the_customer_and_tells_the_pull_request(
        provider: Provider) -> None:
    number, head, _ = provider.pull_request({BETA: spec(200, "Beta",
                                                        {"1": "Front desk", "2": "Support"})})
    provider.merge(number, head)
    outside = provider.tmp / "beta-by-hand.yaml"
    outside.write_text(spec(200, "Beta", {"1": "Reception"}))
    provider.cli("apply", str(outside), "--auto-approve")

    result = provider.apply()
    assert _verdicts(result) == {200: "stale"}
    assert result["gate"]["safe"] == "0" and "applied" not in result
    assert provider.accounts(200) == {"ph200x1": "Reception"}  # nothing of the pull request applied
    code, log = result["report"]
    assert code == 1 and "1 customer(s) were not applied" in log
    (comment,) = provider.world.comments()
    assert comment["pull_request"] == number
    assert "refused: stale" in comment["body"] and "billing changed since" in comment["body"]


def test_a_plan_from_an_untrusted_run_is_no_review(provider: Provider) -> None:
    number, head, _ = provider.pull_request({ALPHA: spec(100, "Alpha",
                                                         {"1": "Front desk", "3": "Ops"})})
    # The pull request's own workflow (a pull_request run, its own copy of plan.yml) uploads a
    # plan under the same name; the trusted run's artifact is gone (expired).
    data = provider.world.load()
    for artifact in data["artifacts"]:
        if artifact["name"] == f"reconciler-plan-{head}":
            artifact["expired"] = True
    provider.world.save()
    forged = provider.tmp / "forged.json"
    shutil.copy(Path(provider.world.load()["artifacts"][0]["dir"]) / "plan.json", forged)
    for event, branch in (("pull_request", f"pr-{number}"),
                          ("pull_request_target", f"pr-{number}")):
        run = provider.world.add_run("plan.yml", event=event, head_branch=branch)
        provider.world.upload(run, f"reconciler-plan-{head}", {"plan.json": forged})
    provider.merge(number, head)

    result = provider.apply()
    assert _verdicts(result) == {100: "no_review"}
    assert provider.accounts(100) == {"ph100x1": "Front desk"}
    assert result["report"][0] == 1
    (comment,) = provider.world.comments()
    assert "no trusted plan" in comment["body"]


def test_changes_that_differ_from_the_review_are_refused(provider: Provider) -> None:
    number, head, _ = provider.pull_request({ALPHA: spec(100, "Alpha",
                                                         {"1": "Front desk", "4": "Lab"})})
    # After the review, a push to main changed the same file (say, a merge of another branch
    # that GitHub did not flag): the merged spec is not the reviewed one.
    provider.merge(number, head)
    provider.write(ALPHA, spec(100, "Alpha", {"1": "Front desk", "4": "Lab", "5": "Unreviewed"}))
    provider.commit("a direct push")
    provider.world.merged(provider.head(), number, head)  # attributed to the same pull request

    result = provider.apply()
    assert _verdicts(result) == {100: "not_reviewed"}
    assert provider.accounts(100) == {"ph100x1": "Front desk"}
    (comment,) = provider.world.comments()
    assert "not what was reviewed" in comment["body"]


def test_a_commit_pushed_without_a_pull_request_is_not_applied(provider: Provider) -> None:
    provider.write(ALPHA, spec(100, "Alpha", {"1": "Front desk", "6": "Pushed"}))
    provider.commit("pushed straight to main")
    result = provider.apply()
    assert _verdicts(result) == {100: "no_review"}
    assert provider.accounts(100) == {"ph100x1": "Front desk"}
    assert provider.world.comments() == []  # no pull request to tell
    assert result["report"][0] == 1


def test_re_running_an_older_apply_changes_nothing(provider: Provider) -> None:
    number, head, _ = provider.pull_request({ALPHA: spec(100, "Alpha",
                                                         {"1": "Front desk", "2": "Sales"})})
    older = provider.merge(number, head)
    number, head, _ = provider.pull_request({ALPHA: spec(100, "Alpha", {"1": "Front desk"})})
    provider.merge(number, head)
    # Both merges are applied by one run (the first run was dropped from the queue)...
    result = provider.apply()
    assert _verdicts(result) == {}  # ext 2 added, then removed: the file is as last applied
    assert "nothing to apply" in result["summary"]
    # ... then the run of the older commit is re-run: it finds a newer applied commit.
    provider.write(BETA, spec(200, "Beta", {"1": "Front desk", "9": "Late"}))
    again = provider.apply(at=older)
    assert again["since"]["old"] == "true"
    assert "not newer than the last applied commit" in again["since_log"]
    assert "gate" not in again and provider.accounts(100) == {"ph100x1": "Front desk"}
    assert again["report"][0] == 0
    # And the newest commit, run again, finds nothing new either.
    assert provider.apply()["since"]["old"] == "true"


def test_two_merges_in_one_run_each_held_against_its_own_review(provider: Provider) -> None:
    first, head1, _ = provider.pull_request({ALPHA: spec(100, "Alpha",
                                                         {"1": "Front desk", "2": "Sales"})})
    second, head2, _ = provider.pull_request({BETA: spec(200, "Beta",
                                                         {"1": "Front desk", "2": "Support"})})
    provider.merge(first, head1)
    provider.merge(second, head2)
    result = provider.apply()
    assert _verdicts(result) == {100: "apply", 200: "apply"}
    assert {v["pull_request"] for v in result["verdicts"]} == {first, second}
    assert result["applied"][0] == 0
    assert provider.accounts(100) == {"ph100x1": "Front desk", "ph100x2": "Sales"}
    assert provider.accounts(200) == {"ph200x1": "Front desk", "ph200x2": "Support"}
    # The next run starts from this commit.
    assert provider.apply()["since"]["old"] == "true"


def test_the_audit_log_is_restored_only_from_apply_runs_on_main(provider: Provider) -> None:
    planted = provider.tmp / "planted"
    planted.write_text("0" * 40 + "\n")
    for workflow, event, branch, repository in (
        ("plan.yml", "pull_request", "main", REPOSITORY),  # another workflow
        ("apply.yml", "pull_request", "main", REPOSITORY),  # a pull request's copy of apply.yml
        ("apply.yml", "push", "pr-7", REPOSITORY),  # another branch
        ("apply.yml", "push", "main", "someone/fork"),  # a fork's main
    ):
        run = provider.world.add_run(workflow, event=event, head_branch=branch,
                                     repository=repository)
        provider.world.upload(run, "reconciler-audit-log", {"last-applied-commit": planted})
    result = provider.apply()
    assert result["last"] != "0" * 40
    assert result["last"] == git(provider.work, "rev-list", "--max-parents=0", "HEAD")


def test_a_missing_audit_log_stops_apply_until_a_new_one_is_started_by_hand(
    provider: Provider,
) -> None:
    provider.world.load()
    for artifact in provider.world.data["artifacts"]:
        artifact["expired"] = True
    provider.world.save()
    work = provider.tmp / "runner-missing"
    git(provider.tmp, "clone", "--quiet", str(provider.origin), str(work))
    code, _, log = provider.apply_runner.run("prepare", "Restore the audit log of earlier applies",
                                             work, BRANCH="main", START_NEW="")
    assert code == 1 and "audit log is gone" in log
    code, out, log = provider.apply_runner.run("prepare",
                                               "Restore the audit log of earlier applies", work,
                                               BRANCH="main", START_NEW="true")
    assert code == 0 and out["last"] == "" and "a new log is started" in log


def test_the_first_apply_takes_the_commits_of_its_push(tmp_path: Path) -> None:
    provider = Provider(tmp_path)
    provider.world.load()
    provider.world.data.update(runs=[], artifacts=[])
    provider.world.save()
    before = provider.head()
    number, head, _ = provider.pull_request({ALPHA: spec(100, "Alpha",
                                                         {"1": "Front desk", "2": "Sales"})})
    provider.merge(number, head)
    result = provider.apply(before=before)
    assert result["last"] == "" and result["since"]["base"] == before
    assert _verdicts(result) == {100: "apply"}
    assert provider.accounts(100) == {"ph100x1": "Front desk", "ph100x2": "Sales"}


@pytest.mark.skipif(not _supports_history_verify(),
                    reason="reconciler history --verify is not there yet")
@pytest.mark.parametrize("tamper", ["none", "edit", "remove"])
def test_a_tampered_audit_log_artifact_stops_apply_at_the_restore(tmp_path: Path,
                                                                  tamper: str) -> None:
    """PortaBilling: the audit log is a file carried by the artifact; a changed one is found."""
    from reconciler.emulator import EmulatorServer
    from reconciler.statefile import load_state_file

    (tmp_path / "state.yaml").write_text(STATE)
    server = EmulatorServer(load_state_file(str(tmp_path / "state.yaml")))
    server.start()
    try:
        provider = Provider.__new__(Provider)  # only the repository and the recorded GitHub
        provider.tmp, provider.world = tmp_path, World(tmp_path)
        provider.origin, provider.work = tmp_path / "origin.git", tmp_path / "work"
        git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(provider.origin))
        git(tmp_path, "clone", "--quiet", str(provider.origin), str(provider.work))
        git(provider.work, "config", "user.name", "Provider")
        git(provider.work, "config", "user.email", "ops@provider.example")
        provider.write(ALPHA, spec(100, "Alpha", {"1": "Front desk", "2": "Sales", "3": "Support"}))
        provider.write(Path("owners.yaml"), OWNERS)
        provider.commit("specs")
        runner = StepRunner(tmp_path, "apply.yml", server.url, provider.world)
        runner.env.update(server.env())
        # An earlier apply wrote three changes to the log (one entry each).
        earlier = tmp_path / "earlier"
        earlier.mkdir()
        subprocess.run(["reconciler", "apply", str(provider.work / ALPHA), "--auto-approve"],
                       cwd=earlier,
                       env={**os.environ, **runner.env, "GITHUB_ACTIONS": ""}, check=True,
                       capture_output=True)
        (log,) = (earlier / ".reconciler").glob("audit-*.jsonl")
        lines = log.read_text().splitlines(keepends=True)
        assert len(lines) >= 2
        if tamper == "edit":
            lines[0] = lines[0].replace("Sales", "Sabotage")
        elif tamper == "remove":
            del lines[0]
        log.write_text("".join(lines))
        marker = tmp_path / "marker"
        marker.write_text(provider.head() + "\n")
        run = provider.world.add_run("apply.yml", event="push", head_sha=provider.head())
        provider.world.upload(run, "reconciler-audit-log",
                              {log.name: log, "last-applied-commit": marker})

        work = tmp_path / "runner"
        git(tmp_path, "clone", "--quiet", str(provider.origin), str(work))
        code, out, output = runner.run("prepare", "Restore the audit log of earlier applies", work,
                                       BRANCH="main", START_NEW="")
        assert code == 0 and out["last"] == provider.head(), output
        assert (work / ".reconciler" / log.name).exists()
        code, _, output = runner.run("prepare", "Verify the audit log", work, START_NEW="")
        if tamper == "none":
            assert code == 0, output
            return
        assert code == 1, output
        assert "Traceback" not in output and "the audit log's hash chain is broken" in output
        # A maintainer who checked the log starts a new chain by hand; the run says who.
        code, _, output = runner.run("prepare", "Verify the audit log", work, START_NEW="true")
        assert code == 0, output
        assert (
            "start-new-audit-log: run 999999 of apply.yml, started by ops"
            in (work / ".reconciler" / log.name).read_text()
        )
        code, _, output = runner.run("prepare", "Verify the audit log", work, START_NEW="")
        assert code == 0, output
    finally:
        server.stop()


def test_a_pull_request_cannot_edit_the_owners_map_it_is_planned_against(
    provider: Provider,
) -> None:
    git(provider.work, "switch", "--quiet", "-c", "grab", "origin/main")
    provider.write(ALPHA, spec(200, "Beta", {"1": "Front desk"}) + "prune: true\n")
    provider.write(Path("owners.yaml"), OWNERS.replace("id: 100, file: specs/customers/alpha.yaml",
                                                       "id: 200, file: specs/customers/alpha.yaml")
                   .replace("  - {id: 200, file: specs/customers/beta.yaml",
                            "  - {id: 100, file: specs/customers/beta.yaml"))
    head = provider.commit("grab customer 200", branch="grab")
    git(provider.work, "switch", "--quiet", "main")
    base = provider.tmp / "plan-grab"
    git(provider.tmp, "clone", "--quiet", str(provider.origin), str(base))
    git(provider.tmp, "clone", "--quiet", str(provider.origin), str(base / "pr"))
    git(base / "pr", "checkout", "--quiet", head)
    runner = provider.plan_runner
    code, _, log = runner.run("plan", "Use the base branch's owners map", base)
    assert code == 0, log
    assert (base / "pr" / "owners.yaml").read_text() == OWNERS
    code, out, log = runner.run("plan", "Plan the changed customers", base, BASE_REF="main")
    assert out["exitcode"] == "1", log
    plan = json.loads((base / "pr" / "plan.json").read_text())
    codes = [p["code"] for c in plan["customers"] for p in c["errors"]] + [
        p["code"] for p in plan.get("errors", [])
    ]
    assert "customer_not_owned" in codes
    assert all(not c["changes"] for c in plan["customers"])
    # nothing of customer 200's billing
    assert "ph200x" not in (base / "pr" / "plan.md").read_text()
