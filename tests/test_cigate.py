"""`reconciler gate`: the check between a fresh plan at the merge and the plans reviewed.

The whole flow (plan.yml and apply.yml's steps) is in tests/test_apply_flow.py; these are the
command's own rules and its answers to bad input.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.cigate import (
    APPLY,
    APPLY_UNSAFE,
    NO_REVIEW,
    NOT_REVIEWED,
    NOTHING,
    STALE,
    Merge,
    gate,
)
from tests.helpers import run_cli

FINGERPRINT = "sha256:" + "1" * 64
CHANGE = {"op": "set_name", "account": "ph1x1", "from": "A", "to": "B"}


def _customer(customer: int, file: str, changes: list[dict[str, Any]],
              **extra: Any) -> dict[str, Any]:
    return {"customer": customer, "file": file, "fingerprint": FINGERPRINT, "changes": changes,
            "errors": [], "warnings": [], "unsafe": False, **extra}


def _plan(*customers: dict[str, Any]) -> dict[str, Any]:
    return {"format_version": 1, "backend": "sqlite:///b.db", "customers": list(customers),
            "summary": {"customers": len(customers), "changes": 0, "errors": 0}}


def _merge(plan: dict[str, Any] | None, *files: str, pull: int | None = 1) -> Merge:
    return Merge(commit="c" * 40, pull_request=pull, plan=plan, files=frozenset(files))


def test_each_rule() -> None:
    reviewed = _plan(_customer(1, "a.yaml", [CHANGE]), _customer(2, "b.yaml", [CHANGE]),
                     _customer(3, "c.yaml", [CHANGE]),
                     _customer(4, "d.yaml", [CHANGE], unsafe=True))
    fresh = copy.deepcopy(reviewed)
    fresh["customers"][1]["fingerprint"] = "sha256:" + "2" * 64  # billing changed: stale
    # more than reviewed
    fresh["customers"][2]["changes"] = [CHANGE, {**CHANGE, "account": "ph1x2"}]
    fresh["customers"].append(_customer(5, "e.yaml", []))  # a comment edited: nothing to do
    fresh["customers"].append(_customer(6, "f.yaml", [CHANGE]))  # not in the reviewed plan
    result = gate(fresh,
                  [_merge(reviewed, "a.yaml", "b.yaml", "c.yaml", "d.yaml", "e.yaml", "f.yaml")])
    verdicts = {v.customer: v.verdict for v in result.verdicts}
    assert verdicts == {1: APPLY, 2: STALE, 3: NOT_REVIEWED, 4: APPLY_UNSAFE, 5: NOTHING,
                        6: NO_REVIEW}
    assert [c["customer"] for c in result.safe] == [1] and [
        c["customer"] for c in result.unsafe
    ] == [4]
    assert {v.customer for v in result.refused} == {2, 3, 6}
    detail = next(v.detail for v in result.verdicts if v.customer == 3)
    assert "1 change(s) not in the reviewed plan" in detail


def test_the_last_merge_that_changed_a_file_is_the_review_that_counts() -> None:
    old = _plan(_customer(1, "a.yaml", [CHANGE]))
    new = _plan(_customer(1, "a.yaml", [{**CHANGE, "to": "C"}]))
    fresh = _plan(_customer(1, "a.yaml", [{**CHANGE, "to": "C"}]))
    result = gate(fresh, [_merge(old, "a.yaml", pull=1), _merge(new, "a.yaml", pull=2),
                          _merge(None, "z", pull=3)])
    (verdict,) = result.verdicts
    assert (verdict.verdict, verdict.pull_request) == (APPLY, 2)
    # The same review, but a reviewed plan against another backend does not count.
    result = gate({**fresh, "backend": "portabilling+https://other.example"},
                  [_merge(new, "a.yaml")])
    assert result.verdicts[0].verdict == NO_REVIEW


def _repo(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.yaml").write_text("x\n")
    for args in (["init", "--quiet"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "a"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True,
                          text=True)
    return repo, head.stdout.strip()


@pytest.mark.parametrize("manifest, message", [
    ("{not json", "not a merge list (invalid JSON"),
    ('{"commit": "x"}', "a JSON list is expected"),
    ('[{"pull_request": 1}]', "item 1 needs a commit"),
    ('[{"commit": "0000000000000000000000000000000000000000", "pull_request": 1}]',
     "git rev-list failed"),
])
def test_a_bad_merge_list_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             manifest: str, message: str) -> None:
    repo, _ = _repo(tmp_path)
    monkeypatch.chdir(repo)
    fresh = tmp_path / "fresh.json"
    fresh.write_text(json.dumps(_plan()))
    (tmp_path / "merges.json").write_text(manifest)
    result = run_cli("gate", str(fresh), "--merges", str(tmp_path / "merges.json"),
                     "--out", str(tmp_path / "s.json"), "--out-unsafe", str(tmp_path / "u.json"))
    assert result.code == 1 and message in result.err, result
    assert "Traceback" not in result.err and not (tmp_path / "s.json").exists()


def test_hostile_file_names_cannot_add_markup_to_the_report_or_the_comment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, head = _repo(tmp_path)
    monkeypatch.chdir(repo)
    name = "a.yaml"
    hostile = _customer(1, name, [CHANGE])
    hostile["fingerprint"] = "sha256:" + "3" * 64
    reviewed = tmp_path / "reviewed.json"
    reviewed.write_text(json.dumps(_plan(_customer(1, name, [CHANGE]))))
    fresh_plan = _plan(hostile)
    fresh_plan["errors"] = [{"code": "yaml_syntax",
                             "message": "bad </code> [x](https://evil) @org/team\n::error::x",
                             "file": "x</code><img src=x>.yaml"}]
    fresh = tmp_path / "fresh.json"
    fresh.write_text(json.dumps(fresh_plan))
    (tmp_path / "merges.json").write_text(json.dumps([{"commit": head, "pull_request": 4,
                                                       "plan": str(reviewed)}]))
    comments = tmp_path / "comments"
    comments.mkdir()
    result = run_cli("gate", str(fresh), "--merges", str(tmp_path / "merges.json"), "--out",
                     str(tmp_path / "s.json"),
                     "--out-unsafe", str(tmp_path / "u.json"), "--comments", str(comments),
                     "--commit", head)
    assert result.code == 1
    assert (
        "<img" not in result.out
        and "](https://evil)" not in result.out
        and "@org/team" not in result.out
    )
    assert "\n::error" not in result.out and "\n::error" not in result.err
    assert "refused: the plan (x</code><img src=x>.yaml)" in result.err
    body = (comments / "4.md").read_text()
    assert "refused: stale" in body and f"({head[:12]})" in body
    assert json.loads((tmp_path / "s.json").read_text())["customers"] == []
