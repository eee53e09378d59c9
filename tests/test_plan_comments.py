"""The pull-request comments of a plan: at most 10 (by default), the rest only in the job summary
and the artifact, with a line in the last comment saying so.

plan.yml's comment script (the composite action runs the same one) is taken from the workflow and
run by node as actions/github-script runs it (an async function of github, context, core and
require), against a stand-in GitHub client that records the calls, on the Markdown the real CLI
prints for a spec far larger than ten parts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO, run_cli

PLAN_YML = REPO / ".github" / "workflows" / "plan.yml"


def _comment_step() -> dict[str, Any]:
    steps = yaml.safe_load(PLAN_YML.read_text())["jobs"]["plan"]["steps"]
    return next(s for s in steps if s.get("name") == "Post the plan as pull-request comments")

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

# Runs the script as github-script would: `github`, `context` and `core` given, awaited.
HARNESS = r"""
const fs = require('fs');
const script = fs.readFileSync(process.argv[2], 'utf8');
const existing = JSON.parse(process.argv[3]);
const calls = [];
const warnings = [];
const github = {
  paginate: async (method, params) => {
    calls.push(['list', params.issue_number]);
    return existing;
  },
  rest: { issues: {
    listComments: {},
    createComment: async (p) => { calls.push(['create', p.body]); },
    updateComment: async (p) => { calls.push(['update', p.comment_id, p.body]); },
    deleteComment: async (p) => { calls.push(['delete', p.comment_id]); },
  } },
};
const context = { repo: { owner: 'o', repo: 'r' }, issue: { number: 7 } };
const core = { warning: (m) => warnings.push(m) };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction('github', 'context', 'core', 'require', script)(github, context, core, require)
  .then(() => console.log(JSON.stringify({ calls, warnings })))
  .catch((error) => { console.log(JSON.stringify({ error: error.message })); process.exit(1); });
"""


def _post(tmp_path: Path, markdown: str, *, existing: list[dict[str, Any]] | None = None,
          limit: str = "") -> dict[str, Any]:
    plan = tmp_path / "plan.md"
    plan.write_text(markdown)
    harness, script = tmp_path / "harness.js", tmp_path / "script.js"
    harness.write_text(HARNESS)
    step = _comment_step()
    script.write_text(step["with"]["script"])
    # The step's environment, as the workflow sets it (the limit as given, or the default).
    env = {**os.environ, "PLAN_MARKDOWN": str(plan), "PLAN_ARTIFACT": "reconciler-plan-abc",
           "COMMENT_LIMIT": limit or str(step["env"]["COMMENT_LIMIT"])}
    result = subprocess.run(["node", str(harness), str(script), json.dumps(existing or [])],
                            capture_output=True, text=True, timeout=60, check=False, env=env)
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def _parts(count: int) -> str:
    return "".join(f"<!-- reconciler:part {i}/{count} -->\n## part {i}\n\nbody {i}\n"
                   for i in range(1, count + 1))


@pytest.fixture(scope="module")
def huge_plan(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Markdown plan of a spec that creates 6,000 extensions: 15 parts."""
    tmp = tmp_path_factory.mktemp("huge")
    state = tmp / "state.yaml"
    state.write_text(
        "products:\n  - {id: 1, name: Cloud PBX service, type: main}\n"
        "customers:\n  - id: 9\n    name: Huge\n    self_care: {block_extensions: true}\n"
        "    agreement: [{product: Cloud PBX service, quantity: 0}]\n    dids: []\n"
    )
    url = f"sqlite:///{tmp / 'billing.db'}"
    assert run_cli("--backend", url, "state", "load", str(state)).code == 0
    entries = "".join(f'  - {{extension: "{n}", name: Extension number {n} of the very large '
                      "customer, product: Cloud PBX service}\n" for n in range(1000, 7000))
    spec = tmp / "huge.yaml"
    spec.write_text(f"version: 1\ncustomer: {{id: 9, name: Huge}}\nextensions:\n{entries}")
    result = run_cli("--backend", url, "plan", str(spec), "--format", "markdown")
    assert result.code == 0, result.err[-2000:]
    return result.out


def test_a_huge_plan_posts_ten_comments_and_says_where_the_rest_is(tmp_path: Path,
                                                                   huge_plan: str) -> None:
    total = huge_plan.count("<!-- reconciler:part ")
    assert total > 12
    posted = _post(tmp_path, huge_plan)
    creates = [call for call in posted["calls"] if call[0] == "create"]
    assert len(creates) == 10
    assert all(body.startswith(f"<!-- reconciler:part {i}/{total} -->")
               for i, (_, body) in enumerate(creates, 1))
    last = creates[-1][1]
    assert f"This plan has {total} parts; only the first 10 are posted as comments." in last
    assert f"Parts 11-{total} are in the job summary and the artifact `reconciler-plan-abc`" in last
    assert all(len(body) < 65536 for _, body in creates)  # GitHub's limit for one comment
    assert "the first 10 are posted" in posted["warnings"][0]


def test_the_workflow_sets_the_limit_to_ten() -> None:
    assert _comment_step()["env"]["COMMENT_LIMIT"] == "10"


def test_a_plan_within_the_limit_is_posted_whole_without_a_note(tmp_path: Path) -> None:
    posted = _post(tmp_path, _parts(3))
    creates = [call for call in posted["calls"] if call[0] == "create"]
    assert len(creates) == 3 and not any("only the first" in body for _, body in creates)
    assert posted["warnings"] == []


def test_the_limit_is_settable_and_checked(tmp_path: Path) -> None:
    posted = _post(tmp_path, _parts(5), limit="2")
    assert [call[0] for call in posted["calls"]] == ["list", "create", "create"]
    assert "Parts 3-5 are in" in posted["calls"][-1][1]
    assert _post(tmp_path, _parts(5), limit="0") == {
        "error": "the comment limit must be a whole number from 1 to 100, not '0'"}


def test_a_new_push_edits_the_comments_and_removes_those_past_the_limit(tmp_path: Path) -> None:
    bot = {"type": "Bot"}
    existing = [{"id": 100 + i, "user": bot, "body": f"<!-- reconciler:part {i}/12 -->\nold"}
                for i in range(1, 13)]
    existing.append({"id": 500, "user": {"type": "User"},
                     "body": "<!-- reconciler:part 1/1 -->\na person's"})
    posted = _post(tmp_path, _parts(12), existing=existing)
    kinds = [call[0] for call in posted["calls"]]
    assert kinds.count("update") == 10 and kinds.count("create") == 0
    assert sorted(call[1] for call in posted["calls"] if call[0] == "delete") == [111, 112]
