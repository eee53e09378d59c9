"""Isolation: a spec only ever touches its own customer's managed accounts and DIDs of its own pool.

Whatever a spec for customer 100 contains (IDs that collide with another customer's accounts,
another customer's DIDs, prune with other customers' look-alike accounts around, a customer whose
ID is a prefix of another's), every other customer's part of the billing dump stays
byte-identical, and every account that changes is a managed account of the applying customer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import Result, run_cli
from tests.reliability_support import (
    FUZZ_EXAMPLES,
    assert_clean_failure,
    check_invariants,
    dump_db,
    isolation_violations,
    loaded_database,
    record_figure,
    spec_yaml,
)

# Customer 10's ID is a prefix of 100's and 1000's; 200 holds accounts that carry 100's patterns;
# 200's trunk holds a DID of 100's pool.
STATE = """
products:
  - {id: 1, name: Cloud PBX service, type: main}
  - {id: 2, name: Auto attendant, type: main}
  - {id: 3, name: Call recording, type: addon}
customers:
  - id: 10
    name: Ten
    self_care: {block_extensions: true}
    agreement: [{product: Cloud PBX service, quantity: 0}, {product: Auto attendant, quantity: 0},
                {product: Call recording, quantity: 0}]
    dids: ["15550001001", "15550001002"]
  - id: 100
    name: Acme
    self_care: {block_extensions: true}
    agreement: [{product: Cloud PBX service, quantity: 0}, {product: Auto attendant, quantity: 0},
                {product: Call recording, quantity: 0}]
    dids: ["15550000001", "15550000002", "15550000003", "15550000004"]
  - id: 1000
    name: Kilo
    self_care: {block_extensions: true}
    agreement: [{product: Cloud PBX service, quantity: 0}]
    dids: ["15550010001"]
  - id: 200
    name: Beta
    self_care: {block_extensions: false}
    agreement: [{product: Cloud PBX service, quantity: 0}, {product: Auto attendant, quantity: 0}]
    dids: ["15550000201", "15550000202"]
accounts:
  - {id: ph10x05, customer: 10, name: Ten-05, product: Cloud PBX service, dids: ["15550001001"]}
  - {id: ph10x5, customer: 10, name: Ten-5, product: Cloud PBX service}
  - {id: ph100x1, customer: 100, name: Alice, product: Cloud PBX service, dids: ["15550000001"]}
  - {id: ph100x9, customer: 100, name: Nine, product: Cloud PBX service}
  - {id: trunk-100, customer: 100, name: Trunk, product: Cloud PBX service}
  - {id: ph1000x5, customer: 1000, name: Kilo-5, product: Cloud PBX service, dids: ["15550010001"]}
  - {id: ph100x5, customer: 200, name: Squatter, product: Cloud PBX service}
  - {id: ph100aa1, customer: 200, name: Squatter menu, product: Auto attendant}
  - {id: ph200x1, customer: 200, name: Carol, product: Cloud PBX service, dids: ["15550000201"]}
  - {id: trunk-200, customer: 200, name: Trunk 200, product: Cloud PBX service,
     dids: ["15550000004"]}
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return loaded_database(tmp_path_factory.mktemp("isolation"), STATE)


@pytest.fixture
def db(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    copy = tmp_path / "billing.db"
    shutil.copyfile(template, copy)
    return copy


def customer_bytes(dump: dict[str, Any], customer: int) -> bytes:
    """One customer's part of the dump (its record and its accounts) as canonical bytes."""
    part = {
        "customer": [c for c in dump["customers"] if c["id"] == customer],
        "accounts": [a for a in dump["accounts"] if a["customer"] == customer],
    }
    return json.dumps(part, sort_keys=True, ensure_ascii=False).encode()


def apply_spec(db: Path, spec: dict[str, Any] | str, *extra: str, me: int | None = None
               ) -> tuple[Result, dict[str, Any], dict[str, Any]]:
    """Apply ``spec``; every customer but its own (``me``, default: the spec's)
    stays byte-identical."""
    if me is None:
        me = spec["customer"]["id"] if isinstance(spec, dict) else 100
    path = db.parent / "spec.yaml"
    path.write_text(spec if isinstance(spec, str) else spec_yaml(spec), encoding="utf-8")
    before = dump_db(db)
    result = run_cli("--backend", f"sqlite:///{db}", "apply", str(path), "--auto-approve", *extra)
    assert_clean_failure(result)
    after = dump_db(db)
    for other in (c["id"] for c in before["customers"] if c["id"] != me):
        assert customer_bytes(before, other) == customer_bytes(after, other), \
            f"customer {other} changed\n{result}"
    assert isolation_violations(before, after) == [], result
    assert check_invariants(db) == []
    record_figure("isolation: hostile specs applied, other customers byte-identical")
    return result, before, after


def spec(*extensions: dict[str, Any], customer: int = 100, name: str = "Acme",
         **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": 1, "customer": {"id": customer, "name": name}, **top}
    doc["extensions"] = [{"name": "X", "product": "Cloud PBX service", **e} for e in extensions]
    return doc


def codes(result: Result) -> str:
    return result.out + result.err


def test_an_extension_whose_id_belongs_to_another_customer_is_refused(db: Path) -> None:
    result, before, after = apply_spec(db, spec({"extension": "5", "name": "Mine now"}))
    assert result.code == 1 and "error[account_id_taken]" in codes(result), result
    assert after == before


def test_an_auto_attendant_whose_id_belongs_to_another_customer_is_refused(db: Path) -> None:
    doc = spec()
    doc["auto_attendants"] = [{"number": 1, "name": "Menu", "product": "Auto attendant"}]
    result, before, after = apply_spec(db, doc)
    assert result.code == 1 and "error[account_id_taken]" in codes(result), result
    assert after == before


@pytest.mark.parametrize("number", ["15550000201", "15550001001", "15550010001", "+1 555-000-0201"])
def test_dids_of_another_customers_pool_are_refused(db: Path, number: str) -> None:
    result, before, after = apply_spec(db, spec({"extension": "7", "dids": [number]}))
    assert result.code == 1 and "error[did_not_owned]" in codes(result), result
    assert after == before


def test_an_own_did_held_by_another_customers_account_is_refused(db: Path) -> None:
    result, before, after = apply_spec(db, spec({"extension": "7", "dids": ["15550000004"]}))
    assert result.code == 1 and "error[did_in_use]" in codes(result), result
    assert after == before


def test_prune_touches_only_the_customers_own_managed_accounts(db: Path) -> None:
    """prune: true for 100 with look-alikes around: ph100x5 and ph100aa1 (customer 200),
    ph1000x5 (customer 1000), ph10x05 (customer 10), and its own unmanaged trunk."""
    result, before, after = apply_spec(db, spec({"extension": "1", "name": "Alice",
                                                 "dids": ["15550000001"]},
                                                prune=True))
    assert result.code == 0, result
    changed = {a["id"]: a for a in after["accounts"]}
    assert changed["ph100x9"]["status"] == "terminated"  # its own, not listed: pruned
    for untouched in ("ph100x5", "ph100aa1", "ph1000x5", "ph10x05", "ph10x5", "trunk-100",
                      "ph100x1"):
        assert changed[untouched] == {a["id"]: a for a in before["accounts"]}[untouched], untouched


def test_prune_of_the_prefix_customer_leaves_the_longer_ids_alone(db: Path) -> None:
    """Customer 10 prunes: ph100x1, ph100x5, ph1000x5 start with 'ph10' but are not its accounts."""
    doc = spec({"extension": "05", "name": "Ten-05", "dids": ["15550001001"]}, customer=10,
               name="Ten", prune=True)
    path = db.parent / "spec.yaml"
    path.write_text(spec_yaml(doc))
    before = dump_db(db)
    result = run_cli("--backend", f"sqlite:///{db}", "apply", str(path), "--auto-approve")
    assert result.code == 0, result
    after = dump_db(db)
    assert isolation_violations(before, after) == []
    for other in (100, 200, 1000):
        assert customer_bytes(before, other) == customer_bytes(after, other)
    terminated = [a["id"] for a in after["accounts"] if a["status"] == "terminated"]
    assert terminated == ["ph10x5"]  # 10's own extension 5, not listed; 05 is a different extension


def test_extension_05_of_customer_10_and_5_of_customer_100_are_different_accounts(db: Path) -> None:
    # Extension "05" is the text written: ph10x05 exists, ph10x5 is a different account.
    result, _, after = apply_spec(db, spec({"extension": "05", "name": "Renamed",
                                            "dids": ["15550001001"]},
                                           {"extension": "5", "name": "Ten-5"}, customer=10,
                                           name="Ten"))
    assert result.code == 0, result
    names = {a["id"]: a["name"] for a in after["accounts"]}
    assert (
        names["ph10x05"] == "Renamed"
        and names["ph10x5"] == "Ten-5"
        and names["ph100x5"] == "Squatter"
    )


def test_a_wrong_name_for_another_customers_id_is_refused(db: Path) -> None:
    result, before, after = apply_spec(db, spec({"extension": "8"}, customer=200, name="Acme"))
    assert result.code == 1 and "error[customer_mismatch]" in codes(result), result
    assert after == before


def test_a_spec_cannot_reach_accounts_through_odd_extension_text(db: Path) -> None:
    for text in ["x5", "5 ", " 5", "+5", "5x1", "aa1", "0x5", "٥", "５", "../5",
                 "5;DROP TABLE accounts"]:
        result, before, after = apply_spec(db, spec({"extension": text}))
        assert result.code == 1 and "error[schema]" in codes(result), (text, result)
        assert after == before


def test_a_float_customer_id_does_not_create_foreign_shaped_accounts(db: Path) -> None:
    """Found: customer id 100.0 was accepted and created account 'ph100.0x7', outside every
    managed pattern (and prune never saw the customer's ph100x* accounts)."""
    apply_spec(db, "version: 1\ncustomer: {id: 100.0, name: Acme}\nextensions:\n"
                   "  - {extension: '7', name: X, product: Cloud PBX service}\n")


def test_an_extension_with_a_trailing_newline_is_refused(db: Path) -> None:
    """Found: extension "7\\n" passed the schema (Python's $ matches before a final newline) and
    created account 'ph100x7\\n'."""
    result, _, _ = apply_spec(db, 'version: 1\ncustomer: {id: 100, name: Acme}\nextensions:\n'
                                  '  - {extension: "7\\n", name: X, product: Cloud PBX service}\n')
    assert result.code == 1


def test_a_forged_saved_plan_cannot_touch_another_customer(db: Path) -> None:
    """Found: apply --plan executed whatever changes a saved plan listed, after checking only the
    fingerprint: a forged plan for customer 100 changed customer 200's accounts and DIDs."""
    path = db.parent / "spec.yaml"
    path.write_text(spec_yaml(spec({"extension": "7"})))
    plan_file = db.parent / "plan.json"
    assert (
        run_cli("--backend", f"sqlite:///{db}", "plan", str(path), "--out", str(plan_file)).code
        == 0
    )
    plan = json.loads(plan_file.read_text())
    plan["customers"][0]["changes"] = [
        {"op": "add_alias", "account": "ph200x1", "did": "15550000202"},
        {"op": "add_addon", "account": "ph200x1", "product": "Call recording"},
        {"op": "remove_alias", "account": "trunk-200", "did": "15550000004"},
        {"op": "create_account", "account": "ph200x9", "kind": "extension", "name": "Forged",
         "product": "Cloud PBX service", "addons": [], "blocked": False},
    ]
    plan_file.write_text(json.dumps(plan))
    before = dump_db(db)
    result = run_cli("--backend", f"sqlite:///{db}", "apply", "--plan", str(plan_file))
    after = dump_db(db)
    assert customer_bytes(before, 200) == customer_bytes(after, 200), result
    assert isolation_violations(before, after) == []
    assert result.code == 1


# ---- random hostile specs for customer 100 -----------------------------------------------------

ISOLATION = settings(
    max_examples=FUZZ_EXAMPLES or 30, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ALL_DIDS = ["15550000001", "15550000002", "15550000003", "15550000004", "15550000201",
            "15550000202", "15550001001", "15550001002", "15550010001"]


@st.composite
def hostile_specs(draw: st.DrawFn) -> dict[str, Any]:
    customer = draw(st.sampled_from([10, 100, 100, 1000]))
    name = {10: "Ten", 100: "Acme", 1000: "Kilo"}[customer]
    extensions = draw(st.lists(st.sampled_from(["1", "5", "05", "005", "9", "7", "1000", "0"]),
                               max_size=5, unique=True))
    doc: dict[str, Any] = {"version": 1, "customer": {"id": customer, "name": name},
                           "prune": draw(st.booleans())}
    doc["extensions"] = [
        {"extension": ext, "name": draw(st.sampled_from(["A", "Squatter", "Alice"])),
         "product": "Cloud PBX service",
         "dids": draw(st.lists(st.sampled_from(ALL_DIDS), max_size=2, unique=True)),
         **({"addons": ["Call recording"]} if draw(st.booleans()) else {})}
        for ext in extensions
    ]
    if draw(st.booleans()):
        doc["auto_attendants"] = [{"number": draw(st.sampled_from([1, 2])), "name": "Menu",
                                   "product": "Auto attendant",
                                   "dids": draw(st.lists(st.sampled_from(ALL_DIDS), max_size=1))}]
    return doc


@ISOLATION
@given(doc=hostile_specs())
def test_random_hostile_specs_never_touch_other_customers(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any]
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "random.db"
    shutil.copyfile(template, db)
    path = tmp_path / "spec.yaml"
    path.write_text(spec_yaml(doc))
    before = dump_db(db)
    result = run_cli("--backend", f"sqlite:///{db}", "apply", str(path), "--auto-approve")
    assert_clean_failure(result)
    after = dump_db(db)
    me = doc["customer"]["id"]
    for other in (10, 100, 200, 1000):
        if other != me:
            assert customer_bytes(before, other) == customer_bytes(after, other), result
    assert isolation_violations(before, after) == [], result
    if result.code == 1:
        assert after == before
    record_figure("isolation: random hostile specs applied")


def test_accounts_that_only_look_managed_are_never_pruned(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Found: the managed-ID pattern used \\d (any Unicode digit) and $ (matches before a final
    newline): billing accounts 'ph100x٥' and 'ph100x5\\n', not managed IDs, were pruned."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "state.yaml").write_text(
        "products: [{id: 1, name: Cloud PBX service, type: main}]\n"
        "customers: [{id: 100, name: Acme, agreement: [{product: Cloud PBX service, quantity: "
        "0}]}]\naccounts:\n"
        "  - {id: \"ph100x\\u0665\", customer: 100, name: Arabic five, product: Cloud PBX "
        "service}\n  - {id: \"ph100x5\\n\", customer: 100, name: Newline, product: Cloud PBX "
        "service}\n  - {id: ph100x1, customer: 100, name: One, product: Cloud PBX service}\n"
    )
    db = tmp_path / "billing.db"
    assert (
        run_cli("--backend", f"sqlite:///{db}", "state", "load", str(tmp_path / "state.yaml")).code
        == 0
    )
    result, before, after = apply_spec(db, spec({"extension": "1", "name": "One"}, prune=True))
    assert result.code == 0, result
    assert [a["status"] for a in after["accounts"]] == [a["status"] for a in before["accounts"]], (
        result
    )


def test_a_forged_saved_plan_cannot_break_the_agreement(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "state.yaml").write_text(
        "products: [{id: 1, name: Cloud PBX service, type: main}, {id: 2, name: Hotdesk, type: "
        "main},\n           {id: 3, name: Call recording, type: addon}]\n"
        "customers: [{id: 100, name: Acme, agreement: [{product: Cloud PBX service, quantity: 0},\n"
        "                                              {product: Call recording, quantity: 1}]}]\n"
        "accounts: [{id: ph100x1, customer: 100, name: One, product: Cloud PBX service,\n"
        "            addons: [Call recording]}]\n"
    )
    db = tmp_path / "billing.db"
    assert (
        run_cli("--backend", f"sqlite:///{db}", "state", "load", str(tmp_path / "state.yaml")).code
        == 0
    )
    path = tmp_path / "spec.yaml"
    path.write_text(spec_yaml(spec({"extension": "1", "name": "One", "addons": ["Call recording"]},
                                   {"extension": "2", "name": "Two"})))
    plan_file = tmp_path / "plan.json"
    assert (
        run_cli("--backend", f"sqlite:///{db}", "plan", str(path), "--out", str(plan_file)).code
        == 0
    )
    plan = json.loads(plan_file.read_text())
    plan["customers"][0]["changes"] = [
        {"op": "set_product", "account": "ph100x1", "from": "Cloud PBX service", "to": "Hotdesk"},
        {"op": "add_addon", "account": "ph100x1", "product": "Cloud PBX service"},
        {"op": "create_account", "account": "ph100x2", "kind": "extension", "name": "Two",
         "product": "Cloud PBX service", "addons": ["Call recording"], "blocked": False},
    ]
    plan_file.write_text(json.dumps(plan))
    before = dump_db(db)
    result = run_cli("--backend", f"sqlite:///{db}", "apply", "--plan", str(plan_file))
    assert_clean_failure(result)
    assert dump_db(db) == before, result
    assert check_invariants(db) == []
    assert result.code == 1
