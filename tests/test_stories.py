"""The product's stories end to end through the real CLI, on every backend."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import Billing, write
from tests.helpers import FIXTURES, REPO, all_problems, all_warnings

DEMO_STATE = REPO / "specs" / "demo-billing-state.yaml"
PLAN_SCHEMA = json.loads((REPO / "schemas" / "plan.schema.json").read_text())


def ops(plan: dict, customer: int | None = None) -> list[tuple[str, str]]:
    return [
        (c["op"], c["account"])
        for entry in plan["customers"]
        if customer is None or entry["customer"] == customer
        for c in entry["changes"]
    ]


def test_abc_story_end_to_end(billing: Billing) -> None:
    billing.load(DEMO_STATE)
    planned = billing.cli("plan", "specs/customers/abc.yaml", "--format", "json")
    assert planned.code == 0, planned
    jsonschema.validate(planned.json, PLAN_SCHEMA)
    changes = planned.json["customers"][0]["changes"]
    assert changes == [
        {"op": "create_account", "account": "ph46170aa1", "kind": "auto_attendant",
         "name": "Main menu", "product": "Auto attendant", "addons": [], "blocked": False},
        {"op": "create_account", "account": "ph46170x466", "kind": "extension", "name": "John Doe",
         "product": "Cloud PBX service", "addons": ["Call recording"], "blocked": False},
        {"op": "add_alias", "account": "ph46170aa1", "did": "12094555948"},
        {"op": "add_alias", "account": "ph46170x466", "did": "12094555949"},
    ]

    applied = billing.cli("apply", "specs/customers/abc.yaml", "--auto-approve")
    assert applied.code == 0, applied
    assert "customer 46170: applied, 4 change(s)" in applied.out

    aa = billing.account("ph46170aa1")
    ext = billing.account("ph46170x466")
    assert aa is not None and aa["dids"] == ["12094555948"] and aa["product"] == "Auto attendant"
    assert ext is not None and ext["product"] == "Cloud PBX service"
    assert ext["addons"] == ["Call recording"] and ext["name"] == "John Doe"

    again = billing.cli("plan", "specs/customers/abc.yaml", "--detailed-exitcode")
    assert again.code == 0, again
    assert "Plan: 0 change(s)" in again.out


def test_all_demo_specs_apply_and_converge(billing: Billing) -> None:
    billing.load(DEMO_STATE)
    assert billing.cli("plan", "specs/customers", "--detailed-exitcode").code == 2
    applied = billing.cli("apply", "specs/customers", "--auto-approve")
    assert applied.code == 0, applied
    again = billing.cli("plan", "specs/customers", "--detailed-exitcode", "--format", "json")
    assert again.code == 0, again
    assert again.json["summary"]["changes"] == 0
    night = billing.account("ph60001x12")
    assert night is not None and night["blocked_by"] == "customer"
    assert billing.account("ph60001x11")["status"] == "terminated"  # type: ignore[index]
    trunk = billing.account("sip-trunk-7")
    assert trunk is not None and trunk["status"] == "open" and trunk["dids"] == ["442071234502"]


def test_text_plan_shows_symbols_usage_and_summary(billing: Billing) -> None:
    billing.load(DEMO_STATE)
    result = billing.cli("plan", "specs/customers")
    assert result.code == 0
    assert "  + create extension ph46170x466 'John Doe'" in result.out
    assert "  - terminate ph60001x11" in result.out
    assert "Call recording 1->2/300" in result.out
    assert "Cloud PBX service 1->2/unlimited" in result.out
    assert result.out.rstrip().splitlines()[-1].startswith("Plan: 10 change(s) for 3 customer(s)")
    assert "\x1b[" not in result.out  # no colours off a terminal


def test_did_moves_between_two_extensions_in_one_plan(billing: Billing, workdir: Path) -> None:
    billing.load(FIXTURES / "state.yaml")
    spec = write(workdir / "move.yaml", """\
version: 1
customer: {id: 100, name: Acme}
extensions:
  - {extension: "1", name: Alice, product: Cloud PBX service, addons: [Call recording]}
  - {extension: "2", name: Bob, product: Cloud PBX service}
  - {extension: "4", name: Dan, product: Cloud PBX service, dids: ["15550000001"]}
""")
    plan = billing.cli("plan", str(spec), "--format", "json")
    assert plan.code == 0, plan
    assert ops(plan.json) == [
        ("remove_alias", "ph100x1"), ("create_account", "ph100x4"), ("add_alias", "ph100x4"),
    ]
    assert billing.cli("apply", str(spec), "--auto-approve").code == 0
    assert billing.account("ph100x1")["dids"] == []  # type: ignore[index]
    assert billing.account("ph100x4")["dids"] == ["15550000001"]  # type: ignore[index]
    assert billing.cli("plan", str(spec), "--detailed-exitcode").code == 0


def _many_extensions(workdir: Path, keep: int, total: int = 10, prune: bool = True) -> Path:
    lines = ["version: 1", "customer: {id: 100, name: Acme}", f"prune: {str(prune).lower()}",
             "extensions:"]
    for n in range(1, keep + 1):
        lines.append(f'  - {{extension: "{10 + n}", name: User {n}, product: Cloud PBX service}}')
    return write(workdir / f"keep-{keep}.yaml", "\n".join(lines) + "\n")


def _state_with_extensions(workdir: Path, total: int = 10) -> Path:
    text = (FIXTURES / "state.yaml").read_text()
    extra = "".join(
        f"  - {{id: ph100x{10 + n}, customer: 100, name: User {n}, product: Cloud PBX service}}\n"
        for n in range(1, total + 1)
    )
    state = text.replace("accounts:\n", "accounts:\n" + extra)
    # Only the generated extensions are managed and open: drop Alice and Bob from this story.
    state = "\n".join(
        line for line in state.splitlines() if "ph100x1," not in line and "ph100x2," not in line
    ) + "\n"
    return write(workdir / "state-10.yaml", state)


def test_prune_under_the_threshold_terminates_without_force(billing: Billing,
                                                            workdir: Path) -> None:
    billing.load(_state_with_extensions(workdir))
    spec = _many_extensions(workdir, keep=8)  # terminates 2 of 10 = 20%
    plan = billing.cli("plan", str(spec), "--format", "json").json
    assert ops(plan) == [("terminate_account", "ph100x19"), ("terminate_account", "ph100x20")]
    assert plan["customers"][0]["unsafe"] is False
    assert billing.cli("apply", str(spec), "--auto-approve").code == 0
    assert billing.account("ph100x20")["status"] == "terminated"  # type: ignore[index]
    assert billing.cli("plan", str(spec), "--detailed-exitcode").code == 0


def test_prune_over_the_threshold_is_unsafe_until_forced(billing: Billing, workdir: Path) -> None:
    billing.load(_state_with_extensions(workdir))
    spec = _many_extensions(workdir, keep=5)  # terminates 5 of 10 = 50%
    plan = billing.cli("plan", str(spec), "--format", "json")
    assert plan.code == 0  # unsafe is not an error
    entry = plan.json["customers"][0]
    assert entry["unsafe"] is True and "50%" in entry["unsafe_reason"]
    refused = billing.cli("apply", str(spec), "--auto-approve")
    assert refused.code == 1 and "unsafe" in refused.err
    assert billing.account("ph100x20")["status"] == "open"  # type: ignore[index]
    # The thresholds are settable.
    relaxed = billing.cli("plan", str(spec), "--unsafe-share", "0.6", "--format", "json")
    assert relaxed.json["customers"][0]["unsafe"] is False
    forced = billing.cli("apply", str(spec), "--auto-approve", "--force")
    assert forced.code == 0, forced
    assert billing.account("ph100x20")["status"] == "terminated"  # type: ignore[index]


def test_without_prune_missing_accounts_are_reported_and_kept(billing: Billing,
                                                              workdir: Path) -> None:
    billing.load(_state_with_extensions(workdir))
    spec = _many_extensions(workdir, keep=5, prune=False)
    plan = billing.cli("plan", str(spec), "--format", "json")
    assert plan.code == 0 and plan.json["summary"]["changes"] == 0
    warnings = [w for w in all_warnings(plan.json) if w["code"] == "not_in_spec"]
    assert len(warnings) == 5 and warnings[0]["line"] == 2


def test_saved_plan_stale_customer_refused_while_fresh_customer_applies(
    billing: Billing, workdir: Path
) -> None:
    billing.load(DEMO_STATE)
    saved = billing.cli("plan", "specs/customers", "--out", "plan.json", "--format", "json")
    assert saved.code == 0 and Path("plan.json").exists()
    # Someone changes ABC between plan and apply.
    write(workdir / "abc-only.yaml", "version: 1\ncustomer: {id: 46170, name: ABC}\nextensions:\n"
          "  - {extension: '100', name: Front desk, product: Cloud PBX service,"
          " addons: [Call recording], dids: ['12094555950']}\n")
    assert billing.cli("apply", "abc-only.yaml", "--auto-approve").code == 0
    result = billing.cli("apply", "--plan", "plan.json")
    assert result.code == 1, result
    assert "customer 46170: stale" in result.err
    assert "customer 51234: applied" in result.out and "customer 60001: applied" in result.out
    assert billing.account("ph46170x466") is None  # nothing of the stale plan was applied
    assert billing.account("ph51234x0203") is not None


def test_saved_plan_for_another_backend_is_refused(billing: Billing, workdir: Path,
                                                   tmp_path: Path) -> None:
    billing.load(DEMO_STATE)
    assert billing.cli("plan", "specs/customers", "--out", "plan.json").code == 0
    data = json.loads(Path("plan.json").read_text())
    data["backend"] = data["backend_resolved"] = "sqlite:////elsewhere/billing.db"
    Path("other.json").write_text(json.dumps(data))
    result = billing.cli("apply", "--plan", "other.json")
    assert result.code == 1 and "refusing" in result.err
    assert billing.account("ph46170x466") is None


def test_admin_blocked_account_refuses_every_kind_of_change(billing: Billing,
                                                            workdir: Path) -> None:
    billing.load(FIXTURES / "state.yaml")
    bob = {"extension": "2", "name": "Bob", "product": "Cloud PBX service"}
    variants = {
        "name": {**bob, "name": "Robert"},
        "product": {**bob, "product": "Auto attendant"},
        "addon": {**bob, "addons": ["Call recording"]},
        "did": {**bob, "dids": ["15550000003"]},
        "unblock": {**bob, "blocked": False},
    }
    for label, entry in variants.items():
        spec = write(workdir / f"bob-{label}.yaml", json.dumps(
            {"version": 1, "customer": {"id": 100, "name": "Acme"}, "extensions": [entry]}))
        result = billing.cli("plan", str(spec), "--format", "json")
        codes = [p["code"] for p in all_problems(result.json)]
        assert "admin_blocked" in codes, (label, codes)
        assert set(codes) <= {"admin_blocked", "quantity_exceeded"}, (label, codes)
        assert result.code == 1
    terminate = write(workdir / "bob-prune.yaml", json.dumps(
        {"version": 1, "customer": {"id": 100, "name": "Acme"}, "prune": True, "extensions": []}))
    codes = [p["code"]
             for p in all_problems(billing.cli("plan", str(terminate), "--format", "json").json)]
    assert "admin_blocked" in codes
    # Saying it is blocked, when it is, is no change.
    same = write(workdir / "bob-same.yaml", json.dumps(
        {"version": 1, "customer": {"id": 100, "name": "Acme"},
         "extensions": [{**bob, "blocked": True}]}))
    assert billing.cli("plan", str(same), "--detailed-exitcode").code == 0
    applied = billing.cli("apply", str(variants_file(workdir)), "--auto-approve")
    assert applied.code == 1
    assert billing.account("ph100x2")["name"] == "Bob"  # type: ignore[index]


def variants_file(workdir: Path) -> Path:
    return workdir / "bob-name.yaml"


def test_self_care_role_without_blocking_cannot_block_or_create_blocked(billing: Billing,
                                                                        workdir: Path) -> None:
    billing.load(FIXTURES / "state.yaml")
    spec = write(workdir / "beta.yaml", """\
version: 1
customer: {id: 200, name: Beta}
extensions:
  - {extension: "1", name: Carol, product: Cloud PBX service}
  - {extension: "2", name: Dave, product: Cloud PBX service, blocked: true}
""")
    result = billing.cli("apply", str(spec), "--auto-approve")
    assert result.code == 1
    assert [
        p["code"] for p in all_problems(billing.cli("plan", str(spec), "--format", "json").json)
    ] == ["block_not_permitted"]
    assert billing.account("ph200x2") is None


def test_block_and_unblock_when_permitted(billing: Billing, workdir: Path) -> None:
    billing.load(FIXTURES / "state.yaml")
    base = (
        "version: 1\ncustomer: {id: 100, name: Acme}\nextensions:\n"
        "  - {extension: '1', name: Alice, product: Cloud PBX service, addons: [Call recording], "
        "dids: ['15550000001'], blocked: %s}\n"
    )
    blocked = write(workdir / "block.yaml", base % "true")
    assert ops(billing.cli("plan", str(blocked), "--format", "json").json) == [("block", "ph100x1")]
    assert billing.cli("apply", str(blocked), "--auto-approve").code == 0
    assert billing.account("ph100x1")["blocked_by"] == "customer"  # type: ignore[index]
    unblocked = write(workdir / "unblock.yaml", base % "false")
    assert billing.cli("apply", str(unblocked), "--auto-approve").code == 0
    assert "blocked_by" not in billing.account("ph100x1")  # type: ignore[operator]


def test_export_then_plan_shows_no_changes(billing: Billing, workdir: Path) -> None:
    billing.load(DEMO_STATE)
    assert billing.cli("apply", "specs/customers", "--auto-approve").code == 0
    Path("exported").mkdir()  # --out never creates folders
    for customer in ("46170", "51234", "60001"):
        exported = billing.cli("export", "--customer", customer, "--out",
                               f"exported/{customer}.yaml")
        assert exported.code == 0, exported
    text = Path("exported/60001.yaml").read_text()
    assert "#   sip-trunk-7" in text  # unmanaged accounts are listed in a comment
    assert "blocked: true" in text  # the blocked night shift
    # admin-blocked front desk
    assert Path("exported/51234.yaml").read_text().count("blocked: true") == 1
    result = billing.cli("plan", "exported", "--detailed-exitcode", "--format", "json")
    assert result.code == 0, result
    assert result.json["summary"]["changes"] == 0


def test_apply_is_idempotent_and_history_records_each_change_once(billing: Billing) -> None:
    billing.load(DEMO_STATE)
    assert billing.cli("apply", "specs/customers", "--auto-approve").code == 0
    second = billing.cli("apply", "specs/customers", "--auto-approve")
    assert second.code == 0 and "Nothing to apply." in second.out
    history = billing.cli("history", "--format", "json")
    assert history.code == 0, history
    entries = history.json
    assert len(entries) == 10
    assert all(e["fingerprint"].startswith("sha256:") for e in entries)
    only_abc = billing.cli("history", "--customer", "46170", "--format", "json").json
    assert {e["customer"] for e in only_abc} == {46170} and len(only_abc) == 4
    text = billing.cli("history").out
    assert "customer 46170 create extension ph46170x466" in text


def test_history_records_the_git_commit_from_ci(billing: Billing) -> None:
    billing.load(DEMO_STATE)
    billing.env["GITHUB_SHA"] = "0123456789abcdef0123456789abcdef01234567"
    assert billing.cli("apply", "specs/customers/abc.yaml", "--auto-approve").code == 0
    entries = billing.cli("history", "--format", "json").json
    assert {e["git_commit"] for e in entries} == {"0123456789abcdef0123456789abcdef01234567"}


def test_apply_without_a_terminal_refuses_and_changes_nothing(billing: Billing) -> None:
    billing.load(DEMO_STATE)
    result = billing.cli("apply", "specs/customers")
    assert result.code == 1
    assert "--auto-approve" in result.err
    assert billing.account("ph46170x466") is None


def test_apply_skips_a_customer_with_errors_and_applies_the_others(billing: Billing,
                                                                   workdir: Path) -> None:
    billing.load(FIXTURES / "state.yaml")
    write(workdir / "mixed/acme.yaml", (workdir / "fixtures/quantity-exceeded.yaml").read_text())
    write(workdir / "mixed/beta.yaml", "version: 1\ncustomer: {id: 200, name: Beta}\nextensions:\n"
          "  - {extension: '1', name: Carol, product: Cloud PBX service}\n"
          "  - {extension: '9', name: Ivan, product: Cloud PBX service}\n")
    result = billing.cli("apply", "mixed", "--auto-approve")
    assert result.code == 1
    assert "customer 100: skipped" in result.err
    assert billing.account("ph200x9") is not None
    assert billing.account("ph100x5") is None


def test_detailed_exitcode(billing: Billing) -> None:
    billing.load(DEMO_STATE)
    assert billing.cli("plan", "specs/customers", "--detailed-exitcode").code == 2
    assert billing.cli("plan", "specs/customers").code == 0
    assert billing.cli("plan", "fixtures/schema.yaml", "--detailed-exitcode").code == 1


@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_machine_formats_keep_stdout_clean(billing: Billing, fmt: str) -> None:
    billing.load(DEMO_STATE)
    result = billing.cli("plan", "specs/customers", "--format", fmt, "--out", "saved.json")
    assert result.code == 0
    if fmt == "json":
        jsonschema.validate(result.json, PLAN_SCHEMA)
    else:
        assert result.out.startswith("<!-- reconciler:part 1/")
    assert "plan saved to saved.json" in result.err
    jsonschema.validate(json.loads(Path("saved.json").read_text()), PLAN_SCHEMA)
