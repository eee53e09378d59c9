"""Safety stories through the real CLI: the unsafe threshold at its boundaries, blocks refused by
the self-care role, and a saved plan refused as stale after any change to what it was computed
from (a block made between plan and apply above all)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Billing, write
from tests.helpers import FIXTURES, all_problems, marked_line

STATE = (FIXTURES / "state.yaml").read_text()


# ---- the unsafe threshold ------------------------------------------------------------------------


def _fleet_state(workdir: Path, managed: int) -> Path:
    """Customer 100 with ``managed`` open extensions ph100x11.. and nothing else managed."""
    accounts = "".join(
        f"  - {{id: ph100x{10 + n}, customer: 100, name: User {n}, product: Cloud PBX service}}\n"
        for n in range(1, managed + 1)
    )
    head = STATE.split("accounts:\n")[0]
    return write(workdir / f"fleet-{managed}.yaml", head + "accounts:\n" + accounts)


def _fleet_spec(workdir: Path, managed: int, terminated: int, blocked: int) -> Path:
    """Keeps the first ``managed - terminated`` extensions (prune: true),
    blocking the first ``blocked``."""
    lines = ["version: 1", "customer: {id: 100, name: Acme}", "prune: true", "extensions:"]
    for n in range(1, managed - terminated + 1):
        block = ", blocked: true" if n <= blocked else ""
        lines.append(
            f"  - {{extension: '{10 + n}', name: User {n}, product: Cloud PBX service{block}}}"
        )
    return write(workdir / "fleet-spec.yaml", "\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("managed", "terminated", "blocked", "unsafe"),
    [
        (8, 2, 0, False),  # exactly 25% of 8: not more than 25%
        (8, 1, 2, True),   # 3 of 8 = 37.5%, blocks counted with terminations
        (7, 3, 0, False),  # 43%, but fewer than 8 managed accounts
    ],
    ids=["25pct-of-8-applies", "block-and-terminate-38pct-refused", "7-accounts-not-judged"],
)
def test_apply_refuses_an_unsafe_plan_only_over_the_boundary(
    billing: Billing, workdir: Path, managed: int, terminated: int, blocked: int, unsafe: bool
) -> None:
    billing.load(_fleet_state(workdir, managed))
    spec = _fleet_spec(workdir, managed, terminated, blocked)
    plan = billing.cli("plan", str(spec), "--format", "json")
    assert plan.code == 0, plan
    entry = plan.json["customers"][0]
    assert sorted(c["op"] for c in entry["changes"]) == \
        ["block"] * blocked + ["terminate_account"] * terminated
    assert entry["unsafe"] is unsafe
    last = f"ph100x{10 + managed}"
    applied = billing.cli("apply", str(spec), "--auto-approve")
    if unsafe:
        assert applied.code == 1 and "unsafe" in applied.err, applied
        assert billing.account(last)["status"] == "open"  # type: ignore[index]
        assert "blocked_by" not in billing.account("ph100x11")  # type: ignore[operator]
        applied = billing.cli("apply", str(spec), "--auto-approve", "--force")
    assert applied.code == 0, applied
    assert billing.account(last)["status"] == "terminated"  # type: ignore[index]
    if blocked:
        assert billing.account("ph100x11")["blocked_by"] == "customer"  # type: ignore[index]


# ---- self-care -----------------------------------------------------------------------------------


def test_unblock_is_refused_when_the_self_care_role_does_not_allow_blocking(
    billing: Billing, workdir: Path
) -> None:
    # Beta's self-care role may not block or unblock; its extension 2 was blocked by the customer
    # back when it could.
    state = STATE.replace(
        "  - {id: ph200x1, customer: 200, name: Carol, product: Cloud PBX service}",
        "  - {id: ph200x1, customer: 200, name: Carol, product: Cloud PBX service}\n"
        "  - {id: ph200x2, customer: 200, name: Dave, product: Cloud PBX service, "
        "blocked_by: customer}",
    )
    billing.load(write(workdir / "beta-state.yaml", state))
    spec = write(workdir / "beta.yaml", """\
version: 1
customer: {id: 200, name: Beta}
extensions:
  - {extension: "1", name: Carol, product: Cloud PBX service}
  - extension: "2"
    name: Dave
    product: Cloud PBX service
    blocked: false  # <-
""")
    plan = billing.cli("plan", str(spec), "--format", "json")
    assert plan.code == 1, plan
    [problem] = all_problems(plan.json)
    assert problem["code"] == "block_not_permitted"
    assert "unblock" in problem["message"] and "ph200x2" in problem["message"]
    assert problem["line"] == marked_line(spec)
    applied = billing.cli("apply", str(spec), "--auto-approve")
    assert applied.code == 1
    assert billing.account("ph200x2")["blocked_by"] == "customer"  # type: ignore[index]


# ---- stale saved plans ---------------------------------------------------------------------------

ALICE = ('{id: ph100x1, customer: 100, name: Alice, product: Cloud PBX service, '
         'addons: [Call recording], dids: ["15550000001"]}')

# What someone may change in billing between `plan --out` and `apply --plan`: each one is part of
# what the plan was computed from, so each makes the saved plan stale.
BILLING_CHANGES = {
    "alice-blocked-by-customer": (ALICE, ALICE[:-1] + ", blocked_by: customer}"),
    "alice-blocked-by-admin": (ALICE, ALICE[:-1] + ", blocked_by: admin}"),
    "bob-admin-block-now-customer": ("name: Bob, product: Cloud PBX service, blocked_by: admin",
                                     "name: Bob, product: Cloud PBX service, blocked_by: customer"),
    "alice-terminated": (ALICE, ALICE[:-1] + ", status: terminated}"),
    "alice-addon-removed": ("addons: [Call recording], dids: [\"15550000001\"]}",
                            "addons: [], dids: [\"15550000001\"]}"),
    "alice-did-removed": ('dids: ["15550000001"]}', "dids: []}"),
    "alice-renamed": ("name: Alice,", "name: Alicia,"),
    "alice-product-changed": ("name: Alice, product: Cloud PBX service",
                              "name: Alice, product: Hotdesk"),
    "agreement-quantity": ("{product: Call recording, quantity: 2}",
                           "{product: Call recording, quantity: 3}"),
    "did-pool": ('"15550000004", "15550000009"]', '"15550000004", "15550000005", "15550000009"]'),
    "self-care-permission": ("name: Acme\n    self_care: {block_extensions: true}",
                             "name: Acme\n    self_care: {block_extensions: false}"),
    "product-catalogue": ("{id: 4, name: Fax to email, type: addon}",
                          "{id: 4, name: Fax to mail, type: addon}"),
}

DAN = """\
version: 1
customer: {id: 100, name: Acme}
extensions:
  - {extension: "4", name: Dan, product: Cloud PBX service}
"""


@pytest.mark.parametrize("change", sorted(BILLING_CHANGES))
def test_saved_plan_is_stale_after_any_change_to_what_it_was_computed_from(
    sqlite_billing: Billing, workdir: Path, change: str
) -> None:
    old, new = BILLING_CHANGES[change]
    assert STATE.count(old) == 1, old
    billing = sqlite_billing
    billing.load(FIXTURES / "state.yaml")
    spec = write(workdir / "dan.yaml", DAN)
    saved = billing.cli("plan", str(spec), "--out", "plan.json")
    assert saved.code == 0, saved
    billing.load(write(workdir / "changed-state.yaml", STATE.replace(old, new)))
    result = billing.cli("apply", "--plan", "plan.json")
    assert result.code == 1, result
    assert "customer 100: stale" in result.err, result
    assert billing.account("ph100x4") is None


def test_a_block_made_between_plan_and_apply_makes_the_saved_plan_stale(
    billing: Billing, workdir: Path
) -> None:
    billing.load(FIXTURES / "state.yaml")
    rename = write(workdir / "rename.yaml", """\
version: 1
customer: {id: 100, name: Acme}
extensions:
  - {extension: "1", name: Alicia, product: Cloud PBX service, addons: [Call recording],
     dids: ["15550000001"]}
""")
    saved = billing.cli("plan", str(rename), "--out", "plan.json", "--format", "json")
    assert saved.code == 0
    assert [c["op"] for c in saved.json["customers"][0]["changes"]] == ["set_name"]
    # Meanwhile the customer blocks Alice through another change of the repository.
    block = write(workdir / "block.yaml", rename.read_text()
                  .replace("Alicia", "Alice").replace('"15550000001"]}',
                                                      '"15550000001"], blocked: true}'))
    assert billing.cli("apply", str(block), "--auto-approve").code == 0
    assert billing.account("ph100x1")["blocked_by"] == "customer"  # type: ignore[index]
    result = billing.cli("apply", "--plan", "plan.json")
    assert result.code == 1, result
    assert "customer 100: stale" in result.err
    assert billing.account("ph100x1")["name"] == "Alice"  # type: ignore[index]
    saved_plan = json.loads(Path("plan.json").read_text())
    assert saved_plan["customers"][0]["changes"] == [
        {"op": "set_name", "account": "ph100x1", "from": "Alice", "to": "Alicia"}]
