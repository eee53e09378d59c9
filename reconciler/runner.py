"""From spec paths and a backend to a whole plan, customer by customer.

Specs are loaded and planned in small batches: a batch's customers are read together (a remote
backend reads them concurrently), planned, and dropped, so memory holds one batch of specs and
states plus the resulting changes, never every spec and every account at once.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.backends.base import Backend
from reconciler.errors import UsageError
from reconciler.model import Catalogue, Problem
from reconciler.plan import CustomerPlan, PlanOptions, plan_customer
from reconciler.selection import Selection
from reconciler.spec import LoadedSpec, load_spec
from reconciler.specfiles import discover
from reconciler.yamlload import Limits

if TYPE_CHECKING:
    from reconciler.owners import OwnersMap

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


def resolve_backend_url(url: str) -> str:
    """The URL with a sqlite path made absolute, so two spellings of one database compare equal."""
    if url.startswith("sqlite:///"):
        return "sqlite:///" + os.path.abspath(url[len("sqlite:///") :])
    return url.rstrip("/")


def load_specs(paths: list[str], limits: Limits | None = None) -> Iterator[LoadedSpec]:
    for path in discover(paths):
        yield load_spec(path, limits)


def load_checked(path: str, owners: OwnersMap | None) -> LoadedSpec:
    """One spec, loaded; with an owners map, a file not bound to its customer speaks for none."""
    loaded = load_spec(path)
    return loaded if owners is None else owners.check(loaded)


def validate_offline(
    paths: list[str], selection: Selection | None = None, owners: OwnersMap | None = None
) -> Plan:
    """Schema and duplicate checks only (and the owners map, if any): no billing state is read."""
    plan = Plan(backend="offline", backend_resolved="offline")
    seen: dict[int, CustomerPlan] = {}
    selection = selection or Selection()
    selected = selection.prefilter(discover(paths))
    claimed: set[int] = set()
    for path in selected.files:
        loaded = load_checked(path, owners)
        if not selected.admits(selection, loaded):
            continue
        plan.files += 1
        claimed.update(_claimed(loaded, selected.ids))
        _admit(plan, seen, loaded, lambda spec: CustomerPlan(
            customer=spec.customer_id or 0,
            file=spec.file,
            name=spec.spec.customer_name if spec.spec else None,
            errors=list(spec.errors),
            warnings=list(spec.warnings),
        ))
    _check_named_customers(selection, seen.keys() | claimed)
    return plan


def build_plan(
    paths: list[str] | None,
    backend: Backend,
    *,
    options: PlanOptions | None = None,
    files: list[str] | None = None,
    batch_size: int = 64,
    selection: Selection | None = None,
    owners: OwnersMap | None = None,
) -> Plan:
    """Plan every spec under ``paths`` (or exactly ``files``) against ``backend``.

    ``selection`` (``--customer``, ``--shard``) keeps only the spec files of those customers.
    With ``owners``, a spec not bound to its customer is reported (``customer_not_owned``) and
    its customer is never read: it belongs to no customer, like a spec whose id is unreadable.
    """
    options = options or PlanOptions()
    selection = selection or Selection()
    plan = Plan(backend=backend.url, backend_resolved=resolve_backend_url(backend.url))
    catalogue = backend.catalogue()
    seen: dict[int, CustomerPlan] = {}
    claimed: set[int] = set()
    spec_files = files if files is not None else discover(paths or [])
    selected = selection.prefilter(spec_files)
    with few_collections():
        for loaded in _loaded_batches(selected.files, batch_size, _reads_concurrently(backend), owners):
            if selected.undecided:
                loaded = [s for s in loaded if selected.admits(selection, s)]
            plan.files += len(loaded)
            for spec in loaded:
                claimed.update(_claimed(spec, selected.ids))
            wanted = sorted(
                {
                    s.customer_id for s in loaded
                    if s.checkable is not None and s.customer_id is not None and s.customer_id not in seen
                }
            )
            states = dict(backend.read_customers(wanted, catalogue)) if wanted else {}

            def plan_one(spec: LoadedSpec, states: dict[int, Any] = states) -> CustomerPlan:
                return _plan_one(spec, states, catalogue, options)

            for spec in loaded:
                _admit(plan, seen, spec, plan_one)
    _check_named_customers(selection, seen.keys() | claimed, changed_only=files is not None, plan=plan)
    return plan


def _claimed(loaded: LoadedSpec, ids: dict[str, int]) -> tuple[int, ...]:
    """The id a disowned spec claims, as the selection read it: ``--customer`` that id finds the
    file (and reports it as not owned) rather than saying no file describes the customer."""
    return (ids[loaded.file],) if loaded.disowned and loaded.file in ids else ()


def _check_named_customers(
    selection: Selection, seen: Iterable[int], *, changed_only: bool = False, plan: Plan | None = None
) -> None:
    """A customer named by --customer must have a spec file: a typo must not pass as no changes.

    Planning only changed files (``--changed-since``), an unchanged customer is a note instead.
    """
    missing = selection.missing(seen)
    if not missing:
        return
    names = ", ".join(str(c) for c in missing)
    if changed_only and plan is not None:
        plan.notes.append(f"no changed spec file describes customer {names}")
        return
    raise UsageError(f"no spec file describes customer {names} (given with --customer)")


_collections_lock = threading.Lock()
_collections_depth = 0
_collections_threshold: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def few_collections(young: int = 20_000) -> Iterator[None]:
    """Fewer garbage collections for the duration: for planning and applying many customers.

    Loading a spec allocates hundreds of thousands of short-lived objects (YAML nodes and marks,
    rows, changes) that reference counting frees; they form no cycles. With the default
    threshold of 700 allocations many of them live just long enough to be promoted, and every
    full collection walks the whole heap again: a third of the time of a 100,000-account plan.
    Here the young generation is collected after ``young`` allocations, and the objects that
    existed before (modules, the caller's data) are frozen out of the collections. Both are
    restored when the outermost use ends (planning may run in several threads).
    """
    global _collections_depth, _collections_threshold
    with _collections_lock:
        if _collections_depth == 0:
            _collections_threshold = gc.get_threshold()
            gc.freeze()
            first, *older = _collections_threshold
            gc.set_threshold(max(first, young), *older)
        _collections_depth += 1
    try:
        yield
    finally:
        with _collections_lock:
            _collections_depth -= 1
            if _collections_depth == 0:
                gc.set_threshold(*_collections_threshold)
                gc.unfreeze()


def _plan_one(
    loaded: LoadedSpec, states: dict[int, Any], catalogue: Catalogue, options: PlanOptions
) -> CustomerPlan:
    if loaded.checkable is None:
        return CustomerPlan(
            customer=loaded.customer_id or 0,
            file=loaded.file,
            errors=list(loaded.errors),
            warnings=list(loaded.warnings),
        )
    return plan_customer(loaded, states.get(loaded.checkable.customer_id), options)


def _admit(
    plan: Plan, seen: dict[int, CustomerPlan], loaded: LoadedSpec, make: Any
) -> None:
    """Add one spec's plan, or report it: unreadable customer, or the same customer twice."""
    customer_id = loaded.customer_id
    if customer_id is None:
        plan.errors.extend(loaded.errors or [Problem("schema", "customer.id is missing", loaded.file)])
        plan.errors.sort(key=Problem.sort_key)
        return
    first = seen.get(customer_id)
    if first is not None:
        line, column = loaded.yaml.locate(("customer", "id"))
        first.errors.append(
            Problem(
                "duplicate_customer",
                f"customer {customer_id} is already described by {first.file}; "
                "neither file is planned until one is removed",
                loaded.file,
                line,
                column,
            )
        )
        first.changes.clear()
        first.unsafe = False
        first.unsafe_reason = None
        return
    customer_plan = make(loaded)
    seen[customer_id] = customer_plan
    plan.customers.append(customer_plan)


def _reads_concurrently(backend: Backend) -> bool:
    """Does the backend read many customers its own way (a remote one: concurrently)?"""
    return type(backend).read_customers is not Backend.read_customers


def _loaded_batches(
    spec_files: list[str], size: int, ahead: bool, owners: OwnersMap | None = None
) -> Iterator[list[LoadedSpec]]:
    """The specs, loaded in batches.

    With ``ahead``, the next batch loads in a helper thread while the caller waits for the
    backend to read this batch's customers over the network. A backend that reads in this
    process (SQLite) would only compete with the loading for the interpreter: no helper then.
    """
    if not ahead:
        for batch in batches(spec_files, size):
            yield [load_checked(path, owners) for path in batch]
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spec-loader") as pool:
        pending: Future[list[LoadedSpec]] | None = None
        for batch in batches(spec_files, size):
            future = pool.submit(lambda paths: [load_checked(path, owners) for path in paths], batch)
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


def batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def check_plan_backend(plan: Plan, backend: Backend) -> None:
    """A saved plan applies only to the backend it was computed against."""
    here = resolve_backend_url(backend.url)
    if plan.backend_resolved != here:
        raise UsageError(
            f"the plan was made for {plan.backend} ({plan.backend_resolved}), "
            f"not for this backend {backend.url} ({here}); refusing to apply it"
        )
