"""The CI path through the real CLI: changed-only planning, annotations, job summary, Markdown."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import Billing
from tests.helpers import FIXTURES, REPO, marked_line, run_cli


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_changed_since_plans_only_changed_customers_and_never_prunes_a_deleted_spec(
    sqlite_billing: Billing, workdir: Path
) -> None:
    sqlite_billing.load(REPO / "specs" / "demo-billing-state.yaml")
    _git(workdir, "init", "-q", "-b", "main")
    _git(workdir, "config", "user.email", "t@example.invalid")
    _git(workdir, "config", "user.name", "t")
    _git(workdir, "add", "specs")
    _git(workdir, "commit", "-q", "-m", "specs")
    abc = workdir / "specs/customers/abc.yaml"
    abc.write_text(abc.read_text().replace("name: John Doe", "name: John Q. Doe"))
    (workdir / "specs/customers/contoso-logistics.yaml").unlink()
    result = sqlite_billing.cli("plan", "--changed-since", "HEAD", "specs/customers",
                                "--format", "json")
    assert result.code == 0, result
    plan = result.json
    assert [c["customer"] for c in plan["customers"]] == [46170]
    assert any("contoso-logistics.yaml was deleted" in note for note in plan["notes"])
    assert not any(c["op"] == "terminate_account" for e in plan["customers"] for c in e["changes"])
    text = sqlite_billing.cli("plan", "--changed-since", "HEAD", "specs/customers")
    assert "note: specs/customers/contoso-logistics.yaml was deleted" in text.out


def test_changed_since_an_unknown_ref_or_outside_git_is_a_clear_error(
    sqlite_billing: Billing, workdir: Path
) -> None:
    sqlite_billing.load(REPO / "specs" / "demo-billing-state.yaml")
    outside = sqlite_billing.cli("plan", "--changed-since", "main", "specs/customers")
    assert outside.code == 1 and "git" in outside.err and "Traceback" not in outside.err
    _git(workdir, "init", "-q", "-b", "main")
    unknown = sqlite_billing.cli("plan", "--changed-since", "no-such-ref", "specs/customers")
    assert unknown.code == 1 and "unknown git ref 'no-such-ref'" in unknown.err


def test_github_actions_annotations_and_job_summary(sqlite_billing: Billing, workdir: Path) -> None:
    sqlite_billing.load(FIXTURES / "state.yaml")
    summary = workdir / "summary.md"
    sqlite_billing.env.update({"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    spec = "fixtures/unknown-product.yaml"
    result = sqlite_billing.cli("plan", spec, "--format", "json")
    assert result.code == 1
    line = marked_line(spec)
    assert f"::error file={spec},line={line},col=14,title=unknown_product::" in result.err
    assert isinstance(result.json, dict)  # stdout is still the JSON document alone
    assert "<!-- reconciler:part 1/" in summary.read_text()


def test_markdown_plan_has_part_headers_summary_first_and_a_section_per_customer(
    sqlite_billing: Billing,
) -> None:
    sqlite_billing.load(REPO / "specs" / "demo-billing-state.yaml")
    result = sqlite_billing.cli("plan", "specs/customers", "--format", "markdown")
    assert result.code == 0
    assert result.out.startswith("<!-- reconciler:part 1/1 -->")
    assert result.out.count("<details") == result.out.count("</details>") == 3
    assert result.out.index("10") < result.out.index("<details")


def test_empty_backend_variable_means_the_default(workdir: Path) -> None:
    # GitHub passes an unset repository variable as an empty string.
    assert run_cli("state", "load", "specs/demo-billing-state.yaml").code == 0
    result = run_cli("plan", "specs/customers", env={"RECONCILER_BACKEND": ""})
    assert result.code == 0, result
