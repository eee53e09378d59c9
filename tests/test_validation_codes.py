"""One fixture per validation code, named after it: the code, the file and the line are asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Billing
from tests.helpers import FIXTURES, all_problems, marked_line

CODES = sorted(p.stem.replace("-", "_") for p in (FIXTURES / "specs").glob("*.yaml"))
# What a fixture needs besides billing: customer_not_owned needs the owners map binding its file.
NEEDS = {"customer_not_owned": ["--owners", str(FIXTURES / "owners.yaml")]}


@pytest.mark.parametrize("code", CODES)
def test_fixture_reports_its_code_at_the_marked_line(billing: Billing, code: str) -> None:
    billing.load(FIXTURES / "state.yaml")
    spec = f"fixtures/{code.replace('_', '-')}.yaml"
    result = billing.cli(*NEEDS.get(code, []), "plan", spec, "--format", "json")
    assert result.code == 1, result
    problems = [p for p in all_problems(result.json) if p["code"] == code]
    assert problems, f"no {code} in {all_problems(result.json)}"
    assert problems[0]["file"] == spec
    assert problems[0]["line"] == marked_line(spec), problems[0]
    assert problems[0]["column"] >= 1
    assert "Traceback" not in result.out + result.err


def test_every_code_of_the_contract_has_a_fixture() -> None:
    contract = {
        "yaml_syntax", "yaml_refused", "duplicate_key", "schema", "unknown_customer",
        "customer_mismatch", "duplicate_extension", "duplicate_auto_attendant",
        "unknown_product", "product_not_in_agreement", "wrong_product_type", "quantity_exceeded",
        "did_not_owned", "did_duplicate", "did_in_use", "block_not_permitted", "admin_blocked",
        "account_terminated", "customer_not_owned",
    }
    assert contract <= set(CODES)


def test_duplicate_customer_is_reported_on_the_later_file_and_neither_is_planned(
    billing: Billing,
) -> None:
    billing.load(FIXTURES / "state.yaml")
    result = billing.cli("plan", "dup-customer", "--format", "json")
    assert result.code == 1, result
    plan = result.json
    problem = next(p for p in all_problems(plan) if p["code"] == "duplicate_customer")
    assert problem["file"] == "dup-customer/b.yaml"
    assert problem["line"] == marked_line("dup-customer/b.yaml")
    assert plan["summary"]["changes"] == 0
    assert [c["customer"] for c in plan["customers"]] == [100]


def test_unknown_product_suggests_the_closest_name(billing: Billing) -> None:
    billing.load(FIXTURES / "state.yaml")
    result = billing.cli("plan", "fixtures/unknown-product.yaml")
    assert "did you mean 'Cloud PBX service'?" in result.out


def test_quantity_message_names_product_wanted_allowed_and_in_use(billing: Billing) -> None:
    billing.load(FIXTURES / "state.yaml")
    plan = billing.cli("plan", "fixtures/quantity-exceeded.yaml", "--format", "json").json
    message = next(p["message"] for p in all_problems(plan) if p["code"] == "quantity_exceeded")
    assert "'Call recording'" in message and "wants 3" in message and "allows 2" in message
    assert "2 use it now" in message


def test_all_problems_of_a_run_are_reported_together(billing: Billing, workdir: Path) -> None:
    billing.load(FIXTURES / "state.yaml")
    spec = workdir / "many.yaml"
    spec.write_text(
        "version: 1\ncustomer: {id: 100, name: Acme}\nextensions:\n"
        "  - {extension: '5', name: E, product: Hotdesk}\n"
        "  - {extension: '6', name: F, product: Fax to email}\n"
        "  - {extension: '7', name: G, product: Cloud PBX servce}\n"
        "  - {extension: '8', name: H, product: Cloud PBX service, dids: ['15559999999']}\n"
        "  - {extension: '3', name: Old, product: Cloud PBX service}\n"
    )
    result = billing.cli("plan", str(spec), "fixtures/unknown-customer.yaml", "--format", "json")
    codes = {p["code"] for p in all_problems(result.json)}
    assert codes == {
        "product_not_in_agreement", "wrong_product_type", "unknown_product", "did_not_owned",
        "account_terminated", "unknown_customer",
    }


def test_existing_assignment_outside_the_rules_is_a_warning_not_an_error(
    billing: Billing, workdir: Path
) -> None:
    # Alice keeps Call recording although the agreement is now full (trunk-1 + Alice = 2 of 2),
    # and the trunk's DID stays with the trunk: nothing new is assigned, so nothing is an error.
    billing.load(FIXTURES / "state.yaml")
    spec = workdir / "keep.yaml"
    spec.write_text(
        "version: 1\ncustomer: {id: 100, name: Acme}\nextensions:\n"
        "  - {extension: '1', name: Alice, product: Cloud PBX service, addons: [Call recording],"
        " dids: ['15550000001']}\n"
        "  - {extension: '2', name: Bob, product: Cloud PBX service}\n"
    )
    result = billing.cli("plan", str(spec), "--format", "json")
    assert result.code == 0, result
    assert result.json["summary"]["changes"] == 0
