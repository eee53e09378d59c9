"""Adoption: the reverse of apply. Rewrite specs so they describe what billing holds now.

For each spec, its customer's managed accounts in billing are compared with the entries:

- an entry whose account differs gets billing's name, product, add-ons, DIDs and block state
  (a DID moved between two accounts changes both entries);
- an entry whose account was terminated in billing (or is not there at all) is removed;
- a managed account billing has and the spec lacks (created by hand) is appended, written the
  way `export` writes it (``blocked: true`` only when blocked, by anyone);
- unmanaged accounts are never written into a spec.

``blocked`` follows the plan's rules, so that afterwards the plan is empty and nothing else is
touched: an entry without ``blocked`` leaves the block state unmanaged and stays without it; an
entry that says ``blocked: false`` for an account blocked in billing (by the customer or by the
administrator) becomes ``blocked: true``, and ``blocked: true`` for an account billing has
unblocked becomes ``blocked: false``.

A spec that does not load cleanly, names an unknown customer or another name, or shares its
customer with another file is left alone and reported. Edits are made at the located lines
(:mod:`reconciler.specedit`), and each rewritten spec is loaded again and compared with billing
before it is written: a rewrite that would not describe billing is refused, never written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.backends.base import Backend
from reconciler.desired import desired_state
from reconciler.model import (
    Account,
    CustomerState,
    DesiredAccount,
    Problem,
    managed_key,
    managed_kind,
)
from reconciler.runner import check_named_customers, few_collections, run_specs
from reconciler.selection import Selection
from reconciler.spec import LoadedSpec, customer_mismatch, schema_check, unknown_customer
from reconciler.specedit import NewEntry, SpecEditError, SpecEditor, did_scalar, plain_or_quoted
from reconciler.specfiles import discover
from reconciler.yamlload import has_bom, load_yaml_text

if TYPE_CHECKING:
    from reconciler.owners import OwnersMap


@dataclass(frozen=True)
class Adopted:
    """One thing billing changed, now written into the spec."""

    account: str
    what: str  # name | product | addons | dids | blocked | added | removed
    before: Any = None
    after: Any = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"account": self.account, "what": self.what, "before": self.before,
                "after": self.after, "reason": self.reason}


@dataclass
class FileAdoption:
    """What adopt did (or would do) to one spec file."""

    file: str
    customer: int | None = None
    name: str | None = None
    changes: list[Adopted] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    new_text: str | None = None  # None: the file stays as it is
    bom: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "customer": self.customer,
            "name": self.name,
            "changed": self.new_text is not None,
            "changes": [c.to_dict() for c in self.changes],
            "errors": [p.to_dict() for p in self.errors],
            "warnings": [p.to_dict() for p in self.warnings],
        }


# ---- one customer -------------------------------------------------------------------------------


def adopt_customer(loaded: LoadedSpec, state: CustomerState) -> FileAdoption:
    """The rewrite of one valid spec (``loaded.spec`` set) that describes ``state``."""
    spec = loaded.spec
    assert spec is not None and loaded.yaml.text is not None
    result = FileAdoption(loaded.file, spec.customer_id, state.customer.name)
    editor = _Rewrite(loaded, state, result)
    changes = editor.run()
    if not changes:
        return result
    try:
        new_text = editor.editor.result()
    except SpecEditError as exc:
        result.errors.append(_layout_problem(exc, loaded.file))
        result.changes = []
        return result
    left = _remaining_drift(loaded.file, new_text, state)
    if left:
        result.errors.append(
            Problem("adopt_failed", f"the rewritten spec would still differ from billing ({left}); "
                    "left as it is", loaded.file)
        )
        result.changes = []
        return result
    result.new_text = new_text
    result.bom = has_bom(loaded.file)
    return result


def _remaining_drift(file: str, text: str, state: CustomerState) -> str | None:
    """Load the rewritten text as `plan` would; what still differs from billing, if anything."""
    loaded = load_yaml_text(text, file, keep_nodes=False)
    if loaded.problems:
        return loaded.problems[0].message
    problems = schema_check(loaded, "customer-spec.schema.json")
    if problems:
        return problems[0].message
    spec, errors, _warnings = desired_state(loaded, set())
    if errors or spec is None:
        return errors[0].message if errors else "the rewritten spec cannot be read back"
    check = LoadedSpec(file, loaded, spec)
    scratch = FileAdoption(file)
    left = _Rewrite(check, state, scratch, dry=True).run()
    return ", ".join(f"{c.account} {c.what}" for c in left) or None


class _Rewrite:
    """Compares one spec with its customer's accounts; with ``dry`` it only lists differences."""

    def __init__(
        self, loaded: LoadedSpec, state: CustomerState, result: FileAdoption, *, dry: bool = False
    ) -> None:
        assert loaded.spec is not None
        self.spec = loaded.spec
        self.data = loaded.yaml.data
        self.state = state
        self.result = result
        self.dry = dry
        self._editor: SpecEditor | None = None
        self.loaded = loaded

    @property
    def editor(self) -> SpecEditor:
        # Composed only when something changes: a spec without drift costs no second parse.
        if self._editor is None:
            assert self.loaded.yaml.text is not None
            self._editor = SpecEditor(self.loaded.yaml.text)
        return self._editor

    def note(self, item: Adopted) -> None:
        self.result.changes.append(item)

    def run(self) -> list[Adopted]:
        current = {a.id: a for a in self.state.accounts}
        listed = set()
        try:
            for desired in self.spec.accounts:
                listed.add(desired.id)
                if desired.id in self.state.foreign_ids:
                    self.result.warnings.append(Problem(
                        "account_id_taken",
                        f"{desired.id} belongs to another customer in billing; "
                        "its entry is left as it is",
                        self.spec.file,
                    ))
                    continue
                account = current.get(desired.id)
                if account is None or not account.is_open:
                    why = "not in billing" if account is None else "terminated in billing"
                    self.note(Adopted(desired.id, "removed", reason=why))
                    if not self.dry:
                        self.editor.remove_entry(desired.path[0], desired.path[1])
                    continue
                self.update(desired, account)
            for account in _new_accounts(self.state, listed):
                self.append(account)
        except SpecEditError as exc:
            self.result.errors.append(_layout_problem(exc, self.spec.file))
            self.result.changes = []
            return []
        return self.result.changes

    def update(self, desired: DesiredAccount, account: Account) -> None:
        path = desired.path
        entry = self.data[path[0]][path[1]]
        if account.name != desired.name:
            self.note(Adopted(desired.id, "name", desired.name, account.name))
            if not self.dry:
                self.editor.set_scalar(path + ("name",), account.name)
        if account.product is not None and account.product != desired.product:
            self.note(Adopted(desired.id, "product", desired.product, account.product))
            if not self.dry:
                self.editor.set_scalar(path + ("product",), account.product)
        elif account.product is None:
            self.result.warnings.append(Problem(
                "unknown_product",
                f"{desired.id} has a product the catalogue does not name; kept as written",
                self.spec.file,
            ))
        written_addons = [str(a) for a in entry.get("addons") or []]
        if set(account.addons) != set(desired.addons):
            keep = _first_of_each(written_addons, set(account.addons))
            add = [a for a in account.addons if a not in written_addons]
            after = [written_addons[i] for i in keep] + add
            self.note(Adopted(desired.id, "addons", list(desired.addons), after))
            if not self.dry:
                self.editor.set_list(path, "addons", keep, add, "addon")
        if set(account.dids) != set(desired.dids):
            keep = _first_of_each(list(desired.dids), set(account.dids))
            add = [d for d in account.dids if d not in desired.dids]
            after = [desired.dids[i] for i in keep] + add
            self.note(Adopted(desired.id, "dids", list(desired.dids), after))
            if not self.dry:
                self.editor.set_list(path, "dids", keep, add, "did")
        blocked = account.blocked_by is not None
        if desired.blocked is not None and desired.blocked != blocked:
            by = None
            if blocked:
                by = "by the administrator" if account.blocked_by == "admin" else "by the customer"
            self.note(Adopted(desired.id, "blocked", desired.blocked, blocked, reason=by))
            if not self.dry:
                self.editor.set_scalar(path + ("blocked",), "", raw="true" if blocked else "false")

    def append(self, account: Account) -> None:
        key = managed_key(account.id)
        assert key is not None
        kind, value = key
        if account.product is None:
            self.result.warnings.append(Problem(
                "unknown_product",
                f"{account.id} was created in billing with a product the catalogue does not name; "
                "not added to the spec", self.spec.file,
            ))
            return
        self.note(Adopted(
            account.id, "added", after=_describe_account(account), reason="created in billing"
        ))
        if self.dry:
            return
        fields = [
            ("extension", did_scalar(value, '"')) if kind == "extension" else ("number", value)
        ]
        fields.append(("name", plain_or_quoted(account.name)))
        fields.append(("product", plain_or_quoted(account.product)))
        if account.addons:
            addons = ", ".join(plain_or_quoted(a) for a in account.addons)
            fields.append(("addons", "[" + addons + "]"))
        if account.dids:
            fields.append(("dids", "[" + ", ".join(did_scalar(d, '"') for d in account.dids) + "]"))
        if account.blocked_by:
            fields.append(("blocked", "true"))
        section = "extensions" if kind == "extension" else "auto_attendants"
        self.editor.append_entry(section, NewEntry(fields))


def _layout_problem(exc: SpecEditError, file: str) -> Problem:
    return Problem("adopt_layout", f"cannot rewrite this layout: {exc}; left as it is", file)


def _first_of_each(items: list[str], wanted: set[str]) -> list[int]:
    """Indexes of the items to keep: those in ``wanted``, each value once."""
    seen: set[str] = set()
    keep = []
    for index, item in enumerate(items):
        if item in wanted and item not in seen:
            keep.append(index)
            seen.add(item)
    return keep


def _new_accounts(state: CustomerState, listed: set[str]) -> list[Account]:
    """Open managed accounts the spec does not list, in the order `export` writes them."""
    found = [
        a for a in state.accounts
        if a.is_open and a.id not in listed and managed_kind(a.id, state.customer.id) is not None
    ]

    def order(account: Account) -> tuple[int, int, str]:
        kind, value = managed_key(account.id) or ("extension", "")
        return (0 if kind == "extension" else 1, len(value), value)

    return sorted(found, key=order)


def _describe_account(account: Account) -> dict[str, Any]:
    return {"name": account.name, "product": account.product, "addons": list(account.addons),
            "dids": list(account.dids), "blocked": account.blocked_by is not None}


# ---- many files ---------------------------------------------------------------------------------


def adopt_specs(
    paths: list[str], backend: Backend, selection: Selection | None = None, *, batch_size: int = 64,
    owners: OwnersMap | None = None,
) -> list[FileAdoption]:
    """What adopt does to each spec file under ``paths``, all worked out before any is written.

    With ``owners``, a spec not bound to its customer is reported and its customer never read.
    """
    selection = selection or Selection()
    catalogue = backend.catalogue()
    adopting = _Adopting()
    with few_collections():
        covered = run_specs(
            adopting, discover(paths), selection,
            backend=backend, catalogue=catalogue, batch_size=batch_size, owners=owners,
        )
    check_named_customers(selection, covered.customers)
    return adopting.results


class _Adopting:
    """Spec files into adoptions, in the order of the files; see :func:`run_specs`."""

    def __init__(self) -> None:
        self.results: list[FileAdoption] = []

    def needs_state(self, loaded: LoadedSpec) -> bool:
        return loaded.spec is not None

    def unreadable(self, loaded: LoadedSpec) -> None:
        self.results.append(_adopt_one(loaded, None))

    def first(self, loaded: LoadedSpec, state: CustomerState | None) -> FileAdoption:
        result = _adopt_one(loaded, state)
        self.results.append(result)
        return result

    def duplicate(self, first: FileAdoption, loaded: LoadedSpec) -> None:
        customer_id = loaded.customer_id
        result = FileAdoption(loaded.file, customer_id)
        message = (
            f"customer {customer_id} is also described by {first.file}; neither file is adopted"
        )
        result.errors.append(loaded.yaml.problem("duplicate_customer", message, ("customer", "id")))
        first.errors.append(Problem(
            "duplicate_customer", f"customer {customer_id} is also described by {loaded.file}",
            first.file,
        ))
        first.changes, first.new_text = [], None
        self.results.append(result)


def _adopt_one(loaded: LoadedSpec, state: CustomerState | None) -> FileAdoption:
    result = FileAdoption(loaded.file, loaded.customer_id)
    if loaded.spec is None or loaded.errors:
        unread = Problem("schema", "the spec cannot be read", loaded.file)
        result.errors.extend(loaded.errors or [unread])
        return result
    if state is None:
        result.errors.append(unknown_customer(loaded, loaded.spec))
        return result
    result.name = state.customer.name
    mismatch = customer_mismatch(loaded, loaded.spec, state)
    if mismatch is not None:
        result.errors.append(mismatch)
        return result
    adopted = adopt_customer(loaded, state)
    result.name, result.changes, result.new_text, result.bom = (
        adopted.name, adopted.changes, adopted.new_text, adopted.bom)
    result.errors.extend(adopted.errors)
    result.warnings.extend(adopted.warnings)
    return result
