"""`--shard I/N` and `--customer ID`: which customers a run covers, through the real CLI."""

from __future__ import annotations

import subprocess
from itertools import combinations
from pathlib import Path

import pytest

from reconciler.selection import Selection, customer_id_in_text, shard_of
from tests.conftest import Billing, write
from tests.generate import generate
from tests.helpers import run_cli

# The shard of a customer is part of the product's contract: it must not change between runs,
# releases or Python versions, or a provider's shard jobs would silently trade customers.
# These values were computed once from the documented function (SHA-256 of the decimal id).
PINNED = {(1, 4): 2, (100, 7): 6, (46170, 4): 2, (46170, 7): 1, (60001, 4): 3, (10**12, 7): 7}


def test_shard_function_is_pinned() -> None:
    for (customer, count), shard in PINNED.items():
        assert shard_of(customer, count) == shard


def _offline_customers(*args: str) -> list[int]:
    result = run_cli("validate", "--offline", "--format", "json", *args)
    assert result.code == 0, result
    return [c["customer"] for c in result.json["customers"]]


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    generate(customers=60, extensions=2, seed=3).write_specs(tmp_path / "specs")
    return tmp_path / "specs"


def test_shards_are_disjoint_and_cover_every_customer(fleet: Path) -> None:
    everyone = _offline_customers(str(fleet))
    assert len(everyone) == 60
    for count in (1, 3, 4):
        shards = [_offline_customers(str(fleet), "--shard", f"{i}/{count}")
                  for i in range(1, count + 1)]
        assert sorted(c for shard in shards for c in shard) == sorted(everyone)
        for left, right in combinations(shards, 2):
            assert not set(left) & set(right)
        if count > 1:
            assert all(shards), "a 60-customer fleet leaves no shard of 3 or 4 empty"


def test_adding_customers_moves_no_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    generate(customers=30, extensions=1).write_specs("small")
    generate(customers=90, extensions=1).write_specs("large")  # the same 30, and 60 more
    for index in range(1, 5):
        before = set(_offline_customers("small", "--shard", f"{index}/4"))
        after = set(_offline_customers("large", "--shard", f"{index}/4"))
        assert before <= after


def test_sharded_plans_add_up_to_the_whole_plan(sqlite_billing: Billing) -> None:
    generated = generate(customers=24, extensions=5, change_share=0.3, seed=7)
    generated.write_specs("fleet")
    sqlite_billing.load(generated.write_state_file("state.yaml"))
    whole = sqlite_billing.cli("plan", "fleet", "--format", "json").json
    parts = [sqlite_billing.cli("plan", "fleet", "--format", "json", "--shard", f"{i}/3").json
             for i in (1, 2, 3)]
    assert sum(p["summary"]["changes"] for p in parts) == whole["summary"]["changes"] > 0
    assert sorted(c["customer"] for p in parts for c in p["customers"]) == sorted(
        c["customer"] for c in whole["customers"]
    )


@pytest.mark.parametrize("command", ["validate", "plan", "apply", "adopt"])
@pytest.mark.parametrize("shard", ["0/4", "5/4", "1/0", "a/b", "2", "-1/3"])
def test_out_of_range_shard_is_a_usage_error(sqlite_billing: Billing, command: str,
                                             shard: str) -> None:
    result = sqlite_billing.cli(command, "specs/", "--shard", shard)
    assert result.code == 1, result
    assert "--shard" in result.err and "Traceback" not in result.err + result.out


def test_customer_and_shard_combine(fleet: Path) -> None:
    everyone = _offline_customers(str(fleet))
    chosen = everyone[:5]
    args = [arg for customer in chosen for arg in ("--customer", str(customer))]
    assert sorted(_offline_customers(str(fleet), *args)) == sorted(chosen)
    for index in (1, 2):
        got = _offline_customers(str(fleet), *args, "--shard", f"{index}/2")
        assert sorted(got) == sorted(c for c in chosen if shard_of(c, 2) == index)


def test_an_unknown_customer_is_an_error(fleet: Path) -> None:
    result = run_cli("validate", "--offline", str(fleet), "--customer", "424242")
    assert result.code == 1 and "no spec file describes customer 424242" in result.err, result


def test_a_file_whose_customer_cannot_be_read_is_reported_by_shard_one_only(fleet: Path) -> None:
    write(fleet / "broken.yaml", "version: 1\ncustomer: [oops\n")
    reported = []
    for index in (1, 2, 3):
        result = run_cli("validate", "--offline", "--format", "json", str(fleet), "--shard",
                         f"{index}/3")
        reported.append([p for p in result.json["errors"] if p["file"].endswith("broken.yaml")])
    assert [bool(r) for r in reported] == [True, False, False]


def test_a_broken_spec_is_reported_by_its_customers_shard(fleet: Path) -> None:
    write(fleet / "late-error.yaml",
          "version: 1\ncustomer:\n  id: 46170\n  name: ABC\nextensions: [\n")
    shard = shard_of(46170, 3)
    for index in (1, 2, 3):
        result = run_cli("validate", "--offline", "--format", "json", str(fleet), "--shard",
                         f"{index}/3")
        files = [p["file"] for p in result.json["errors"]] + [
            p["file"] for c in result.json["customers"] for p in c["errors"]
        ]
        assert any(f.endswith("late-error.yaml") for f in files) == (index == shard)


def test_shard_combines_with_changed_since(sqlite_billing: Billing) -> None:
    generated = generate(customers=12, extensions=2, seed=1)
    generated.write_specs("fleet")
    sqlite_billing.load(generated.write_state_file("state.yaml"))
    for command in (["init", "-q"], ["add", "fleet"],
                    ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *command], check=True)
    touched = generated.customers[:3]
    for customer in touched:
        path = Path("fleet") / customer.file_name
        path.write_text(path.read_text() + "# edited\n")
    planned = []
    for index in (1, 2):
        result = sqlite_billing.cli("plan", "fleet", "--changed-since", "HEAD", "--shard",
                                    f"{index}/2", "--format", "json")
        assert result.code == 0, result
        planned += [c["customer"] for c in result.json["customers"]]
    assert sorted(planned) == sorted(c.id for c in touched)


def test_no_selection_reads_no_file_twice(tmp_path: Path) -> None:
    # Without --customer or --shard, files are passed through without being opened at all.
    missing = [str(tmp_path / "does-not-exist.yaml")]
    assert Selection().prefilter(missing).files == missing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\ncustomer:\n  id: 46170\n  name: ABC\n", 46170),
        ("customer: {name: X, id: 0x10}\n", 16),
        ("extensions:\n  - {a: [1, {b: 2}]}\ncustomer:\n  name: X\n  id: 7\n", 7),
        ("customer:\n  id: '7'\n", None),  # text, not a number: the loader finds no id either
        ("a: &x 1\ncustomer:\n  id: *x\n", None),  # unsure: loaded whole
        ("customer:\n  id: true\n", None),
        ("[1, 2]\n", None),
        ("customer: [\n", None),
    ],
)
def test_customer_id_is_read_from_the_start_of_the_file(text: str, expected: int | None) -> None:
    assert customer_id_in_text(text) == expected


def test_apply_only_the_named_customer(sqlite_billing: Billing) -> None:
    generated = generate(customers=4, extensions=5, change_share=0.5, seed=9)
    generated.write_specs("fleet")
    sqlite_billing.load(generated.write_state_file("state.yaml"))
    first, second, *rest = [c.id for c in generated.changed_customers()]
    result = sqlite_billing.cli("apply", "fleet", "--customer", str(first), "--auto-approve")
    assert result.code == 0, result
    sqlite_billing.cli("plan", "fleet", "--out", "plan.json")
    result = sqlite_billing.cli("apply", "--plan", "plan.json", "--customer", str(second))
    assert result.code == 0, result
    plan = sqlite_billing.cli("plan", "fleet", "--format", "json").json
    changed = sorted(c["customer"] for c in plan["customers"] if c["changes"])
    assert changed == sorted(rest) and rest
