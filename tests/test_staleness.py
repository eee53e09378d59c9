"""A stale saved plan is explained: which accounts and fields changed in billing, old -> new."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Billing
from tests.helpers import FIXTURES, run_cli

SPEC = """\
version: 1
customer: {id: 100, name: Acme}
extensions:
  - {extension: "1", name: Alice, product: Cloud PBX service, addons: [Call recording], dids: ["15550000001"]}
  - {extension: "5", name: New, product: Cloud PBX service}
"""  # noqa: E501 (the spec as a user writes it; problems point at its lines)


def _changed_state(tmp_path: Path) -> Path:
    """The fixture billing state after someone changed it by hand."""
    text = (FIXTURES / "state.yaml").read_text()
    text = text.replace("name: Alice, product", "name: Alicia, product")
    text = text.replace("{product: Call recording, quantity: 2}",
                        "{product: Call recording, quantity: 5}")
    text = text.replace('dids: ["15550000001"]}', 'dids: ["15550000001", "15550000002"]}')
    text += "  - {id: ph100x7, customer: 100, name: Added by hand, product: Cloud PBX service}\n"
    path = tmp_path / "changed.yaml"
    path.write_text(text)
    return path


def _setup(tmp_path: Path) -> tuple[str, Path, Path]:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    assert run_cli("--backend", url, "state", "load", str(FIXTURES / "state.yaml")).code == 0
    spec = tmp_path / "acme.yaml"
    spec.write_text(SPEC)
    plan_file = tmp_path / "plan.json"
    planned = run_cli("--backend", url, "plan", str(spec), "--out", str(plan_file),
                      "--format", "json")
    assert planned.code == 0, planned
    # The state the plan was made from is in the saved plan, not in what plan prints.
    assert "state_at_plan" not in planned.json["customers"][0]
    assert "state_at_plan" in json.loads(plan_file.read_text())["customers"][0]
    return url, spec, plan_file


def test_apply_of_a_stale_plan_names_what_changed_in_billing(tmp_path: Path) -> None:
    url, _, plan_file = _setup(tmp_path)
    assert run_cli("--backend", url, "state", "load", str(_changed_state(tmp_path))).code == 0
    before = run_cli("--backend", url, "state", "dump", "--format", "json").out
    result = run_cli("--backend", url, "apply", "--plan", str(plan_file))
    assert result.code == 1
    said = result.out + result.err
    assert "customer 100: stale" in said
    assert "account ph100x1 name: 'Alice' -> 'Alicia'" in said
    assert "account ph100x1 dids: [15550000001] -> [15550000001, 15550000002]" in said
    assert (
        "account ph100x7 was created in billing ('Added by hand', product 'Cloud PBX service')"
        in said
    )
    assert "agreement Call recording quantity: 2 -> 5" in said
    # Nothing was applied for the stale customer.
    assert run_cli("--backend", url, "state", "dump", "--format", "json").out == before


def test_a_plan_saved_without_the_state_is_still_refused_when_stale(tmp_path: Path) -> None:
    url, _, plan_file = _setup(tmp_path)
    data = json.loads(plan_file.read_text())
    for customer in data["customers"]:
        del customer["state_at_plan"]
    plan_file.write_text(json.dumps(data))
    assert run_cli("--backend", url, "state", "load", str(_changed_state(tmp_path))).code == 0
    result = run_cli("--backend", url, "apply", "--plan", str(plan_file))
    assert result.code == 1
    assert (
        "customer 100: stale: billing state changed since the plan was made; plan again"
        in result.err
    )


def test_a_fresh_saved_plan_applies(tmp_path: Path) -> None:
    url, spec, plan_file = _setup(tmp_path)
    result = run_cli("--backend", url, "apply", "--plan", str(plan_file))
    assert result.code == 0, result
    again = run_cli("--backend", url, "plan", str(spec), "--format", "json")
    assert again.json["summary"]["changes"] == 0


def test_a_saved_plan_read_back_renders_without_its_state(tmp_path: Path) -> None:
    # What renders a saved plan again (show) gets the plan as plan printed it; the state stays
    # in the file for apply --plan.
    from reconciler.plan import Plan

    _, _, plan_file = _setup(tmp_path)
    saved = json.loads(plan_file.read_text())
    plan = Plan.from_dict(saved)
    assert "state_at_plan" not in plan.to_dict()["customers"][0]
    assert (
        plan.to_dict(with_state=True)["customers"][0]["state_at_plan"]
        == saved["customers"][0]["state_at_plan"]
    )


def test_a_stale_plan_is_explained_on_either_backend(billing: Billing, tmp_path: Path) -> None:
    billing.load(FIXTURES / "state.yaml")
    spec = tmp_path / "acme.yaml"
    spec.write_text(SPEC)
    plan_file = tmp_path / "plan.json"
    assert billing.cli("plan", str(spec), "--out", str(plan_file)).code == 0
    billing.load(_changed_state(tmp_path))
    result = billing.cli("apply", "--plan", str(plan_file))
    assert result.code == 1
    said = result.out + result.err
    assert "account ph100x1 name: 'Alice' -> 'Alicia'" in said
    assert "agreement Call recording quantity: 2 -> 5" in said

