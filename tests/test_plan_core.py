"""The plan's rules as pure functions: safety at its boundaries, self-care, fingerprint, messages.

These tests build a customer's billing state in memory and plan one spec file against it, with no
backend and no CLI, so they run in well under a second. They are also the test set that mutation
testing runs (see docs/mutation-and-bench.md): each rule is pinned at and around its boundary, and
each problem's message and location are asserted as a person reads them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.diff import fingerprint, plan_customer
from reconciler.model import Account, Catalogue, Customer, CustomerState, Product
from reconciler.plan import CustomerPlan, PlanOptions
from reconciler.spec import load_spec
from tests.helpers import marked_line

CATALOGUE = Catalogue((
    Product(1, "Cloud PBX service", "main"),
    Product(2, "Auto attendant", "main"),
    Product(3, "Call recording", "addon"),
    Product(4, "Fax to email", "addon"),
    Product(5, "Hotdesk", "main"),
))
POOL = frozenset(f"1555000000{n}" for n in range(10))
AGREEMENT = (("Auto attendant", 1), ("Call recording", 2), ("Cloud PBX service", 0))


def acme(**changes: Any) -> Customer:
    base = Customer(100, "Acme", True, AGREEMENT, POOL)
    return dataclasses.replace(base, **changes)


def ext(n: int | str, **fields: Any) -> Account:
    values: dict[str, Any] = {"name": f"User {n}", "product": "Cloud PBX service"}
    values.update(fields)
    return Account(f"ph100x{n}", 100, **values)


def state_of(*accounts: Account, customer: Customer | None = None, **extra: Any) -> CustomerState:
    return CustomerState(customer or acme(), tuple(accounts), CATALOGUE, **extra)


def plan_text(tmp_path: Path, text: str, state: CustomerState | None,
              options: PlanOptions | None = None, *, loads: bool = True) -> CustomerPlan:
    """The plan of ``text`` against ``state``. With ``loads=False`` the spec itself has errors
    (found when it is read): it is checked from what could be read, and gets no changes."""
    spec = tmp_path / "acme.yaml"
    spec.write_text(text)
    loaded = load_spec(str(spec))
    assert (loaded.spec is not None) == loads, loaded.errors
    return plan_customer(loaded, state, options)


def spec_of(entries: list[str], *, prune: bool = False, name: str = "Acme") -> str:
    lines = ["version: 1", f"customer: {{id: 100, name: {name}}}", f"prune: {str(prune).lower()}",
             "extensions:" if entries else "extensions: []"]
    # An entry that starts with a space continues the previous one (a flow mapping over lines).
    lines += [f"  {entry}" if entry.startswith(" ") else f"  - {entry}" for entry in entries]
    return "\n".join(lines) + "\n"


def column(tmp_path: Path, line: int, text: str) -> int:
    """The 1-based column where ``text`` starts on ``line`` of the planned spec file."""
    return (tmp_path / "acme.yaml").read_text().splitlines()[line - 1].index(text) + 1


def located(plan_problems: list[Any]) -> list[tuple[str, int, int | None]]:
    return [(p.code, p.line, p.column) for p in plan_problems]


def ops(plan: CustomerPlan) -> list[tuple[str, str]]:
    return [(c.op, c.account) for c in plan.changes]


def codes(problems: list[Any]) -> list[str]:
    return [p.code for p in problems]


# ---- safety: more than 25% of at least 8 open managed accounts -----------------------------------


def fleet_plan(tmp_path: Path, managed: int, terminated: int, blocked: int,
               options: PlanOptions | None = None, extra: tuple[Account, ...] = ()) -> CustomerPlan:
    """A customer with ``managed`` open extensions 1..N; the spec prunes the last ``terminated``
    of them and blocks the first ``blocked``."""
    accounts = [ext(n) for n in range(1, managed + 1)]
    kept = managed - terminated
    entries = [
        f"{{extension: '{n}', name: User {n}, product: Cloud PBX service"
        + (", blocked: true}" if n <= blocked else "}")
        for n in range(1, kept + 1)
    ]
    return plan_text(tmp_path, spec_of(entries, prune=True), state_of(*accounts, *extra), options)


@pytest.mark.parametrize(
    ("managed", "terminated", "blocked", "unsafe"),
    [
        (8, 2, 0, False),   # exactly 25% is not more than 25%
        (8, 3, 0, True),    # 37.5%; 8 accounts are enough for the rule to apply
        (8, 0, 2, False),   # two blocks of eight: exactly 25%
        (8, 0, 3, True),    # blocks are as drastic as terminations
        (8, 1, 1, False),   # one of each: 25%
        (8, 2, 1, True),    # mixed, 37.5%
        (8, 1, 2, True),    # mixed, 37.5%
        (7, 2, 0, False),   # 29%, but fewer than 8 managed accounts
        (7, 3, 3, False),   # 86% of 7: still too few accounts to judge
        (9, 2, 0, False),   # 22%
        (9, 3, 0, True),    # 33%
        (12, 3, 0, False),  # exactly 25% again
        (12, 2, 2, True),   # 33%
    ],
)
def test_unsafe_means_more_than_a_quarter_of_at_least_eight_managed_accounts(
    tmp_path: Path, managed: int, terminated: int, blocked: int, unsafe: bool
) -> None:
    plan = fleet_plan(tmp_path, managed, terminated, blocked)
    assert (
        sorted(c.op for c in plan.changes)
        == ["block"] * blocked + ["terminate_account"] * terminated
    )
    assert plan.errors == []
    assert plan.unsafe is unsafe
    if not unsafe:
        assert plan.unsafe_reason is None


def test_unsafe_reason_names_the_counts_the_share_and_the_limit(tmp_path: Path) -> None:
    plan = fleet_plan(tmp_path, 8, 2, 1)
    assert plan.unsafe_reason == (
        "the plan terminates or blocks 3 of 8 managed accounts (38%), over the 25% limit; "
        "apply needs --force"
    )
    assert plan.to_dict()["unsafe"] is True
    assert plan.to_dict()["unsafe_reason"] == plan.unsafe_reason


def test_only_open_managed_accounts_count_towards_the_eight(tmp_path: Path) -> None:
    # Seven open extensions, plus a terminated one, an unmanaged trunk and an account that looks
    # managed but for another customer: still seven, so terminating three is not judged.
    others = (ext(90, status="terminated"), Account("trunk-1", 100, "Trunk", "Cloud PBX service"),
              Account("ph999x1", 100, "Look-alike", "Cloud PBX service"))
    plan = fleet_plan(tmp_path, 7, 3, 0, extra=others)
    assert ops(plan) == [("terminate_account", "ph100x5"), ("terminate_account", "ph100x6"),
                         ("terminate_account", "ph100x7")]
    assert plan.unsafe is False


def test_unblocking_and_renaming_are_not_drastic(tmp_path: Path) -> None:
    accounts = [ext(n, blocked_by="customer" if n <= 4 else None) for n in range(1, 9)]
    entries = [f"{{extension: '{n}', name: Renamed {n}, product: Cloud PBX service, "
               f"blocked: false}}"
               for n in range(1, 9)]
    plan = plan_text(tmp_path, spec_of(entries), state_of(*accounts))
    assert sorted(c.op for c in plan.changes) == ["set_name"] * 8 + ["unblock"] * 4
    assert plan.unsafe is False


def test_blocking_an_account_that_is_already_blocked_is_no_change_and_not_counted(
    tmp_path: Path,
) -> None:
    accounts = [ext(n, blocked_by="customer" if n <= 4 else None) for n in range(1, 9)]
    entries = [f"{{extension: '{n}', name: User {n}, product: Cloud PBX service, blocked: true}}"
               for n in range(1, 5)] + \
              [f"{{extension: '{n}', name: User {n}, product: Cloud PBX service}}"
               for n in range(5, 9)]
    plan = plan_text(tmp_path, spec_of(entries), state_of(*accounts))
    assert plan.changes == [] and plan.unsafe is False


@pytest.mark.parametrize(
    ("managed", "terminated", "unsafe"),
    [(4, 2, False), (4, 3, True), (3, 3, False), (5, 3, True)],
)
def test_unsafe_share_and_minimum_are_settable(
    tmp_path: Path, managed: int, terminated: int, unsafe: bool
) -> None:
    options = PlanOptions(unsafe_share=0.5, unsafe_min_accounts=4)
    plan = fleet_plan(tmp_path, managed, terminated, 0, options)
    assert plan.unsafe is unsafe
    if unsafe:
        assert plan.unsafe_reason is not None and "over the 50% limit" in plan.unsafe_reason


def test_default_safety_options_are_a_quarter_and_eight() -> None:
    assert PlanOptions() == PlanOptions(unsafe_share=0.25, unsafe_min_accounts=8)


# ---- self-care: block and unblock ----------------------------------------------------------------


BLOCKED_ALICE = ext(1, name="Alice", blocked_by="customer")


@pytest.mark.parametrize("permitted", [True, False])
def test_unblock_needs_the_self_care_role(tmp_path: Path, permitted: bool) -> None:
    text = spec_of(["{extension: '1', name: Alice, product: Cloud PBX service,",
                    "  blocked: false}  # <-"])
    plan = plan_text(tmp_path, text,
                     state_of(BLOCKED_ALICE, customer=acme(block_extensions=permitted)))
    assert ops(plan) == [("unblock", "ph100x1")]
    if permitted:
        assert plan.errors == []
        return
    [problem] = plan.errors
    assert problem.code == "block_not_permitted"
    assert problem.message == (
        "the customer's self-care role does not allow it to unblock extensions (ph100x1)"
    )
    assert problem.line == marked_line(tmp_path / "acme.yaml")


@pytest.mark.parametrize("permitted", [True, False])
def test_block_and_create_blocked_need_the_self_care_role(tmp_path: Path, permitted: bool) -> None:
    text = spec_of(["{extension: '1', name: Alice, product: Cloud PBX service, blocked: true}",
                    "{extension: '2', name: Bob, product: Cloud PBX service, blocked: true}"])
    plan = plan_text(tmp_path, text, state_of(ext(1, name="Alice"),
                                              customer=acme(block_extensions=permitted)))
    assert ops(plan) == [("block", "ph100x1"), ("create_account", "ph100x2")]
    assert plan.changes[1].blocked is True
    if permitted:
        assert plan.errors == []
    else:
        assert [(p.code, p.message, p.line) for p in plan.errors] == [
            ("block_not_permitted",
             "the customer's self-care role does not allow it to block extensions (ph100x1)", 5),
            ("block_not_permitted",
             "the customer's self-care role does not allow it to block extensions (ph100x2)", 6),
        ]


def test_creating_an_unblocked_account_needs_no_self_care_role(tmp_path: Path) -> None:
    text = spec_of(["{extension: '2', name: Bob, product: Cloud PBX service, blocked: false}",
                    "{extension: '3', name: Carol, product: Cloud PBX service}"])
    plan = plan_text(tmp_path, text, state_of(customer=acme(block_extensions=False)))
    assert [c.blocked for c in plan.changes] == [False, False]
    assert plan.errors == []


def test_unblocking_an_admin_block_is_admin_blocked_not_a_self_care_question(
    tmp_path: Path,
) -> None:
    text = spec_of(["{extension: '1', name: Alice, product: Cloud PBX service, blocked: false}"])
    state = state_of(ext(1, name="Alice", blocked_by="admin"),
                     customer=acme(block_extensions=False))
    plan = plan_text(tmp_path, text, state)
    assert [(p.code, p.message) for p in plan.errors] == [(
        "admin_blocked",
        ("ph100x1 is blocked by the administrator; the customer cannot change it "
        "(the spec asks for: unblock)"),
    )]


def test_blocked_omitted_leaves_the_block_as_it_is(tmp_path: Path) -> None:
    text = spec_of(["{extension: '1', name: Alice, product: Cloud PBX service}",
                    "{extension: '2', name: User 2, product: Cloud PBX service, blocked: false}"])
    plan = plan_text(tmp_path, text, state_of(BLOCKED_ALICE, ext(2)))
    assert plan.changes == [] and plan.errors == []


# ---- the fingerprint covers everything the plan reads --------------------------------------------


FINGERPRINT_BASE = state_of(
    ext(1, name="Alice", addons=("Call recording",), dids=("15550000001",)),
    ext(2, name="Bob", blocked_by="customer"),
    ext(3, status="terminated"),
    foreign_ids=frozenset({"ph100x77"}),
    foreign_dids=frozenset({"15550000009"}),
)


def _account(state: CustomerState, account_id: str, **changes: Any) -> CustomerState:
    accounts = tuple(dataclasses.replace(a, **changes) if a.id == account_id else a
                     for a in state.accounts)
    return dataclasses.replace(state, accounts=accounts)


def _customer(state: CustomerState, **changes: Any) -> CustomerState:
    return dataclasses.replace(state, customer=dataclasses.replace(state.customer, **changes))


def _catalogue(state: CustomerState, products: tuple[Product, ...]) -> CustomerState:
    return dataclasses.replace(state, catalogue=Catalogue(products))


FINGERPRINT_CHANGES: dict[str, Callable[[CustomerState], CustomerState]] = {
    "account blocked by the customer": lambda s: _account(s, "ph100x1", blocked_by="customer"),
    "account blocked by the administrator": lambda s: _account(s, "ph100x1", blocked_by="admin"),
    "customer block turned into an admin block": lambda s: _account(s, "ph100x2",
                                                                    blocked_by="admin"),
    "account unblocked": lambda s: _account(s, "ph100x2", blocked_by=None),
    "account terminated": lambda s: _account(s, "ph100x1", status="terminated"),
    "account reopened": lambda s: _account(s, "ph100x3", status="open"),
    "account renamed": lambda s: _account(s, "ph100x1", name="Alicia"),
    "account product changed": lambda s: _account(s, "ph100x1", product="Hotdesk"),
    "add-on added": lambda s: _account(s, "ph100x1", addons=("Call recording", "Fax to email")),
    "add-on removed": lambda s: _account(s, "ph100x1", addons=()),
    "DID added": lambda s: _account(s, "ph100x1", dids=("15550000001", "15550000002")),
    "DID removed": lambda s: _account(s, "ph100x1", dids=()),
    "DID swapped": lambda s: _account(s, "ph100x1", dids=("15550000002",)),
    "account ID changed": lambda s: _account(s, "ph100x2", id="ph100x22"),
    "account created": lambda s: dataclasses.replace(s, accounts=s.accounts + (ext(4),)),
    "account gone": lambda s: dataclasses.replace(s, accounts=s.accounts[1:]),
    "customer renamed": lambda s: _customer(s, name="Acme Ltd"),
    "customer id": lambda s: _customer(s, id=101),
    "self-care permission withdrawn": lambda s: _customer(s, block_extensions=False),
    "agreement quantity changed": lambda s: _customer(
        s, agreement=(("Auto attendant", 1), ("Call recording", 3), ("Cloud PBX service", 0))),
    "agreement product dropped": lambda s: _customer(
        s, agreement=(("Auto attendant", 1), ("Cloud PBX service", 0))),
    "agreement product added": lambda s: _customer(s, agreement=AGREEMENT + (("Hotdesk", 0),)),
    "DID left the pool": lambda s: _customer(s, dids=POOL - {"15550000005"}),
    "DID joined the pool": lambda s: _customer(s, dids=POOL | {"15550000010"}),
    "catalogue product renamed": lambda s: _catalogue(
        s, tuple(dataclasses.replace(p, name="Recording") if p.id == 3 else p
                 for p in CATALOGUE.products)),
    "catalogue product type changed": lambda s: _catalogue(
        s, tuple(dataclasses.replace(p, type="addon") if p.id == 5 else p
                 for p in CATALOGUE.products)),
    "catalogue product id changed": lambda s: _catalogue(
        s, tuple(dataclasses.replace(p, id=50) if p.id == 5 else p for p in CATALOGUE.products)),
    "catalogue product added": lambda s: _catalogue(s, CATALOGUE.products
                                                    + (Product(6, "Voicemail", "addon"),)),
    "catalogue product removed": lambda s: _catalogue(s, CATALOGUE.products[:-1]),
    "another customer took a managed ID": lambda s: dataclasses.replace(
        s, foreign_ids=s.foreign_ids | {"ph100x78"}),
    "another customer took a pool DID": lambda s: dataclasses.replace(
        s, foreign_dids=s.foreign_dids | {"15550000008"}),
}


@pytest.mark.parametrize("what", sorted(FINGERPRINT_CHANGES))
def test_fingerprint_changes_when_billing_changes(what: str) -> None:
    changed = FINGERPRINT_CHANGES[what](FINGERPRINT_BASE)
    assert changed != FINGERPRINT_BASE
    assert fingerprint(changed) != fingerprint(FINGERPRINT_BASE), what


def test_fingerprint_is_a_sha256_that_does_not_depend_on_the_order_billing_lists_things() -> None:
    base = fingerprint(FINGERPRINT_BASE)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", base)
    shuffled = dataclasses.replace(
        FINGERPRINT_BASE,
        accounts=tuple(reversed(FINGERPRINT_BASE.accounts)),
        catalogue=Catalogue(tuple(reversed(CATALOGUE.products))),
        customer=dataclasses.replace(FINGERPRINT_BASE.customer,
                                     agreement=tuple(reversed(AGREEMENT))),
    )
    shuffled = _account(shuffled, "ph100x1", addons=("Call recording",), dids=("15550000001",))
    assert fingerprint(shuffled) == base
    two = dataclasses.replace(FINGERPRINT_BASE, accounts=(
        ext(1, addons=("Call recording", "Fax to email"), dids=("15550000001", "15550000002")),))
    two_reversed = dataclasses.replace(FINGERPRINT_BASE, accounts=(
        ext(1, addons=("Fax to email", "Call recording"), dids=("15550000002", "15550000001")),))
    assert fingerprint(two) == fingerprint(two_reversed)


def test_fingerprint_is_the_sha256_of_one_canonical_json_document() -> None:
    # The form is part of the saved-plan format: a plan saved before an upgrade must not turn
    # stale after it. This states it in full; changing it on purpose means changing this text.
    state = CustomerState(
        Customer(100, "Zoë & Co", True, (("Call recording", 2), ("Cloud PBX service", 0)),
                 frozenset({"15550000002", "15550000001"})),
        (Account("ph100x1", 100, "Zoë", "Cloud PBX service", ("Call recording",), ("15550000001",),
                 "customer"),),
        Catalogue((Product(3, "Call recording", "addon"), Product(1, "Cloud PBX service", "main"))),
        frozenset({"ph100x9"}), frozenset({"15550000009"}),
    )
    canonical = (
        '{"customer":[100,"Zoë & Co",true],'
        '"agreement":[["Call recording",2],["Cloud PBX service",0]],'
        '"pool":["15550000001","15550000002"],'
        '"accounts":[["ph100x1","Zoë","Cloud PBX service",["Call recording"],["15550000001"],'
        '"customer","open"]],'
        '"catalogue":[[1,"Cloud PBX service","main"],[3,"Call recording","addon"]],'
        '"foreign":[["ph100x9"],["15550000009"]]}'
    )
    assert fingerprint(state) == "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_the_plan_carries_the_fingerprint_of_the_state_it_was_computed_from(tmp_path: Path) -> None:
    text = spec_of(["{extension: '1', name: Alice, product: Cloud PBX service}"])
    plan = plan_text(tmp_path, text, FINGERPRINT_BASE)
    assert plan.fingerprint == fingerprint(FINGERPRINT_BASE)
    assert plan.name == "Acme"


# ---- changes: what each difference becomes, in the contract's order ------------------------------


def test_creating_accounts_lists_every_field_and_adds_their_aliases_after(tmp_path: Path) -> None:
    text = (spec_of([("{extension: '466', name: John Doe, product: Cloud PBX service,"
                     " addons: [Call recording, Fax to email], dids: ['15550000002']}")])
            + "auto_attendants:\n"
            "  - {number: 1, name: Main menu, product: Auto attendant, dids: ['15550000003']}\n")
    plan = plan_text(tmp_path, text,
                     state_of(customer=acme(agreement=AGREEMENT + (("Fax to email", 0),))))
    assert [c.to_dict() for c in plan.changes] == [
        {"op": "create_account", "account": "ph100aa1", "kind": "auto_attendant",
         "name": "Main menu", "product": "Auto attendant", "addons": [], "blocked": False},
        {"op": "create_account", "account": "ph100x466", "kind": "extension", "name": "John Doe",
         "product": "Cloud PBX service", "addons": ["Call recording", "Fax to email"],
         "blocked": False},
        {"op": "add_alias", "account": "ph100aa1", "did": "15550000003"},
        {"op": "add_alias", "account": "ph100x466", "did": "15550000002"},
    ]
    assert plan.errors == [] and plan.warnings == []


def test_updating_an_account_changes_only_what_differs(tmp_path: Path) -> None:
    existing = ext(1, name="Alice", addons=("Fax to email",), dids=("15550000001", "15550000002"))
    text = spec_of([("{extension: '1', name: Alicia, product: Hotdesk, addons: [Call recording],"
                    " dids: ['15550000002', '15550000003']}")])
    state = state_of(existing,
                     customer=acme(agreement=AGREEMENT + (("Fax to email", 0), ("Hotdesk", 0))))
    plan = plan_text(tmp_path, text, state)
    assert [c.to_dict() for c in plan.changes] == [
        {"op": "remove_alias", "account": "ph100x1", "did": "15550000001"},
        {"op": "remove_addon", "account": "ph100x1", "product": "Fax to email"},
        {"op": "set_product", "account": "ph100x1", "from": "Cloud PBX service", "to": "Hotdesk"},
        {"op": "set_name", "account": "ph100x1", "from": "Alice", "to": "Alicia"},
        {"op": "add_addon", "account": "ph100x1", "product": "Call recording"},
        {"op": "add_alias", "account": "ph100x1", "did": "15550000003"},
    ]
    assert plan.errors == []


def test_a_matching_spec_plans_nothing(tmp_path: Path) -> None:
    existing = ext(1, name="Alice", addons=("Call recording",), dids=("15550000001",))
    text = spec_of([("{extension: '1', name: Alice, product: Cloud PBX service,"
                    " addons: [Call recording], dids: ['15550000001']}")])
    plan = plan_text(tmp_path, text, state_of(existing))
    assert plan.changes == [] and plan.errors == [] and plan.warnings == []


def test_a_did_moves_between_accounts_remove_before_add(tmp_path: Path) -> None:
    state = state_of(ext(1, dids=("15550000001",)), ext(2))
    text = spec_of(["{extension: '1', name: User 1, product: Cloud PBX service}",
                    "{extension: '2', name: User 2, product: Cloud PBX service, dids: "
                    "['15550000001']}"])
    plan = plan_text(tmp_path, text, state)
    assert [c.to_dict() for c in plan.changes] == [
        {"op": "remove_alias", "account": "ph100x1", "did": "15550000001"},
        {"op": "add_alias", "account": "ph100x2", "did": "15550000001"},
    ]
    assert plan.errors == []


def test_prune_terminates_after_removing_aliases_and_leaves_unmanaged_and_terminated_alone(
    tmp_path: Path,
) -> None:
    state = state_of(ext(1), ext(2, dids=("15550000002", "15550000001")),
                     ext(3, status="terminated"),
                     Account("trunk-1", 100, "Trunk", "Cloud PBX service"))
    plan = plan_text(tmp_path,
                     spec_of(["{extension: '1', name: User 1, product: Cloud PBX service}"],
                                       prune=True), state)
    assert [c.to_dict() for c in plan.changes] == [
        {"op": "remove_alias", "account": "ph100x2", "did": "15550000001"},
        {"op": "remove_alias", "account": "ph100x2", "did": "15550000002"},
        {"op": "terminate_account", "account": "ph100x2"},
    ]
    assert plan.errors == [] and plan.warnings == []


def test_without_prune_an_account_not_in_the_spec_is_a_warning_at_the_customer_id(
    tmp_path: Path,
) -> None:
    state = state_of(Account("trunk-1", 100, "Trunk", "Cloud PBX service"), ext(1), ext(2),
                     ext(3, status="terminated"), ext(4))
    text = "version: 1\ncustomer:\n  id: 100  # <-\n  name: Acme\nextensions:\n" \
           "  - {extension: '1', name: User 1, product: Cloud PBX service}\n"
    plan = plan_text(tmp_path, text, state)
    assert plan.changes == [] and plan.errors == []
    assert [(w.code, w.message, w.line, w.column) for w in plan.warnings] == [
        ("not_in_spec",
         "ph100x2 (User 2) is in billing but not in the spec; it is kept (set prune: "
         "true to terminate it)", 3, 7),
        ("not_in_spec",
         "ph100x4 (User 4) is in billing but not in the spec; it is kept (set prune: "
         "true to terminate it)", 3, 7),
    ]


def test_prune_goes_past_unmanaged_and_terminated_accounts_listed_first(tmp_path: Path) -> None:
    state = state_of(Account("trunk-1", 100, "Trunk", "Cloud PBX service"),
                     ext(3, status="terminated"), ext(1), ext(2))
    plan = plan_text(tmp_path,
                     spec_of(["{extension: '1', name: User 1, product: Cloud PBX service}"],
                                       prune=True), state)
    assert ops(plan) == [("terminate_account", "ph100x2")]


def test_prune_refuses_to_terminate_an_admin_blocked_account(tmp_path: Path) -> None:
    state = state_of(ext(1), ext(2, blocked_by="admin"), ext(3))
    text = "version: 1\ncustomer: {id: 100, name: Acme}\nprune: true  # <-\nextensions:\n" \
           "  - {extension: '1', name: User 1, product: Cloud PBX service}\n"
    plan = plan_text(tmp_path, text, state)
    assert ops(plan) == [("terminate_account", "ph100x3")]  # the others are still pruned
    assert [(p.code, p.message, p.line) for p in plan.errors] == [(
        "admin_blocked",
        ("ph100x2 is blocked by the administrator and cannot be terminated by the customer; "
        "list it in the spec or ask the provider"),
        3,
    )]


def test_admin_blocked_account_reports_one_problem_naming_every_change_asked_for(
    tmp_path: Path,
) -> None:
    state = state_of(ext(2, name="Bob", blocked_by="admin"))
    text = spec_of(["{extension: '2',  # <-",
                    "   name: Robert, product: Hotdesk, addons: [Fax to email], blocked: false}"])
    plan = plan_text(tmp_path, text, state)
    # Hotdesk and Fax to email are outside the agreement too: moot for an account the customer
    # cannot manage, so only admin_blocked is said.
    assert [(p.code, p.message, p.line) for p in plan.errors] == [(
        "admin_blocked",
        ("ph100x2 is blocked by the administrator; the customer cannot change it "
        "(the spec asks for: add_addon, set_name, set_product, unblock)"),
        5,
    )]


def test_admin_blocked_account_keeps_the_problems_of_the_entries_before_it(tmp_path: Path) -> None:
    state = state_of(ext(2, name="Bob", blocked_by="admin"))
    text = spec_of(["{extension: '1', name: A, product: Xylophone}",
                    "{extension: '2', name: Robert, product: Cloud PBX service}"])
    plan = plan_text(tmp_path, text, state)
    assert [(p.code, p.line) for p in plan.errors] == [("unknown_product", 5), ("admin_blocked", 6)]


def test_admin_blocked_account_listed_as_it_is_is_no_problem(tmp_path: Path) -> None:
    state = state_of(ext(2, name="Bob", blocked_by="admin"))
    text = spec_of(["{extension: '2', name: Bob, product: Cloud PBX service, blocked: true}"])
    plan = plan_text(tmp_path, text, state)
    assert plan.changes == [] and plan.errors == []


def test_a_terminated_account_id_cannot_be_used_again(tmp_path: Path) -> None:
    text = spec_of(["{extension: '3',  # <-", "   name: New, product: Cloud PBX service}"]) + \
        "auto_attendants:\n  - {name: Menu, product: Auto attendant, number: 2}\n"
    gone = Account("ph100aa2", 100, "Menu", "Auto attendant", status="terminated")
    plan = plan_text(tmp_path, text, state_of(ext(3, status="terminated"), gone))
    assert plan.changes == []
    assert [(p.code, p.message, p.line, p.column) for p in plan.errors] == [
        ("account_terminated", "ph100x3 was terminated in billing; its ID cannot be used again",
         5, column(tmp_path, 5, "'3'")),
        ("account_terminated", "ph100aa2 was terminated in billing; its ID cannot be used again",
         8, column(tmp_path, 8, "2}")),
    ]


def test_an_account_id_of_another_customer_cannot_be_managed(tmp_path: Path) -> None:
    text = spec_of(["{extension: '7',  # <-", "   name: New, product: Cloud PBX service}"])
    plan = plan_text(tmp_path, text, state_of(foreign_ids=frozenset({"ph100x7"})))
    assert plan.changes == []
    assert [(p.code, p.message, p.line, p.column) for p in plan.errors] == [(
        "account_id_taken",
        "account ID ph100x7 belongs to another customer in billing; "
        "it cannot be managed from this spec", 5, column(tmp_path, 5, "'7'"),
    )]


# ---- a spec with errors: checked from what could be read -----------------------------------------


@pytest.mark.parametrize(
    "broken",
    ["name: [Alice]", "addons: Call recording", "dids: 15550000001"],
    ids=["name", "addons", "dids"],
)
def test_a_value_that_cannot_be_read_is_not_taken_for_a_change(tmp_path: Path, broken: str) -> None:
    # The account is blocked by the administrator, so any change planned for it is an error: a
    # broken name or list must not read as "rename to nothing" or "remove them all".
    existing = ext(1, name="Alice", addons=("Call recording",), dids=("15550000001",),
                   blocked_by="admin")
    fields = {"name": "name: Alice", "addons": "addons: [Call recording]",
              "dids": "dids: ['15550000001']"}
    key, value = broken.split(": ")
    fields[key] = broken  # the one value that cannot be read
    text = spec_of(
        [f"{{extension: '1', product: Cloud PBX service, {', '.join(fields.values())}}}"]
    )
    plan = plan_text(tmp_path, text, state_of(existing), loads=False)
    assert located(plan.errors) == [("schema", 5, column(tmp_path, 5, value))]
    assert plan.changes == [] and plan.warnings == []


_ADMIN_BLOCKED = ext(1, name="Alice", addons=("Call recording",), dids=("15550000001",),
                     blocked_by="admin")
_AS_BILLING_HAS_IT = {"name": "name: Alice", "product": "product: Cloud PBX service",
                      "addons": "addons: [Call recording]", "dids": "dids: ['15550000001']"}


def _with_an_error_elsewhere(tmp_path: Path, value: str) -> CustomerPlan:
    """The plan of a spec whose first entry is Alice (blocked by the administrator) as billing
    has her but for ``value``, and whose second entry has an empty name: with a value of the file
    broken, every entry is read as in a spec with errors, value by value."""
    key = value.split(":")[0].lstrip("-")
    fields = dict(_AS_BILLING_HAS_IT, **{key: value})
    if value.startswith("-"):  # left out
        del fields[key]
    text = spec_of([f"{{extension: '1', {', '.join(fields.values())}}}",
                    "{extension: '2', name: '', product: Cloud PBX service}"])
    plan = plan_text(tmp_path, text, state_of(_ADMIN_BLOCKED), loads=False)
    assert plan.changes == []  # a spec with errors is never planned for apply
    return plan


_EMPTY_NAME = ("schema", 6, 28, "2nd extension, name: must not be empty")


@pytest.mark.parametrize(("value", "asked"), [
    ("name: Alice Smith", "set_name"),
    ("product: Hotdesk", "set_product"),
    ("addons: []", "remove_addon"),
    ("-addons", "remove_addon"),
    ("dids: []", "remove_alias"),
    ("-dids", "remove_alias"),
    ("blocked: false", "unblock"),
])
def test_in_a_spec_with_errors_each_value_that_can_be_read_still_counts(
        tmp_path: Path, value: str, asked: str) -> None:
    # What the readable value asks of an account the customer cannot manage is still refused,
    # at the entry's extension, beside the file's own mistake.
    plan = _with_an_error_elsewhere(tmp_path, value)
    assert [(p.code, p.line, p.column, p.message) for p in plan.errors] == [
        ("admin_blocked", 5, column(tmp_path, 5, "'1'"),
         "ph100x1 is blocked by the administrator; the customer cannot change it "
         f"(the spec asks for: {asked})"),
        _EMPTY_NAME,
    ]
    assert plan.warnings == []


@pytest.mark.parametrize(("value", "message"), [
    ("name: ''", "1st extension, name: must not be empty"),
    ("name: 7", ('1st extension, name: 7 is read by YAML as the number 7, not as text; to mean '
                 'the text, quote it: name: "7"')),
    ("product: ''", "1st extension, product: must not be empty"),
    ("addons: ['']", "1st extension, 1st add-on: must not be empty"),
    ("dids: ['12']",
     "1st extension, 1st DID: '12' is not a DID: it must be 7-15 digits (E.164 without +)"),
    ("blocked: 'yes'",
     "1st extension, blocked: write true or false (without quotes), not text 'yes'"),
])
def test_in_a_spec_with_errors_a_broken_value_asks_for_nothing(
        tmp_path: Path, value: str, message: str) -> None:
    # Text that breaks the schema (empty, or not a DID) is as unreadable as a value of the wrong
    # type: not a rename to "", a product named "", the removal of what billing has, an unblock.
    plan = _with_an_error_elsewhere(tmp_path, value)
    broken = value.split(": ", 1)[1].split("[")[-1].rstrip("]")
    assert [(p.code, p.line, p.column, p.message) for p in plan.errors] == [
        ("schema", 5, column(tmp_path, 5, broken), message),
        _EMPTY_NAME,
    ]
    assert plan.warnings == []


_TOO_LONG = "1" * 33  # a DID too long for the schema: broken, so not read


def test_an_entry_whose_extension_cannot_be_read_still_has_every_did_checked(
        tmp_path: Path) -> None:
    text = spec_of(["{extension: '4 66', name: B, product: '', dids: "
                    f"['{_TOO_LONG}', '12', '+1 555-000-0003', '15550000003', '19990000000']}}"])
    plan = plan_text(tmp_path, text, state_of(), loads=False)

    def at(written: str) -> int:
        return column(tmp_path, 5, written)

    assert [(p.code, p.column, p.message) for p in plan.errors] == [
        ("schema", at("'4 66'"),
         "1st extension, extension: '4 66' is not an extension (1-15 digits)"),
        ("schema", at("''"), "1st extension, product: must not be empty"),
        ("schema", at(f"'{_TOO_LONG}'"),
         "1st extension, 1st DID: is 33 characters long, over the limit of 32"),
        ("schema", at("'12'"),
         "1st extension, 2nd DID: '12' is not a DID: it must be 7-15 digits (E.164 without +)"),
        ("did_duplicate", at("'15550000003'"),
         "DID 15550000003 is listed twice for this extension (first at line 5); say it once"),
        ("did_not_owned", at("'19990000000'"), "DID 19990000000 is not in the customer's DID pool"),
    ]
    assert [(p.code, p.column, p.message) for p in plan.warnings] == [
        ("did_normalised", at("'+1 555-000-0003'"),
         "DID '+1 555-000-0003' is read as 15550000003; `reconciler fmt` writes it that way"),
    ]
    assert {p.line for p in plan.errors + plan.warnings} == {5} and plan.changes == []


def test_an_entry_with_nothing_but_a_broken_extension_still_has_its_dids_checked(
        tmp_path: Path) -> None:
    text = spec_of(["{extension: '4 66', dids: ['19990000000']}"])
    plan = plan_text(tmp_path, text, state_of(), loads=False)
    assert [(p.code, p.message) for p in plan.errors] == [
        ("schema", "1st extension: the required key 'name' is missing"),
        ("schema", "1st extension: the required key 'product' is missing"),
        ("schema", "1st extension, extension: '4 66' is not an extension (1-15 digits)"),
        ("did_not_owned", "DID 19990000000 is not in the customer's DID pool"),
    ]


def test_an_extension_the_schema_lets_through_but_is_not_digits_still_has_its_dids_checked(
        tmp_path: Path) -> None:
    # JSON Schema's `$` matches before a final line break: "7\n" passes the pattern.
    text = spec_of(['{extension: "7\\n", name: S, product: Cloud PBX service, '
                    "dids: ['19990000000']}"])
    plan = plan_text(tmp_path, text, state_of(), loads=False)
    assert [(p.code, p.message) for p in plan.errors] == [
        ("schema", "1st extension, extension: '7\\n' is not an extension (1-15 digits)"),
        ("did_not_owned", "DID 19990000000 is not in the customer's DID pool"),
    ]


def test_an_auto_attendant_number_the_schema_lets_through_is_named_as_a_number(
        tmp_path: Path) -> None:
    text = spec_of([]) + ('auto_attendants:\n  - {number: "1\\n", name: Menu, '
                          "product: Auto attendant, dids: ['15550000002', '15550000002']}\n")
    plan = plan_text(tmp_path, text, state_of(), loads=False)
    assert [(p.code, p.message) for p in plan.errors] == [
        ("schema", "1st auto attendant, number: '1\\n' is not a positive whole number"),
        ("did_duplicate",
         "DID 15550000002 is listed twice for this auto attendant (first at line 6); say it once"),
    ]


def test_a_did_twice_in_an_auto_attendant_points_at_both_lines(tmp_path: Path) -> None:
    text = spec_of([]) + ("auto_attendants:\n  - number: 1\n    name: Menu\n"
                          "    product: Auto attendant\n    dids:\n      - '15550000001'\n"
                          "      - '15550000002'\n      - '15550000002'\n")
    plan = plan_text(tmp_path, text, state_of(), loads=False)
    assert [(p.code, p.line, p.message) for p in plan.errors] == [(
        "did_duplicate", 12,
        "DID 15550000002 is listed twice for this auto attendant (first at line 11); say it once",
    )]


def test_every_did_given_twice_is_named_at_its_second_holder(tmp_path: Path) -> None:
    text = spec_of([
        "{extension: '1', name: A, product: Cloud PBX service, dids: [15550000001, 15550000002]}",
        "{extension: '2', name: B, product: Cloud PBX service, dids: [15550000001, 15550000002]}",
    ])
    plan = plan_text(tmp_path, text, state_of(), loads=False)
    assert [(p.code, p.line, p.message) for p in plan.errors] == [
        ("did_duplicate", 6, f"DID {did} is given to both ph100x1 and ph100x2 (first at line 5)")
        for did in ("15550000001", "15550000002")
    ]


def test_a_did_taken_by_an_earlier_entry_is_not_asked_of_its_second_holder(
        tmp_path: Path) -> None:
    # The second holder is blocked by the administrator: had the dropped DID been kept, or the
    # rest of its list been taken as complete, the spec would ask it for an alias change.
    blocked = ext(2, name="B", dids=("15550000002", "15550000003"), blocked_by="admin")
    text = spec_of([
        "{extension: '1', name: A, product: Cloud PBX service, dids: ['15550000001']}",
        "{extension: '2', name: B, product: Cloud PBX service, dids: [15550000001, 15550000002]}",
    ])
    plan = plan_text(tmp_path, text, state_of(blocked), loads=False)
    assert [(p.code, p.message) for p in plan.errors] == [(
        "did_duplicate", "DID 15550000001 is given to both ph100x1 and ph100x2 (first at line 5)",
    )]


def test_a_did_kept_after_dropped_ones_is_pointed_at_where_it_is_written(
        tmp_path: Path) -> None:
    # '12' is not a DID and 15550000001 is the first entry's: the DID left is the third written.
    text = spec_of([
        "{extension: '1', name: A, product: Cloud PBX service, dids: [15550000001]}",
        "{extension: '2', name: B, product: Cloud PBX service, dids: ['12', 15550000001, "
        "19990000000]}",
    ])
    plan = plan_text(tmp_path, text, state_of(), loads=False)
    assert [(p.code, p.column) for p in plan.errors] == [
        ("schema", column(tmp_path, 6, "'12'")),
        ("did_duplicate", column(tmp_path, 6, "15550000001")),
        ("did_not_owned", column(tmp_path, 6, "19990000000")),
    ]


def test_a_did_that_is_not_one_leaves_the_others_checked_where_they_are_written(
        tmp_path: Path) -> None:
    # No schema error: only the DID check finds '12'. The DID after it is still checked and
    # pointed at where it is written; the list is unreadable, so Alice's DID is not taken for a
    # removal (which, on her administrator-blocked account, would be admin_blocked).
    text = spec_of(["{extension: '1', name: Alice, product: Cloud PBX service, "
                    "addons: [Call recording], dids: ['12', '19990000000']}"])
    plan = plan_text(tmp_path, text, state_of(_ADMIN_BLOCKED), loads=False)
    assert [(p.code, p.column) for p in plan.errors] == [
        ("schema", column(tmp_path, 5, "'12'")),
        ("did_not_owned", column(tmp_path, 5, "'19990000000'")),
    ]


@pytest.mark.parametrize("name", ["''", "7"])
def test_a_customer_name_that_cannot_be_read_is_not_compared_with_billing(
        tmp_path: Path, name: str) -> None:
    text = spec_of([]).replace("name: Acme}", f"name: {name}}}")
    plan = plan_text(tmp_path, text, state_of(), loads=False)
    assert [p.code for p in plan.errors] == ["schema"]  # no customer_mismatch beside it


@pytest.mark.parametrize("customer", ["{id: 0, name: Acme}", "{id: true, name: Acme}",
                                      "{id: '100', name: Acme}", "Acme"])
def test_a_customer_that_cannot_be_read_makes_a_spec_of_no_customer(
        tmp_path: Path, customer: str) -> None:
    spec = tmp_path / "acme.yaml"
    spec.write_text(spec_of([]).replace("customer: {id: 100, name: Acme}", f"customer: {customer}"))
    loaded = load_spec(str(spec))
    assert loaded.spec is None and loaded.checkable is None
    assert [p.code for p in loaded.errors] == ["schema"]


def test_a_did_given_twice_in_a_spec_of_no_customer_names_the_two_entries(
        tmp_path: Path) -> None:
    text = spec_of([
        "{extension: '1', name: A, product: Cloud PBX service, dids: [15550000001]}",
    ]).replace("customer: {id: 100, name: Acme}", "customer: {id: '100', name: Acme}")
    text += "auto_attendants:\n  - {number: 1, name: Menu, product: Cloud PBX service, " \
            "dids: [15550000001]}\n"
    spec = tmp_path / "acme.yaml"
    spec.write_text(text)
    assert [(p.code, p.message) for p in load_spec(str(spec)).errors][1:] == [(
        "did_duplicate",
        "DID 15550000001 is given to both extension 1 and auto attendant 1 (first at line 5)",
    )]


def test_a_wrong_customer_name_is_reported_in_line_order_with_the_spec_s_own_errors(
    tmp_path: Path,
) -> None:
    text = ("version: 1\ncustomer: {colour: red, id: 100, name: Acne}\nextensions:\n"
            "  - {extension: '1a', name: A, product: Cloud PBX service}\n")
    plan = plan_text(tmp_path, text, state_of(), loads=False)
    assert located(plan.errors) == [
        ("schema", 2, column(tmp_path, 2, "colour")),
        ("customer_mismatch", 2, column(tmp_path, 2, "Acne")),
        ("schema", 4, column(tmp_path, 4, "'1a'")),
    ]


# ---- DIDs ----------------------------------------------------------------------------------------


def test_did_problems_point_at_the_did_and_say_why(tmp_path: Path) -> None:
    state = state_of(
        ext(1, name="Alice", dids=("15550000001",)),  # not in the spec, kept: prune is false
        Account("trunk-1", 100, "Trunk", "Cloud PBX service", dids=("15550000009",)),
        foreign_dids=frozenset({"15550000008"}),
    )
    text = spec_of([
        "{extension: '2', name: B, product: Cloud PBX service, dids: [",
        "   '15550000002',",
        "   '19990000000',",                 # not in the pool
        "   '15550000009',",                 # held by the unmanaged trunk
        "   '15550000001',",                 # held by Alice, kept because prune is false
        "   '15550000008']}",                # held by another customer's account
        "{extension: '3', name: C, product: Cloud PBX service, dids: [",
        "   '15550000002']}",                # already given to ph100x2
    ])
    # A DID given to two accounts is an error of the spec itself, found when it is read; the
    # billing checks still run on everything else, and all problems come in line order.
    plan = plan_text(tmp_path, text, state, loads=False)
    assert [(p.code, p.message, p.line, p.column) for p in plan.errors] == [
        ("did_not_owned", "DID 19990000000 is not in the customer's DID pool", 7,
         column(tmp_path, 7, "'19990000000'")),
        ("did_in_use", ("DID 15550000009 is held by trunk-1 (Trunk), "
                       "an account the reconciler does not manage"), 8,
         column(tmp_path, 8, "'15550000009'")),
        ("did_in_use", ("DID 15550000001 is held by ph100x1 (Alice), "
                       "an account the spec does not list (kept because prune is false)"), 9,
         column(tmp_path, 9, "'15550000001'")),
        ("did_in_use", "DID 15550000008 is held by another customer's account", 10,
         column(tmp_path, 10, "'15550000008'")),
        ("did_duplicate", "DID 15550000002 is given to both ph100x2 and ph100x3 (first at line 6)",
         12, column(tmp_path, 12, "'15550000002'")),
    ]
    assert plan.changes == []  # a spec with errors is never planned for apply


def test_a_did_of_a_pruned_or_listed_account_may_be_taken(tmp_path: Path) -> None:
    state = state_of(ext(1, dids=("15550000001",)), ext(2, dids=("15550000002",)))
    text = spec_of(["{extension: '1', name: User 1, product: Cloud PBX service, dids: "
                    "['15550000003']}", ("{extension: '3', name: New, product: Cloud PBX service,"
                    " dids: ['15550000001', '15550000002']}")], prune=True)
    plan = plan_text(tmp_path, text, state)
    assert plan.errors == []
    assert [c.to_dict() for c in plan.changes if c.op == "add_alias"] == [
        {"op": "add_alias", "account": "ph100x1", "did": "15550000003"},
        {"op": "add_alias", "account": "ph100x3", "did": "15550000001"},
        {"op": "add_alias", "account": "ph100x3", "did": "15550000002"},
    ]


def test_a_kept_did_that_left_the_pool_is_a_warning(tmp_path: Path) -> None:
    state = state_of(ext(1, dids=("19990000000",)))
    text = spec_of(["{extension: '1', name: User 1, product: Cloud PBX service,",
                    "   dids: ['19990000000']}  # <-"])
    plan = plan_text(tmp_path, text, state)
    assert plan.changes == [] and plan.errors == []
    assert [(p.code, p.message, p.line) for p in plan.warnings] == [(
        "did_not_owned",
        "DID 19990000000 of ph100x1 is no longer in the customer's DID pool (kept as it is)",
        6,
    )]


def test_a_normalised_did_is_planned_as_digits_with_a_warning(tmp_path: Path) -> None:
    text = spec_of(["{extension: '1', name: User 1, product: Cloud PBX service,",
                    "   dids: ['+1 555-000-0004']}"])
    plan = plan_text(tmp_path, text, state_of())
    assert [c.to_dict() for c in plan.changes][1:] == [
        {"op": "add_alias", "account": "ph100x1", "did": "15550000004"}]
    assert [(p.code, p.message) for p in plan.warnings] == [
        ("did_normalised",
         "DID '+1 555-000-0004' is read as 15550000004; `reconciler fmt` writes it that way")]


# ---- products ------------------------------------------------------------------------------------


def test_product_problems_point_at_the_value_and_say_what_is_allowed(tmp_path: Path) -> None:
    text = spec_of([
        "{extension: '1', name: A, product: Cloud PBX servce}",                  # 5
        "{extension: '2', name: B, product: Xylophone}",                        # 6
        "{extension: '3', name: C, product: Call recording}",                   # 7
        "{extension: '4', name: D, product: Cloud PBX service, addons: [Hotdesk]}",  # 8
        "{extension: '5', name: E, product: Hotdesk}",                          # 9
        "{extension: '6', name: F, product: Cloud PBX service, addons: [Fax to email]}",  # 10
    ])
    plan = plan_text(tmp_path, text, state_of())
    assert located(plan.errors) == [
        ("unknown_product", 5, column(tmp_path, 5, "Cloud PBX servce")),
        ("unknown_product", 6, column(tmp_path, 6, "Xylophone")),
        ("wrong_product_type", 7, column(tmp_path, 7, "Call recording")),
        ("wrong_product_type", 8, column(tmp_path, 8, "Hotdesk")),
        ("product_not_in_agreement", 9, column(tmp_path, 9, "Hotdesk")),
        ("product_not_in_agreement", 10, column(tmp_path, 10, "Fax to email")),
    ]
    assert [(p.code, p.message, p.line) for p in plan.errors] == [
        ("unknown_product",
         "no product named 'Cloud PBX servce'; did you mean 'Cloud PBX service'? "
         "(other main products in billing: Hotdesk, Auto attendant)", 5),
        ("unknown_product",
         "no product named 'Xylophone' "
         "(main products in billing: Hotdesk, Cloud PBX service, Auto attendant)", 6),
        ("wrong_product_type",
         "'Call recording' is an add-on product; `product` needs a main product", 7),
        ("wrong_product_type",
         "'Hotdesk' is a main product; `addons` takes add-on products only", 8),
        ("product_not_in_agreement", "'Hotdesk' is not in the customer's agreement "
                                     "(allowed: Auto attendant, Cloud PBX service)", 9),
        ("product_not_in_agreement",
         "'Fax to email' is not in the customer's agreement (allowed: Call recording)", 10),
    ]


def test_a_suggestion_needs_a_name_at_least_half_alike(tmp_path: Path) -> None:
    text = spec_of(["{extension: '1', name: A, product: Cloud P}",
                    "{extension: '2', name: B, product: Cloud}"])
    plan = plan_text(tmp_path, text, state_of())
    assert [p.message for p in plan.errors] == [
        "no product named 'Cloud P'; did you mean 'Cloud PBX service'? "  # 58% alike
        "(other main products in billing: Hotdesk, Auto attendant)",
        "no product named 'Cloud' "  # 45% alike: no suggestion, the closest first
        "(main products in billing: Cloud PBX service, Hotdesk, Auto attendant)",
    ]


def test_changing_an_existing_account_to_products_outside_the_agreement_is_an_error(
    tmp_path: Path,
) -> None:
    state = state_of(ext(1))
    text = spec_of(["{extension: '1', name: User 1, product: Hotdesk,",
                    "   addons: [Call recording, Fax to email]}"])
    plan = plan_text(tmp_path, text, state)
    assert ops(plan) == [("set_product", "ph100x1"), ("add_addon", "ph100x1"),
                         ("add_addon", "ph100x1")]
    assert located(plan.errors) == [
        ("product_not_in_agreement", 5, column(tmp_path, 5, "Hotdesk")),
        ("product_not_in_agreement", 6, column(tmp_path, 6, "Fax to email")),
    ]
    assert plan.warnings == []


def test_adding_a_did_to_an_existing_account_is_checked_where_it_is_written(tmp_path: Path) -> None:
    state = state_of(ext(1, dids=("15550000001",)))
    text = spec_of(["{extension: '1', name: User 1, product: Cloud PBX service, dids: [",
                    "   '15550000001',", "   '19990000000']}"])
    plan = plan_text(tmp_path, text, state)
    assert [(p.code, p.message, p.line, p.column) for p in plan.errors] == [
        ("did_not_owned", "DID 19990000000 is not in the customer's DID pool", 7,
         column(tmp_path, 7, "'1999"))]


def test_an_agreement_without_add_ons_says_so_without_a_list(tmp_path: Path) -> None:
    text = spec_of(["{extension: '1', name: A, product: Cloud PBX service, addons: "
                    "[Call recording]}"])
    plan = plan_text(tmp_path, text, state_of(customer=acme(agreement=(("Cloud PBX service", 0),))))
    assert [(p.code, p.message) for p in plan.errors] == [
        ("product_not_in_agreement", "'Call recording' is not in the customer's agreement")]


def test_a_kept_assignment_outside_the_agreement_is_a_warning_a_new_one_an_error(
    tmp_path: Path,
) -> None:
    state = state_of(ext(1, product="Hotdesk", addons=("Fax to email",)),
                     ext(3, product="Legacy PBX", addons=("Hotdesk",)),
                     ext(4, product="Call recording"))
    text = spec_of(["{extension: '1', name: User 1, product: Hotdesk, addons: [Fax to email]}",
                    "{extension: '2', name: User 2, product: Hotdesk}",
                    "{extension: '3', name: User 3, product: Legacy PBX, addons: [Hotdesk]}",
                    "{extension: '4', name: User 4, product: Call recording}"])
    plan = plan_text(tmp_path, text, state)
    assert located(plan.warnings) == [
        ("product_not_in_agreement", 5, column(tmp_path, 5, "Hotdesk")),
        ("product_not_in_agreement", 5, column(tmp_path, 5, "Fax to email")),
        ("unknown_product", 7, column(tmp_path, 7, "Legacy PBX")),
        ("wrong_product_type", 7, column(tmp_path, 7, "Hotdesk")),
        ("wrong_product_type", 8, column(tmp_path, 8, "Call recording")),
    ]
    assert located(plan.errors) == [("product_not_in_agreement", 6, column(tmp_path, 6, "Hotdesk"))]
    assert ops(plan) == [("create_account", "ph100x2")]


# ---- quantities ----------------------------------------------------------------------------------


def test_quantity_counts_every_open_account_after_the_plan(tmp_path: Path) -> None:
    # Call recording: 2 allowed. The trunk (unmanaged) and Alice use it; a terminated account
    # does not count. Giving it to Bob makes three.
    state = state_of(ext(1, name="Alice", addons=("Call recording",)), ext(2, name="Bob"),
                     ext(3, addons=("Call recording",), status="terminated"),
                     Account("trunk-1", 100, "Trunk", "Cloud PBX service",
                             addons=("Call recording",)))
    text = spec_of(["{extension: '1', name: Alice, product: Cloud PBX service, addons: "
                    "[Call recording]}", "{extension: '2', name: Bob, product: Cloud PBX service,",
                    "   addons: [Call recording]}  # <-"])
    plan = plan_text(tmp_path, text, state)
    assert [(p.code, p.message, p.line) for p in plan.errors] == [(
        "quantity_exceeded",
        "'Call recording': the spec wants 3 accounts to use it, the agreement allows 2, "
        "2 use it now", 7,
    )]
    assert plan.usage == [
        {"product": "Auto attendant", "in_use": 0, "planned": 0, "quantity": 1},
        {"product": "Call recording", "in_use": 2, "planned": 3, "quantity": 2},
        {"product": "Cloud PBX service", "in_use": 3, "planned": 3, "quantity": 0},
    ]


def test_quantity_exactly_reached_is_fine_and_zero_is_unlimited(tmp_path: Path) -> None:
    entries = ["{extension: '1', name: A, product: Cloud PBX service, addons: [Call recording]}",
               "{extension: '2', name: B, product: Cloud PBX service, addons: [Call recording]}"]
    entries += [f"{{extension: '{n}', name: U, product: Cloud PBX service}}" for n in range(3, 30)]
    plan = plan_text(tmp_path, spec_of(entries) + "auto_attendants:\n"
                     "  - {number: 1, name: Menu, product: Auto attendant}\n", state_of())
    assert plan.errors == []
    assert len(plan.changes) == 30


def test_pruning_frees_quantity_for_a_new_account(tmp_path: Path) -> None:
    state = state_of(ext(1, addons=("Call recording",)), ext(2, addons=("Call recording",)))
    text = spec_of(["{extension: '1', name: User 1, product: Cloud PBX service, addons: "
                    "[Call recording]}",
                    "{extension: '3', name: New, product: Cloud PBX service, addons: "
                    "[Call recording]}"],
                   prune=True)
    plan = plan_text(tmp_path, text, state)
    assert plan.errors == []
    assert ops(plan) == [("terminate_account", "ph100x2"), ("create_account", "ph100x3")]


def test_a_kept_account_not_in_the_spec_still_counts(tmp_path: Path) -> None:
    state = state_of(ext(1, addons=("Call recording",)), ext(2, addons=("Call recording",)))
    text = spec_of(["{extension: '1', name: User 1, product: Cloud PBX service, addons: "
                    "[Call recording]}",
                    "{extension: '3', name: New, product: Cloud PBX service, addons: "
                    "[Call recording]}"])
    plan = plan_text(tmp_path, text, state)
    assert located(plan.errors) == [("quantity_exceeded", 6,
                                     column(tmp_path, 6, "Call recording]"))]


def test_every_kept_account_not_in_the_spec_counts_once(tmp_path: Path) -> None:
    state = state_of(ext(1, addons=("Call recording",)), ext(2, addons=("Call recording",)), ext(3))
    text = spec_of(["{extension: '3', name: User 3, product: Cloud PBX service}"])
    plan = plan_text(tmp_path, text, state)
    assert plan.errors == []
    assert plan.usage[1:] == [
        {"product": "Call recording", "in_use": 2, "planned": 2, "quantity": 2},
        {"product": "Cloud PBX service", "in_use": 3, "planned": 3, "quantity": 0},
    ]


def test_an_agreement_shrunk_below_use_warns_until_a_new_use_is_planned(tmp_path: Path) -> None:
    accounts = [ext(n, addons=("Call recording",)) for n in (1, 2, 3)]
    keep = [f"{{extension: '{n}', name: User {n}, product: Cloud PBX service, addons: "
            f"[Call recording]}}"
            for n in (1, 2, 3)]
    text = "version: 1\ncustomer:\n  id: 100  # <-\n  name: Acme\nextensions:\n" + \
           "".join(f"  - {e}\n" for e in keep)
    plan = plan_text(tmp_path, text, state_of(*accounts))
    assert plan.errors == []
    assert [(p.code, p.message, p.line) for p in plan.warnings] == [(
        "quantity_exceeded",
        ("'Call recording': the spec wants 3 accounts to use it, the agreement allows 2, "
         "3 use it now "
        "(no new use is planned)"),
        3,
    )]
    assert plan.warnings[0].column == column(tmp_path, 3, "100")
    # Moving an add-on from one account to a new one is a new use while over the quantity, but
    # not more use than now: still only a warning.
    moved = text.replace("'3', name: User 3, product: Cloud PBX service, addons: [Call recording]",
                         "'3', name: User 3, product: Cloud PBX service")
    moved += (
        "  - {extension: '4', name: New, product: Cloud PBX service, addons: [Call recording]}\n"
    )
    plan = plan_text(tmp_path, moved, state_of(*accounts))
    assert plan.errors == [] and codes(plan.warnings) == ["quantity_exceeded"]
    grown = (
        text
        + "  - {extension: '4', name: New, product: Cloud PBX service, addons: [Call recording]}\n"
    )
    plan = plan_text(tmp_path, grown, state_of(*accounts))
    assert [(p.code, p.line) for p in plan.errors] == [("quantity_exceeded", 9)]


def test_a_refused_product_is_not_counted_but_the_rest_of_its_entry_is(tmp_path: Path) -> None:
    # Cloud PBX service is no add-on: that assignment is refused and never happens, so it uses
    # no quantity; the same entry's Auto attendant (1 allowed) still counts, with the menu's.
    text = (spec_of(["{extension: '3', name: C, product: Auto attendant, addons: "
                     "[Cloud PBX service]}"])
            + "auto_attendants:\n  - {number: 1, name: Menu, product: Auto attendant}\n")
    plan = plan_text(tmp_path, text, state_of())
    assert located(plan.errors) == [
        ("quantity_exceeded", 5, column(tmp_path, 5, "Auto attendant")),
        ("wrong_product_type", 5, column(tmp_path, 5, "Cloud PBX service]")),
    ]
    assert plan.usage[0] == {"product": "Auto attendant", "in_use": 0, "planned": 2, "quantity": 1}
    assert plan.usage[2] == {"product": "Cloud PBX service", "in_use": 0, "planned": 0,
                             "quantity": 0}


def test_a_kept_wrong_product_type_is_a_warning_and_still_counts(tmp_path: Path) -> None:
    # Billing has an add-on as an account's main product; keeping it is only a warning, and the
    # account uses Call recording (2 allowed) all the same: two new uses make three.
    state = state_of(ext(1, product="Call recording"))
    text = spec_of(["{extension: '1', name: User 1, product: Call recording}",
                    "{extension: '2', name: B, product: Cloud PBX service, addons: "
                    "[Call recording]}",
                    "{extension: '3', name: C, product: Cloud PBX service, addons: "
                    "[Call recording]}"])
    plan = plan_text(tmp_path, text, state)
    assert located(plan.warnings) == [("wrong_product_type", 5,
                                       column(tmp_path, 5, "Call recording"))]
    assert located(plan.errors) == [("quantity_exceeded", 6, column(tmp_path, 6, "Call recording"))]
    assert plan.usage[1] == {"product": "Call recording", "in_use": 1, "planned": 3, "quantity": 2}


def test_quantity_points_at_the_first_entry_that_newly_uses_the_product(tmp_path: Path) -> None:
    text = (spec_of(["{extension: '1', name: A, product: Cloud PBX service}"])
            + "auto_attendants:\n"
            "  - {number: 1, name: Menu, product: Auto attendant}  # <-\n"
            "  - {number: 2, name: Night, product: Auto attendant}\n")
    plan = plan_text(tmp_path, text, state_of())
    line = marked_line(tmp_path / "acme.yaml")
    assert located(plan.errors) == [("quantity_exceeded", line,
                                     column(tmp_path, line, "Auto attendant}"))]


# ---- customer ------------------------------------------------------------------------------------


def test_unknown_customer_and_name_mismatch(tmp_path: Path) -> None:
    text = spec_of(["{extension: '1', name: A, product: Cloud PBX service}"])
    missing = plan_text(tmp_path, text, None)
    assert [(p.code, p.message, p.line, p.column) for p in missing.errors] == [
        ("unknown_customer", "billing has no customer 100", 2, column(tmp_path, 2, "100"))]
    assert missing.fingerprint is None and missing.changes == [] and missing.name == "Acme"
    wrong = plan_text(tmp_path, spec_of(["{extension: '1', name: A, product: Cloud PBX service}"],
                                        name="Acme Ltd"), state_of())
    assert [(p.code, p.message, p.column) for p in wrong.errors] == [(
        "customer_mismatch", "customer 100 is 'Acme' in billing, not 'Acme Ltd': is the id right?",
        column(tmp_path, 2, "Acme Ltd"))]
    assert wrong.changes == [] and wrong.name == "Acme"
    assert wrong.fingerprint == fingerprint(state_of())


# ---- the plan's dict form round-trips ------------------------------------------------------------


def test_a_customer_plan_survives_its_dict_form(tmp_path: Path) -> None:
    plan = fleet_plan(tmp_path, 8, 3, 1)
    problem = load_spec(str(tmp_path / "acme.yaml")).yaml.problem("not_in_spec", "kept", ("prune",))
    plan.warnings.append(problem)
    plan.errors.append(dataclasses.replace(problem, code="admin_blocked", message="refused"))
    assert plan.unsafe is True
    data = plan.to_dict()
    assert set(data) == {"customer", "name", "file", "fingerprint", "changes", "errors", "warnings",
                         "unsafe", "unsafe_reason", "usage", "skipped"}
    assert data["customer"] == 100 and data["file"] == str(tmp_path / "acme.yaml")
    again = CustomerPlan.from_dict(data)
    assert again == plan
    old = {k: v for k, v in data.items()
           if k not in ("warnings", "usage", "unsafe", "unsafe_reason",
                                                      "name", "fingerprint")}
    minimal = CustomerPlan.from_dict(old)
    assert (minimal.warnings, minimal.usage, minimal.unsafe, minimal.unsafe_reason, minimal.name,
            minimal.fingerprint) == ([], [], False, None, None, None)
    assert minimal.changes == plan.changes
