"""The plan: what apply would change, customer by customer, as a value and as a file.

``CustomerPlan`` is one customer's result (changes, problems, the unsafe verdict, the
fingerprint of the state it was computed from); ``Plan`` is a run's customers plus its own
problems. Both have one JSON form (schemas/plan.schema.json), which ``plan --out`` saves,
``apply --plan`` and ``show`` read back, and shards merge into. How a customer's plan is
computed is reconciler/diff.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.backends import resolve_backend_url
from reconciler.changes import Change, change_from_dict
from reconciler.errors import UsageError
from reconciler.model import CustomerState, Problem, managed_kind
from reconciler.schemacheck import load_schema

if TYPE_CHECKING:
    from reconciler.backends.base import Backend


@dataclass(frozen=True)
class PlanOptions:
    """When a plan is unsafe: it terminates or blocks more than ``unsafe_share`` of a customer's
    open managed accounts, and the customer has at least ``unsafe_min_accounts`` of them."""

    unsafe_share: float = 0.25
    unsafe_min_accounts: int = 8
    # Keep each customer's state in its plan (``state_at_plan``) so that a saved plan found stale
    # can say what changed. Only for a plan that is saved: it is as big as the state.
    snapshot: bool = False


@dataclass
class CustomerPlan:
    customer: int
    file: str
    name: str | None = None
    fingerprint: str | None = None
    changes: list[Change] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    unsafe: bool = False
    unsafe_reason: str | None = None
    usage: list[dict[str, Any]] = field(default_factory=list)
    snapshot: dict[str, Any] | None = None  # the state at plan time (see staleness.py)

    @property
    def skipped(self) -> bool:
        """Apply changes nothing for a customer whose plan has errors."""
        return bool(self.errors)

    def to_dict(self, *, with_state: bool = False) -> dict[str, Any]:
        """The plan's JSON form; ``with_state`` adds ``state_at_plan`` (for a saved plan only)."""
        data: dict[str, Any] = {
            "customer": self.customer,
            "name": self.name,
            "file": self.file,
            "fingerprint": self.fingerprint,
            "changes": [c.to_dict() for c in self.changes],
            "errors": [p.to_dict() for p in self.errors],
            "warnings": [p.to_dict() for p in self.warnings],
            "unsafe": self.unsafe,
            "unsafe_reason": self.unsafe_reason,
            "usage": self.usage,
            # A customer with errors is skipped by apply: its changes are what the spec asks
            # for, shown for review, and none of them is made until the errors are fixed.
            "skipped": self.skipped,
        }
        if with_state and self.snapshot is not None:
            data["state_at_plan"] = self.snapshot
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerPlan:
        return cls(
            customer=data["customer"],
            file=data["file"],
            name=data.get("name"),
            fingerprint=data.get("fingerprint"),
            changes=[change_from_dict(c) for c in data["changes"]],
            errors=[Problem.from_dict(p) for p in data["errors"]],
            warnings=[Problem.from_dict(p) for p in data.get("warnings", [])],
            unsafe=bool(data.get("unsafe", False)),
            unsafe_reason=data.get("unsafe_reason"),
            usage=list(data.get("usage", [])),
            snapshot=data.get("state_at_plan"),
        )


# ---- the unsafe verdict --------------------------------------------------------------------------


def unsafe_reason(state: CustomerState, changes: list[Change], options: PlanOptions) -> str | None:
    """Why applying ``changes`` needs --force, or None: they terminate or block more than the
    allowed share of the customer's open managed accounts."""
    customer_id = state.customer.id
    managed_open = sum(
        1 for a in state.accounts if a.is_open and managed_kind(a.id, customer_id) is not None
    )
    drastic = sum(1 for c in changes if c.drastic)
    if managed_open < options.unsafe_min_accounts or not drastic:
        return None
    share = drastic / managed_open
    if share <= options.unsafe_share:
        return None
    return (
        f"the plan terminates or blocks {drastic} of {managed_open} managed accounts "
        f"({share:.0%}), over the {options.unsafe_share:.0%} limit; apply needs --force"
    )


# ---- a run's plan --------------------------------------------------------------------------------

FORMAT_VERSION = 1


@dataclass
class Plan:
    backend: str
    backend_resolved: str
    customers: list[CustomerPlan] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: int = 0  # spec files read
    # The commit of the specs' repository when the plan was made (GITHUB_SHA in CI): what a saved
    # plan's apply records in the audit log, since the plan was computed from the specs then.
    git_commit: str | None = None

    @property
    def change_count(self) -> int:
        """The changes apply would make: a customer with errors is skipped, so none of its."""
        return sum(len(c.changes) for c in self.customers if not c.skipped)

    @property
    def refused_count(self) -> int:
        """The changes the specs ask for that apply will not make, because of errors."""
        return sum(len(c.changes) for c in self.customers if c.skipped)

    @property
    def error_count(self) -> int:
        return len(self.errors) + sum(len(c.errors) for c in self.customers)

    @property
    def warning_count(self) -> int:
        return sum(len(c.warnings) for c in self.customers)

    def to_dict(self, *, with_state: bool = False) -> dict[str, Any]:
        """The plan's JSON form; ``with_state`` adds each customer's state at plan time, which
        only a saved plan carries (``apply --plan`` explains a stale customer with it)."""
        data: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "backend": self.backend,
            "backend_resolved": self.backend_resolved,
            "customers": [c.to_dict(with_state=with_state) for c in self.customers],
            "errors": [p.to_dict() for p in self.errors],
            "notes": list(self.notes),
            "summary": {
                "customers": len(self.customers),
                "changes": self.change_count,
                "skipped_customers": sum(1 for c in self.customers if c.skipped),
                "refused_changes": self.refused_count,
                "errors": self.error_count,
                "warnings": self.warning_count,
                "files": self.files,
            },
        }
        if self.git_commit is not None:
            data["git_commit"] = self.git_commit
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(
            backend=data["backend"],
            backend_resolved=data.get("backend_resolved") or resolve_backend_url(data["backend"]),
            customers=[CustomerPlan.from_dict(c) for c in data["customers"]],
            errors=[Problem.from_dict(p) for p in data.get("errors", [])],
            notes=list(data.get("notes", [])),
            files=int(data.get("summary", {}).get("files", 0)),
            git_commit=data.get("git_commit"),
        )


def check_plan_backend(plan: Plan, backend: Backend) -> None:
    """A saved plan applies only to the backend it was computed against."""
    here = resolve_backend_url(backend.url)
    if plan.backend_resolved != here:
        raise UsageError(
            f"the plan was made for {plan.backend} ({plan.backend_resolved}), "
            f"not for this backend {backend.url} ({here}); refusing to apply it"
        )


# ---- saved plans (`plan --out FILE`, `apply --plan FILE`) ----------------------------------------


def read_plan_file(path: str) -> Plan:
    """A saved plan, checked against schemas/plan.schema.json."""
    import jsonschema  # only a saved plan needs it: planning never pays for its import

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the plan file ({exc.strerror})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a plan file (invalid JSON: {exc})") from exc
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise UsageError(f"{path}: not a plan file of format_version {FORMAT_VERSION}")
    schema = load_schema("plan.schema.json")
    error = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(schema)(schema).iter_errors(data)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise UsageError(f"{path}: not a valid plan file: at {where}: {error.message}")
    return Plan.from_dict(data)


# ---- several saved plans as one: the shards of a run, shown as a single report ------------------


def merge_plans(plans: list[tuple[str, Plan]]) -> Plan:
    """One plan of every customer of ``plans`` ((file name, plan) pairs), as `plan` orders them.

    `plan` lists customers in spec-file order, so the merged shards of a run list them exactly as
    one unsharded plan would; the summary is recomputed from the whole. Plans of different
    backends, or two plans of the same customer (a shard given twice), are refused.
    """
    if not plans:
        raise UsageError("no plan files given")
    if len(plans) == 1:
        return plans[0][1]
    first_name, first = plans[0]
    owner: dict[int, str] = {}
    merged = Plan(backend=first.backend, backend_resolved=first.backend_resolved)
    for name, plan in plans:
        if plan.backend_resolved != first.backend_resolved:
            raise UsageError(
                f"{name} was made for {plan.backend}, but {first_name} for {first.backend}: "
                "plans of different backends cannot be shown as one"
            )
        for customer in plan.customers:
            if customer.customer in owner:
                raise UsageError(
                    f"customer {customer.customer} is in both {owner[customer.customer]} and "
                    f"{name}: "
                    "was one plan given twice?"
                )
            owner[customer.customer] = name
            merged.customers.append(customer)
        merged.errors.extend(plan.errors)
        merged.files += plan.files
        for note in plan.notes:
            if note not in merged.notes:
                merged.notes.append(note)
    merged.customers.sort(key=lambda c: (c.file, c.customer))
    merged.errors.sort(key=lambda p: (p.file or "", p.line or 0, p.column or 0))
    return merged
