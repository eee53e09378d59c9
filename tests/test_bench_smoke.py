"""The scale benchmark in miniature, so that it cannot rot: generate, load, plan, apply, re-plan.

The full benchmark is ``python -m tests.bench`` (see docs/performance.md); this runs the same
generator and the same commands on 5 customers × 20 extensions in a few seconds.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests import bench
from tests.generate import KINDS, generate
from tests.helpers import run_cli


def _ops(plan: dict[str, Any]) -> Counter[str]:
    return Counter(c["op"] for customer in plan["customers"] for c in customer["changes"])


def test_generated_differences_are_planned_applied_and_converge(tmp_path: Path) -> None:
    generated = generate(5, 20, change_share=0.1, seed=3)
    assert set(generated.differences) == set(KINDS), "the seed should exercise every kind"
    assert sum(generated.differences.values()) == 10
    specs = tmp_path / "specs"
    generated.write_specs(specs)
    state = generated.write_state_file(tmp_path / "state.yaml")
    backend = ("--backend", f"sqlite:///{tmp_path / 'billing.db'}")

    loaded = run_cli(*backend, "state", "load", str(state))
    assert loaded.code == 0, loaded

    planned = run_cli(*backend, "plan", str(specs), "--format", "json", "--detailed-exitcode")
    assert planned.code == 2, planned
    plan = planned.json
    assert plan["summary"]["errors"] == 0 and plan["summary"]["warnings"] == 0
    assert _ops(plan) == generated.expected_ops()
    assert sorted((c["op"], c["account"]) for customer in plan["customers"]
                  for c in customer["changes"]) == sorted(generated.expected)

    applied = run_cli(*backend, "apply", str(specs), "--auto-approve")
    assert applied.code == 0, applied

    again = run_cli(*backend, "plan", str(specs), "--format", "json", "--detailed-exitcode")
    assert again.code == 0, again
    assert again.json["summary"]["changes"] == 0


def test_generator_is_deterministic_and_the_empty_billing_needs_every_account(
    tmp_path: Path,
) -> None:
    first = generate(3, 7, change_share=0.3, seed=11)
    second = generate(3, 7, change_share=0.3, seed=11)
    assert [c.spec_text() for c in first.customers] == [c.spec_text() for c in second.customers]
    assert first.state() == second.state() and first.expected == second.expected
    empty = generate(3, 7, seed=11, accounts_in_billing=False)
    assert empty.state().accounts == ()
    dids = sum(len(e.dids) for c in empty.customers for e in c.entries)
    assert empty.expected_ops() == Counter({"create_account": 21, "add_alias": dids})


SMALL = ["--customers", "4", "--extensions", "3", "--repeat", "1", "--change-share", "0.5",
         "--emulator-customers", "3", "--emulator-extensions", "3", "--emulator-latency-ms", "0",
         "--fleet-customers", "4", "--fleet-extensions", "2"]


def test_the_benchmark_command_runs_every_case(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cases = "1,2,3,4,5,6"
    code = bench.main([*SMALL, "--cases", cases, "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    table = out.split("\n\n")[0].splitlines()
    rows = [line.split()[0] for line in table[2:]]
    assert rows == cases.split(",")
    assert "WRONG" not in out


# A runner that is wrong in one way, standing in for `python -m reconciler`: "half" plans (or
# applies) only the first half of each folder's spec files; "moved" plans correctly, then moves
# one change to another account, so every count per op stays right and only the list is wrong.
WRONG_RUNNER = """
import json, os, shutil, subprocess, sys, tempfile
mode, args = sys.argv[1], sys.argv[2:]
if mode == "half":
    for index, arg in enumerate(args):
        if os.path.isdir(arg):
            names = sorted(n for n in os.listdir(arg) if n.endswith(".yaml"))
            half = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(arg)))
            for name in names[: max(1, len(names) // 2)]:
                shutil.copy(os.path.join(arg, name), half)
            args[index] = half
    os.execv(sys.executable, [sys.executable, "-m", "reconciler", *args])
done = subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True)
plan = json.loads(done.stdout)
for customer in plan["customers"]:
    if customer["changes"]:
        customer["changes"][0]["account"] += "9"
        break
print(json.dumps(plan))
sys.exit(done.returncode)
"""


@pytest.mark.parametrize(
    ("mode", "case", "why"),
    [
        ("half", "1", "case 1: planned 2 of 4 customers; not planned: "),
        ("half", "3", "case 3: billing holds 6 accounts, the generator recorded 12"),
        ("moved", "2", "case 2: the plan has "),
        ("moved", "4", "case 4 (alone): the plan has "),
        ("half", "5", "case5-p1-0: planned 1 of 3 customers"),
    ],
)
def test_a_wrong_runner_fails_the_benchmark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str, case: str, why: str
) -> None:
    script = tmp_path / "wrong_runner.py"
    script.write_text(WRONG_RUNNER)
    code = bench.main([*SMALL, "--cases", case, "--check", "--workdir", str(tmp_path / "work"),
                       "--runner", f"{sys.executable} {script} {mode}"])
    out = capsys.readouterr().out
    assert code == 1, out
    wrong = [line for line in out.splitlines() if line.startswith(f"case {case}: WRONG RESULT: ")]
    assert len(wrong) == 1 and why in wrong[0], out
    row = next(line for line in out.splitlines() if line.startswith(f"{case} "))
    assert row.rstrip().endswith("WRONG"), row


def test_a_wrong_result_fails_even_without_check(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "wrong_runner.py"
    script.write_text(WRONG_RUNNER)
    code = bench.main([*SMALL, "--cases", "1", "--workdir", str(tmp_path / "work"),
                       "--runner", f"{sys.executable} {script} half"])
    assert code == 1, capsys.readouterr().out


PLAIN_SCALARS = ["", "~", "null", "Null", "yes", "No", "on", "OFF", "true", "0x1F", "0o17", "017",
                 "1_000", "-12", "+1", "1.5e3", ".inf", "-.NaN", "2001-12-14",
                 "2001-12-14t21:59:43.10-05:00", "<<", "=", "abc", "12094555948", "-", "."]


@pytest.mark.parametrize("value", PLAIN_SCALARS)
def test_the_fast_tag_resolver_agrees_with_pyyaml(value: str) -> None:
    import yaml
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    from reconciler.yamlload import SpecLoader

    ours, theirs = SpecLoader(""), yaml.CSafeLoader("")
    for implicit in ((True, False), (False, True), (False, False)):
        expected = theirs.resolve(ScalarNode, value, implicit)
        assert ours.resolve(ScalarNode, value, implicit) == expected
    for kind in (SequenceNode, MappingNode):
        assert ours.resolve(kind, None, True) == theirs.resolve(kind, None, True)


@pytest.mark.parametrize(("text", "message"), [
    ("", "the file is empty"),
    ("# a comment\n", "the file is empty"),
    ("---\n", "a spec must be a mapping"),
    ("version: 1\ncustomer: {id: 1, name: A}\nextensions:\n  - {extension: '1', name: N}\n",
     "1st extension: the required key 'product' is missing"),
])
def test_a_spec_without_its_node_tree_still_reports_the_same_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    from reconciler.spec import load_spec

    path = tmp_path / "s.yaml"
    path.write_text(text)
    [problem] = load_spec(str(path)).errors
    assert problem.message.startswith(message)
    if "extensions" in text:  # located from the text, composed again
        assert (problem.line, problem.column) == (4, 5)


def test_the_parallelism_benchmark_runs_each_parallelism_as_a_verified_process(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests import bench_pb

    code = bench_pb.main(["--customers", "2", "--extensions", "3", "--latency-ms", "0",
                          "--parallelism", "1", "4", "--repeat", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "parallelism  1:" in out and "parallelism  4:" in out
    counted = re.findall(r"([0-9.]+) calls per customer \(allowed ([0-9]+)\)", out)
    assert len(counted) == 2 and all(0 < float(got) <= int(allowed) for got, allowed in counted), (
        out
    )
