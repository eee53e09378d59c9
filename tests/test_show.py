"""`reconciler show`: saved plans rendered as `plan` printed them; shards merged into one plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Billing, write
from tests.generate import generate


@pytest.fixture
def fleet(sqlite_billing: Billing) -> Billing:
    generated = generate(customers=10, extensions=6, change_share=0.3, seed=11)
    generated.write_specs("fleet")
    sqlite_billing.load(generated.write_state_file("state.yaml"))
    # One spec with a problem, so errors and warnings are rendered too.
    first = Path("fleet") / generated.customers[0].file_name
    first.write_text(first.read_text().replace("product: Cloud PBX service",
                                               "product: Cloud PBX servise", 1))
    return sqlite_billing


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_show_renders_a_saved_plan_as_plan_printed_it(fleet: Billing, fmt: str) -> None:
    printed = fleet.cli("plan", "fleet", "--format", fmt, "--out", "plan.json")
    assert printed.code == 1 and "unknown_product" in printed.out  # the plan has an error
    shown = fleet.cli("show", "plan.json", "--format", fmt)
    assert shown.code == 0, shown
    assert shown.out == printed.out


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_shards_merged_render_as_the_whole_plan(fleet: Billing, fmt: str) -> None:
    whole = fleet.cli("plan", "fleet", "--format", fmt)
    for index in (1, 2, 3):
        fleet.cli("plan", "fleet", "--shard", f"{index}/3", "--out", f"shard-{index}.json")
    merged = fleet.cli("show", "shard-3.json", "shard-1.json", "shard-2.json", "--format", fmt)
    assert merged.code == 0, merged
    if fmt == "json":
        assert json.loads(merged.out)["summary"] == json.loads(whole.out)["summary"]
        assert json.loads(merged.out)["customers"] == json.loads(whole.out)["customers"]
    else:
        assert merged.out == whole.out


DAMAGED = {
    "truncated": '{"format_version": 1, "backend": "sqlite:///x.db", "custo',
    "not-json": "customers: [1, 2]\n",
    "a-list": "[1, 2, 3]",
    "other-version": '{"format_version": 7, "backend": "x", "customers": [], "summary": {}}',
    "foreign": '{"format_version": 1, "name": "terraform plan", "resource_changes": []}',
    "bad-change": json.dumps({
        "format_version": 1, "backend": "sqlite:///x.db",
        "summary": {"customers": 1, "changes": 1, "errors": 0},
        "customers": [{"customer": 1, "file": "a.yaml", "fingerprint": None, "errors": [],
                       "warnings": [],
                       "unsafe": False, "changes": [{"op": "launch_rocket", "account": "ph1x1"}]}],
    }),
}


@pytest.mark.parametrize("name", list(DAMAGED))
def test_a_damaged_or_foreign_file_is_one_clear_message(sqlite_billing: Billing, name: str) -> None:
    write("damaged.json", DAMAGED[name])
    result = sqlite_billing.cli("show", "damaged.json")
    assert result.code == 1, result
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: damaged.json: "), result
    assert "Traceback" not in result.err


def test_binary_missing_and_folder(sqlite_billing: Billing, tmp_path: Path) -> None:
    Path("binary.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    for path in ("binary.json", "missing.json"):
        result = sqlite_billing.cli("show", path)
        assert result.code == 1 and result.err.startswith(f"error: {path}: "), result
    assert sqlite_billing.cli("show", str(tmp_path)).code == 1


def test_plans_of_different_backends_are_refused(fleet: Billing, tmp_path: Path) -> None:
    fleet.cli("plan", "fleet", "--shard", "1/2", "--out", "one.json")
    fleet.cli("plan", "fleet", "--shard", "2/2", "--out", "two.json")
    other = json.loads(Path("two.json").read_text())
    other["backend"] = other["backend_resolved"] = "portabilling+https://billing.example.com"
    Path("two.json").write_text(json.dumps(other))
    result = fleet.cli("show", "one.json", "two.json")
    assert result.code == 1 and "different backends" in result.err, result


def test_the_same_plan_twice_is_refused(fleet: Billing) -> None:
    fleet.cli("plan", "fleet", "--out", "plan.json")
    result = fleet.cli("show", "plan.json", "plan.json")
    assert result.code == 1 and "given twice" in result.err, result
