"""The audit's mutations, each applied alone to a scratch copy, must fail the tests named for it.

    python -m tests.audit_mutations [--only NAME] [--list]

For every mutation below: copy the project to a temporary folder, make that one edit to the
source, run the named tests there, and expect them to FAIL. Exit 1 when a mutation survives
(its tests pass) or no longer applies (the source moved on: update the mutation). Not collected by
pytest; docs/mutation-and-bench.md has the table and the broader `mutmut` run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]  # pytest node ids (or -k expressions after "-k ")


CORE = "tests/test_plan_core.py"
STORIES = "tests/test_safety_stories.py"

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "unsafe share compared with >= instead of >",
        "reconciler/plan.py",
        "if share <= options.unsafe_share:",
        "if share < options.unsafe_share:",
        (f"{CORE}::test_unsafe_means_more_than_a_quarter_of_at_least_eight_managed_accounts",
         f"{STORIES}::test_apply_refuses_an_unsafe_plan_only_over_the_boundary"),
    ),
    Mutation(
        "blocks no longer counted as drastic",
        "reconciler/changes.py",
        'rank: ClassVar[int] = 6\n    symbol: ClassVar[Literal["+", "-", "~"]] = "~"\n'
        "    drastic: ClassVar[bool] = True",
        'rank: ClassVar[int] = 6\n    symbol: ClassVar[Literal["+", "-", "~"]] = "~"\n'
        "    drastic: ClassVar[bool] = False",
        (f"{CORE}::test_unsafe_means_more_than_a_quarter_of_at_least_eight_managed_accounts",
         f"{CORE}::test_unsafe_reason_names_the_counts_the_share_and_the_limit",
         f"{STORIES}::test_apply_refuses_an_unsafe_plan_only_over_the_boundary"),
    ),
    Mutation(
        "minimum managed accounts compared with <= instead of <",
        "reconciler/plan.py",
        "if managed_open < options.unsafe_min_accounts",
        "if managed_open <= options.unsafe_min_accounts",
        (f"{CORE}::test_unsafe_means_more_than_a_quarter_of_at_least_eight_managed_accounts",
         f"{CORE}::test_unsafe_share_and_minimum_are_settable",
         f"{STORIES}::test_apply_refuses_an_unsafe_plan_only_over_the_boundary"),
    ),
    Mutation(
        "self-care check on unblock removed",
        "reconciler/diff.py",
        "self.check_block_permission(desired, unblock)",
        "pass",
        (f"{CORE}::test_unblock_needs_the_self_care_role",
         f"{STORIES}::test_unblock_is_refused_when_the_self_care_role_does_not_allow_blocking"),
    ),
    Mutation(
        "fingerprint without blocked_by",
        "reconciler/rules.py",
        "sorted(a.dids), a.blocked_by, a.status]",
        "sorted(a.dids), a.status]",
        (f"{CORE}::test_fingerprint_changes_when_billing_changes",
         f"{STORIES}::test_a_block_made_between_plan_and_apply_makes_the_saved_plan_stale",
         f"{STORIES}::test_saved_plan_is_stale_after_any_change_to_what_it_was_computed_from"),
    ),
    # Every other field the fingerprint must cover, one at a time.
    Mutation(
        "fingerprint without the account status",
        "reconciler/rules.py",
        "a.blocked_by, a.status]",
        "a.blocked_by]",
        (f"{CORE}::test_fingerprint_changes_when_billing_changes",
         f"{STORIES}::test_saved_plan_is_stale_after_any_change_to_what_it_was_computed_from"),
    ),
    Mutation(
        "fingerprint without the add-ons",
        "reconciler/rules.py",
        "a.product, sorted(a.addons), sorted(a.dids)",
        "a.product, sorted(a.dids)",
        (f"{CORE}::test_fingerprint_changes_when_billing_changes",
         f"{STORIES}::test_saved_plan_is_stale_after_any_change_to_what_it_was_computed_from"),
    ),
    Mutation(
        "fingerprint without the account DIDs",
        "reconciler/rules.py",
        "sorted(a.addons), sorted(a.dids), a.blocked_by",
        "sorted(a.addons), a.blocked_by",
        (f"{CORE}::test_fingerprint_changes_when_billing_changes",
         f"{STORIES}::test_saved_plan_is_stale_after_any_change_to_what_it_was_computed_from"),
    ),
    Mutation(
        "fingerprint without the account name",
        "reconciler/rules.py",
        "[a.id, a.name, a.product,",
        "[a.id, a.product,",
        (f"{CORE}::test_fingerprint_changes_when_billing_changes",
         f"{STORIES}::test_saved_plan_is_stale_after_any_change_to_what_it_was_computed_from"),
    ),
    Mutation(
        "fingerprint without the account product",
        "reconciler/rules.py",
        "[a.id, a.name, a.product,",
        "[a.id, a.name,",
        (f"{CORE}::test_fingerprint_changes_when_billing_changes",
         f"{STORIES}::test_saved_plan_is_stale_after_any_change_to_what_it_was_computed_from"),
    ),
    Mutation(
        "fingerprint without the agreement",
        "reconciler/rules.py",
        '"agreement": sorted(customer.agreement),',
        "",
        (f"{CORE}::test_fingerprint_changes_when_billing_changes",
         f"{STORIES}::test_saved_plan_is_stale_after_any_change_to_what_it_was_computed_from"),
    ),
    Mutation(
        "fingerprint without the DID pool",
        "reconciler/rules.py",
        '"pool": sorted(customer.dids),',
        "",
        (f"{CORE}::test_fingerprint_changes_when_billing_changes",
         f"{STORIES}::test_saved_plan_is_stale_after_any_change_to_what_it_was_computed_from"),
    ),
    Mutation(
        "fingerprint without the self-care permission",
        "reconciler/rules.py",
        "[customer.id, customer.name, customer.block_extensions]",
        "[customer.id, customer.name]",
        (f"{CORE}::test_fingerprint_changes_when_billing_changes",
         f"{STORIES}::test_saved_plan_is_stale_after_any_change_to_what_it_was_computed_from"),
    ),
    Mutation(
        "fingerprint without the product catalogue",
        "reconciler/rules.py",
        '"catalogue": sorted((p.id, p.name, p.type) for p in state.catalogue.products),',
        "",
        (f"{CORE}::test_fingerprint_changes_when_billing_changes",
         f"{STORIES}::test_saved_plan_is_stale_after_any_change_to_what_it_was_computed_from"),
    ),
)


def scratch_copy(into: Path) -> None:
    for name in ("reconciler", "tests", "schemas", "specs"):
        shutil.copytree(REPO / name, into / name,
                        ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
    shutil.copy2(REPO / "pyproject.toml", into / "pyproject.toml")


def _pytest(root: Path, *tests: str) -> subprocess.CompletedProcess[str]:
    # The scratch copy comes first on the path, ahead of any installed copy.
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist",
         *tests],
        cwd=root, capture_output=True, text=True, check=False,
        env={**{k: v for k, v in os.environ.items()
                if not k.startswith(("GITHUB_", "RECONCILER_", "PORTABILLING_"))},
             "PYTHONPATH": str(root)},
    )


def baseline(mutations: list[Mutation]) -> tuple[bool, str]:
    """Every named test passes on an unmutated copy, so a failure below is the mutation's doing."""
    tests = sorted({t for m in mutations for t in m.tests})
    with tempfile.TemporaryDirectory(prefix="reconciler-mutation-") as folder:
        scratch_copy(Path(folder))
        result = _pytest(Path(folder), *tests)
    return result.returncode == 0, (result.stdout + result.stderr)[-1500:]


def check(mutation: Mutation) -> tuple[bool, str]:
    """(killed, detail): the mutation is applied alone and each named test must fail."""
    with tempfile.TemporaryDirectory(prefix="reconciler-mutation-") as folder:
        root = Path(folder)
        scratch_copy(root)
        target = root / mutation.file
        source = target.read_text(encoding="utf-8")
        if source.count(mutation.old) != 1:
            found = source.count(mutation.old)
            return False, f"does not apply: {mutation.old!r} occurs {found} times"
        target.write_text(source.replace(mutation.old, mutation.new), encoding="utf-8")
        survivors = []
        for test in mutation.tests:
            result = _pytest(root, test)
            if result.returncode == 0:
                survivors.append(test)
            elif result.returncode != 1:
                tail = (result.stdout + result.stderr)[-1500:]
                return False, f"{test}: pytest could not run (exit {result.returncode})\n{tail}"
        if survivors:
            return False, "passed with the mutation: " + ", ".join(survivors)
        return True, "killed by " + ", ".join(t.split("::")[-1] for t in mutation.tests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.audit_mutations", description=__doc__)
    parser.add_argument("--only", help="run only the mutations whose name contains this text")
    parser.add_argument("--list", action="store_true", help="print the mutation -> tests table")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or args.only in m.name]
    if args.list:
        for mutation in chosen:
            print(f"{mutation.name}: {mutation.file}")
            for test in mutation.tests:
                print(f"    {test}")
        return 0
    passed, detail = baseline(chosen)
    if not passed:
        print(f"the named tests fail without any mutation:\n{detail}")
        return 1
    failed = 0
    for mutation in chosen:
        killed, detail = check(mutation)
        failed += not killed
        print(f"{'killed  ' if killed else 'SURVIVED'}  {mutation.name}: {detail}", flush=True)
    print(f"{len(chosen) - failed} of {len(chosen)} mutations killed by their named tests")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
