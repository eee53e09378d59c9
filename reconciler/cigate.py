"""The reviewed plan is the applied plan: the check apply.yml makes before it writes anything.

After a merge, apply.yml plans afresh, at the merged commit and with its own (trusted) code,
the customers whose spec files the merged commits changed since the last applied commit. Each
of those customers is then held against the plan its pull request showed (the plan workflow's
artifact for the pull request's head commit):

- the fresh plan's fingerprint differs from the reviewed one: billing changed since the review,
  the customer is **stale**;
- the changes differ: what would be applied is **not what was reviewed**;
- the commit that last changed the customer's file has no reviewed plan (pushed without a pull
  request, or the plan artifact is missing or not trusted), or that plan lacks the customer:
  **no review**;
- the fresh plan has errors for the customer: apply would skip it anyway (**errors**).

Only customers whose fresh changes and fingerprint equal the reviewed ones are written to the
plan files apply.yml applies: one for safe customers, one for unsafe customers (applied only in
a job whose environment needs a person's approval). The fresh plan is what is applied, never
the reviewed one: a forged reviewed plan can at worst let through a customer whose spec the
merged commits changed, with exactly the changes trusted code planned from the merged spec.

Pure functions over plan dictionaries, plus one git call to learn which files each merged
commit changed; ``reconciler gate`` is the command line around it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from reconciler.errors import ReconcilerError

__all__ = ["APPLY", "APPLY_UNSAFE", "Merge", "Verdict", "GateResult", "GateError", "gate",
           "files_changed_by"]

# Verdicts. The first three let the customer through (or have nothing to do); the rest refuse it.
APPLY = "apply"
APPLY_UNSAFE = "apply_unsafe"
NOTHING = "nothing"
STALE = "stale"
NOT_REVIEWED = "not_reviewed"
NO_REVIEW = "no_review"
ERRORS = "errors"
REFUSED = frozenset({STALE, NOT_REVIEWED, NO_REVIEW, ERRORS})


class GateError(ReconcilerError):
    """The inputs of the check cannot be used: a bad manifest, a plan file, git failing."""


@dataclass(frozen=True)
class Merge:
    """One commit merged since the last applied commit, and the review behind it.

    ``pull_request`` is None for a commit pushed without a pull request; ``plan`` is the
    reviewed plan (a plan dictionary) or None when none was found or trusted; ``files`` are the
    repository paths the commit changed (first-parent diff).
    """

    commit: str
    pull_request: int | None
    plan: Mapping[str, Any] | None
    files: frozenset[str]


@dataclass(frozen=True)
class Verdict:
    customer: int | None
    file: str | None
    verdict: str
    pull_request: int | None
    detail: str

    @property
    def refused(self) -> bool:
        return self.verdict in REFUSED


@dataclass
class GateResult:
    safe: list[dict[str, Any]] = field(default_factory=list)  # fresh customer entries to apply
    # ... to apply with --force, approved
    unsafe: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def refused(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.refused]

    def verdicts_as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(v) for v in self.verdicts]


def _git(args: list[str], cwd: str | None) -> str:
    try:
        result = subprocess.run(["git", "-c", "core.quotepath=off", *args], cwd=cwd,
                                capture_output=True, text=True, encoding="utf-8",
                                errors="surrogateescape", check=False)
    except OSError as exc:
        raise GateError(f"cannot run git: {exc.strerror or exc}") from None
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
        raise GateError(f"git {args[0]} failed: {detail}")
    return result.stdout


def files_changed_by(commit: str, cwd: str | None = None) -> frozenset[str]:
    """Repository paths that ``commit`` changed against its first parent (a root commit: all).

    Against the first parent only: a merge commit brought into the default branch what its
    pull request changed, not what the branch lacked of the default branch.
    """
    parents = _git(["rev-list", "--parents", "-n", "1", "--end-of-options", commit], cwd).split()
    if len(parents) > 1:
        out = _git(["diff-tree", "-r", "--name-only", "-z", "--no-renames", parents[1], parents[0]],
                   cwd)
    else:
        out = _git(["diff-tree", "-r", "--root", "--no-commit-id", "--name-only", "-z",
                    "--no-renames", commit], cwd)
    return frozenset(path for path in out.split("\0") if path)


def _reviewing_merge(path: str, merges: list[Merge]) -> Merge | None:
    """The last merged commit that changed ``path``: its review is the one that counts."""
    for merge in reversed(merges):
        if path in merge.files:
            return merge
    return None


def _reviewed_entry(plan: Mapping[str, Any], customer: int, path: str) -> Mapping[str, Any] | None:
    for entry in plan.get("customers", []):
        if entry.get("customer") == customer and entry.get("file") == path:
            return entry
    return None


def _describe_difference(fresh: list[Any], reviewed: list[Any]) -> str:
    added = [c for c in fresh if c not in reviewed]
    missing = [c for c in reviewed if c not in fresh]
    parts = []
    if added:
        parts.append(f"{len(added)} change(s) not in the reviewed plan")
    if missing:
        parts.append(f"{len(missing)} reviewed change(s) no longer planned")
    if not parts:
        parts.append("the same changes in another order")
    return ", ".join(parts)


def _judge(entry: Mapping[str, Any], merges: list[Merge], fresh_backend: str) -> Verdict:
    customer, path = entry.get("customer"), str(entry.get("file"))

    def verdict(kind: str, pull_request: int | None, detail: str) -> Verdict:
        return Verdict(customer, path, kind, pull_request, detail)

    if entry.get("errors"):
        return verdict(ERRORS, None, f"{len(entry['errors'])} error(s) in the spec: not applied")
    changes = list(entry.get("changes", []))
    merge = _reviewing_merge(path, merges)
    pull_request = merge.pull_request if merge else None
    if not changes:
        return verdict(NOTHING, pull_request, "no changes")
    if merge is None:
        return verdict(NO_REVIEW, None, "no merged commit since the last apply changed this file")
    if merge.pull_request is None:
        return verdict(NO_REVIEW, None,
                       f"commit {merge.commit[:12]} changed this file without a pull request")
    if merge.plan is None:
        return verdict(NO_REVIEW, pull_request,
                       "no trusted plan of the pull request's head commit was found")
    if merge.plan.get("backend") != fresh_backend:
        return verdict(NO_REVIEW, pull_request,
                       "the reviewed plan was made against another backend")
    reviewed = _reviewed_entry(merge.plan, int(customer), path) if customer is not None else None
    if reviewed is None:
        return verdict(NO_REVIEW, pull_request,
                       "the pull request's plan does not show this customer")
    if reviewed.get("fingerprint") != entry.get("fingerprint"):
        return verdict(STALE, pull_request,
                       "billing changed since the pull request's plan was made: nothing applied; "
                       "open a new pull request to review a fresh plan")
    if list(reviewed.get("changes", [])) != changes:
        return verdict(NOT_REVIEWED, pull_request, "the changes differ from the reviewed plan ("
                       f"{_describe_difference(changes, list(reviewed.get('changes', [])))}): "
                       "nothing applied")
    if entry.get("unsafe"):
        return verdict(APPLY_UNSAFE, pull_request,
                       f"unsafe: {entry.get('unsafe_reason') or 'many removals'}")
    return verdict(APPLY, pull_request, f"{len(changes)} change(s) as reviewed")


def gate(fresh: Mapping[str, Any], merges: Iterable[Merge]) -> GateResult:
    """Split the fresh plan's customers into those to apply (safe / unsafe) and those refused."""
    ordered = list(merges)
    result = GateResult()
    for problem in fresh.get("errors", []):
        message = str(problem.get("message", "a problem that belongs to no customer"))
        result.verdicts.append(Verdict(None, problem.get("file"), ERRORS, None, message))
    for entry in fresh.get("customers", []):
        verdict = _judge(entry, ordered, str(fresh.get("backend")))
        result.verdicts.append(verdict)
        if verdict.verdict == APPLY:
            result.safe.append(dict(entry))
        elif verdict.verdict == APPLY_UNSAFE:
            result.unsafe.append(dict(entry))
    return result


def plan_with(fresh: Mapping[str, Any], customers: list[dict[str, Any]]) -> dict[str, Any]:
    """A saved plan (the fresh plan's header, these customers, their state) for ``apply --plan``."""
    from reconciler.plan import Plan

    plan = Plan.from_dict({**fresh, "customers": customers, "errors": [], "notes": []})
    return plan.to_dict(with_state=True)


def read_manifest(path: str, cwd: str | None = None) -> list[Merge]:
    """The merged commits, oldest first, from the JSON list apply.yml writes.

    Each item: ``{"commit": SHA, "pull_request": N or null, "plan": PATH or null}``; a plan file
    that cannot be read counts as no review (the report says so), never as an error of the run.
    """
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            items = json.load(handle)
    except OSError as exc:
        raise GateError(f"{path}: cannot read the merge list ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GateError(f"{path}: not a merge list (invalid JSON: {exc})") from None
    if not isinstance(items, list):
        raise GateError(f"{path}: not a merge list (a JSON list is expected)")
    merges = []
    for number, item in enumerate(items, start=1):
        commit = item.get("commit") if isinstance(item, dict) else None
        pull = item.get("pull_request") if isinstance(item, dict) else None
        if (
            not isinstance(commit, str)
            or not commit
            or (pull is not None and not isinstance(pull, int))
        ):
            raise GateError(f"{path}: item {number} needs a commit (text) and a pull_request "
                            "(number or null)")
        merges.append(Merge(commit, pull, _reviewed_plan(item.get("plan")),
                            files_changed_by(commit, cwd)))
    return merges


def _reviewed_plan(path: object) -> Mapping[str, Any] | None:
    if not isinstance(path, str) or not path:
        return None
    from reconciler.plan import read_plan_file

    try:
        return read_plan_file(path).to_dict()
    except ReconcilerError:
        return None


_TITLES = {
    APPLY: "applied as reviewed",
    APPLY_UNSAFE: "unsafe: waits for approval",
    NOTHING: "nothing to apply",
    STALE: "refused: stale",
    NOT_REVIEWED: "refused: not what was reviewed",
    NO_REVIEW: "refused: no reviewed plan",
    ERRORS: "refused: errors",
}


def _row(verdict: Verdict, *, with_pull: bool = True) -> str:
    # File names and messages come from the pull request: escaped, so they cannot add markup.
    from reconciler.render.markdown import escape

    cells = ["—" if verdict.customer is None else str(verdict.customer),
             f"<code>{escape(verdict.file, 200)}</code>" if verdict.file else "—"]
    if with_pull:
        cells.append(f"#{verdict.pull_request}" if verdict.pull_request is not None else "—")
    cells += [_TITLES[verdict.verdict], escape(verdict.detail, 500)]
    return "| " + " | ".join(cells) + " |"


def report_markdown(result: GateResult, commit: str) -> str:
    """The job summary: one row per customer the merged commits changed."""
    lines = [f"### Reviewed plans at {commit[:12]}", ""]
    if not result.verdicts:
        lines.append("No spec file changed since the last applied commit: nothing to apply.")
        return "\n".join(lines) + "\n"
    lines += ["| customer | file | pull request | verdict | detail |", "|---|---|---|---|---|"]
    lines += [_row(v) for v in result.verdicts]
    safe, unsafe, refused = len(result.safe), len(result.unsafe), len(result.refused)
    lines += ["",
              f"{safe} customer(s) to apply, {unsafe} unsafe (need approval), {refused} refused."]
    return "\n".join(lines) + "\n"


def pull_request_comments(result: GateResult, commit: str) -> dict[int, str]:
    """A comment for every merged pull request some of whose customers were refused."""
    by_pull: dict[int, list[Verdict]] = {}
    for verdict in result.refused:
        if verdict.pull_request is not None:
            by_pull.setdefault(verdict.pull_request, []).append(verdict)
    comments = {}
    for pull, verdicts in sorted(by_pull.items()):
        lines = [
            "<!-- reconciler:apply-refused -->",
            f"### Not applied after the merge ({commit[:12]})",
            "",
            "The plan made at the merge differs from the plan this pull request showed, so these "
            "customers were not changed in billing:",
            "",
            "| customer | file | verdict | detail |",
            "|---|---|---|---|",
        ]
        lines += [_row(v, with_pull=False) for v in verdicts]
        lines += ["", "To apply them, open a new pull request that touches the spec (a comment "
                      "will do): its plan shows billing as it is now, and is applied after that "
                      "merge."]
        comments[pull] = "\n".join(lines) + "\n"
    return comments
