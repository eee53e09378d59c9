"""From spec paths and a backend to a whole plan, customer by customer.

Specs are loaded and planned in small batches: a batch's customers are read together (a remote
backend reads them concurrently), planned, and dropped, so memory holds one batch of specs and
states plus the resulting changes, never every spec and every account at once.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from reconciler.backends import resolve_backend_url
from reconciler.backends.base import Backend
from reconciler.diff import plan_customer
from reconciler.errors import UsageError
from reconciler.model import Catalogue, CustomerState, Problem
from reconciler.plan import CustomerPlan, Plan, PlanOptions
from reconciler.selection import Selection
from reconciler.spec import LoadedSpec, load_spec
from reconciler.specfiles import discover
from reconciler.yamlload import Limits

if TYPE_CHECKING:
    from reconciler.owners import OwnersMap


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
    selection = selection or Selection()

    def unplanned(spec: LoadedSpec, _state: CustomerState | None) -> CustomerPlan:
        return CustomerPlan(
            customer=spec.customer_id or 0,
            file=spec.file,
            name=spec.spec.customer_name if spec.spec else None,
            errors=list(spec.errors),
            warnings=list(spec.warnings),
        )

    covered = run_specs(_Planning(plan, unplanned), discover(paths), selection, owners=owners)
    plan.files = covered.files
    check_named_customers(selection, covered.customers)
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
    spec_files = files if files is not None else discover(paths or [])

    def plan_one(spec: LoadedSpec, state: CustomerState | None) -> CustomerPlan:
        return _plan_one(spec, state, options)

    with few_collections():
        covered = run_specs(
            _Planning(plan, plan_one), spec_files, selection,
            backend=backend, catalogue=catalogue, batch_size=batch_size, owners=owners,
        )
    plan.files = covered.files
    check_named_customers(selection, covered.customers, changed_only=files is not None, plan=plan)
    return plan


# ---- a run over spec files -----------------------------------------------------------------------

# What a command makes of a customer's spec: a CustomerPlan for plan and validate, a
# FileAdoption for adopt.
R = TypeVar("R")


class SpecRun(Protocol[R]):
    """What a command does with each spec file of a run (see :func:`run_specs`)."""

    def needs_state(self, loaded: LoadedSpec) -> bool:
        """Should billing be read for this spec's customer?"""
        ...

    def unreadable(self, loaded: LoadedSpec) -> None:
        """A spec of no customer: its id cannot be read, or the owners map disowned the file."""
        ...

    def first(self, loaded: LoadedSpec, state: CustomerState | None) -> R:
        """The result of a customer's first spec file; ``state`` is None when billing was not
        read for it or has no such customer."""
        ...

    def duplicate(self, first: R, loaded: LoadedSpec) -> None:
        """A second spec file of the customer ``first`` is for: neither file may be acted on."""
        ...


@dataclass
class Covered:
    """What a run went through: the spec files the selection kept, and the customers they
    describe or (a disowned file, see ``_claimed``) claim, for the ``--customer`` check."""

    files: int = 0
    customers: set[int] = field(default_factory=set)


def run_specs(
    run: SpecRun[R],
    spec_files: list[str],
    selection: Selection,
    *,
    backend: Backend | None = None,
    catalogue: Catalogue | None = None,
    batch_size: int = 64,
    owners: OwnersMap | None = None,
) -> Covered:
    """Hand every spec file ``selection`` keeps to ``run``, with its customer's billing state.

    The specs are loaded in batches; a batch's customers (those ``run`` needs, not met before)
    are read from ``backend`` together, then each spec goes to ``run``: a spec of no customer,
    the first file of a customer, or a second file of a customer already met (a duplicate).
    Without a backend nothing is read.
    """
    selected = selection.prefilter(spec_files)
    covered = Covered()
    seen: dict[int, R] = {}
    ahead = backend is not None and _reads_concurrently(backend)
    for loaded in _loaded_batches(selected.files, batch_size, ahead, owners):
        if selected.undecided:
            loaded = [s for s in loaded if selected.admits(selection, s)]
        covered.files += len(loaded)
        states: dict[int, CustomerState | None] = {}
        if backend is not None and catalogue is not None:
            wanted = sorted(
                {
                    s.customer_id for s in loaded
                    if s.customer_id is not None
                    and s.customer_id not in seen
                    and run.needs_state(s)
                }
            )
            states = dict(backend.read_customers(wanted, catalogue)) if wanted else {}
        for spec in loaded:
            covered.customers.update(_claimed(spec, selected.ids))
            customer_id = spec.customer_id
            if customer_id is None:
                run.unreadable(spec)
            elif customer_id in seen:
                run.duplicate(seen[customer_id], spec)
            else:
                seen[customer_id] = run.first(spec, states.get(customer_id))
    covered.customers.update(seen)
    return covered


def _claimed(loaded: LoadedSpec, ids: dict[str, int]) -> tuple[int, ...]:
    """The id a disowned spec claims, as the selection read it: ``--customer`` that id finds the
    file (and reports it as not owned) rather than saying no file describes the customer."""
    return (ids[loaded.file],) if loaded.disowned and loaded.file in ids else ()


def check_named_customers(
    selection: Selection,
    seen: Iterable[int],
    *,
    changed_only: bool = False,
    plan: Plan | None = None,
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


class _CollectorTuning:
    """The collector's settings are the process's: the first of overlapping uses (nested, or in
    several threads) changes them, the last one out undoes exactly what the first changed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._undo: list[Callable[[], None]] = []

    def enter(self, young: int) -> None:
        with self._lock:
            self._users += 1
            if self._users == 1:
                self._undo = self._tune(young)

    def leave(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                for undo in reversed(self._undo):
                    undo()
                self._undo = []

    @staticmethod
    def _tune(young: int) -> list[Callable[[], None]]:
        undo: list[Callable[[], None]] = []
        before = gc.get_threshold()
        if before[0] < young:
            tuned = (young, *before[1:])
            gc.set_threshold(*tuned)

            def restore() -> None:
                if gc.get_threshold() == tuned:  # a threshold someone set meanwhile stays
                    gc.set_threshold(*before)

            undo.append(restore)
        if gc.get_freeze_count() == 0:  # objects someone else froze stay frozen
            gc.freeze()
            undo.append(gc.unfreeze)
        return undo


_collector = _CollectorTuning()


@contextmanager
def few_collections(young: int = 20_000) -> Iterator[None]:
    """Fewer garbage collections for the duration: for planning and applying many customers.

    Loading a spec allocates hundreds of thousands of short-lived objects (YAML nodes and marks,
    rows, changes) that reference counting frees; they form no cycles. With the default
    threshold of 700 allocations many of them live just long enough to be promoted, and every
    full collection walks the whole heap again: a third of the time of a 100,000-account plan.
    Here the young generation is collected after ``young`` allocations, and the objects that
    existed before (modules, the caller's data) are frozen out of the collections. Both are
    undone when the last overlapping use ends (planning may run in several threads).
    """
    _collector.enter(young)
    try:
        yield
    finally:
        _collector.leave()


def _plan_one(
    loaded: LoadedSpec, state: CustomerState | None, options: PlanOptions
) -> CustomerPlan:
    if loaded.checkable is None:
        return CustomerPlan(
            customer=loaded.customer_id or 0,
            file=loaded.file,
            errors=list(loaded.errors),
            warnings=list(loaded.warnings),
        )
    return plan_customer(loaded, state, options)


class _Planning:
    """Specs into one plan: a customer plan each, a spec of no customer as an error of the plan."""

    def __init__(
        self, plan: Plan, make: Callable[[LoadedSpec, CustomerState | None], CustomerPlan]
    ) -> None:
        self.plan = plan
        self.make = make

    def needs_state(self, loaded: LoadedSpec) -> bool:
        return loaded.checkable is not None

    def unreadable(self, loaded: LoadedSpec) -> None:
        missing = Problem("schema", "customer.id is missing", loaded.file)
        self.plan.errors.extend(loaded.errors or [missing])
        self.plan.errors.sort(key=Problem.sort_key)

    def first(self, loaded: LoadedSpec, state: CustomerState | None) -> CustomerPlan:
        customer_plan = self.make(loaded, state)
        self.plan.customers.append(customer_plan)
        return customer_plan

    def duplicate(self, first: CustomerPlan, loaded: LoadedSpec) -> None:
        line, column = loaded.yaml.locate(("customer", "id"))
        first.errors.append(
            Problem(
                "duplicate_customer",
                f"customer {loaded.customer_id} is already described by {first.file}; "
                "neither file is planned until one is removed",
                loaded.file,
                line,
                column,
            )
        )
        first.changes.clear()
        first.unsafe = False
        first.unsafe_reason = None


def _reads_concurrently(backend: Backend) -> bool:
    """Does the backend read many customers its own way (a remote one: concurrently)?"""
    return backend.capabilities.concurrent_reads


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
            yield _load_all(batch, owners)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spec-loader") as pool:
        pending: Future[list[LoadedSpec]] | None = None
        for batch in batches(spec_files, size):
            future = pool.submit(_load_all, batch, owners)
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


def _load_all(paths: list[str], owners: OwnersMap | None) -> list[LoadedSpec]:
    return [load_checked(path, owners) for path in paths]


def batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
