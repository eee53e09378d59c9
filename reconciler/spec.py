"""Customer spec files: safe loading, schema check, and the desired state they describe."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.desired import desired_state, normalise_did, valid_did
from reconciler.model import CustomerSpec, CustomerState, Path, Problem
from reconciler.schemacheck import SCHEMA_DIR, load_schema, schema_check
from reconciler.schemacheck import fast_check as _fast_check
from reconciler.schemacheck import located_problems as _schema_problems
from reconciler.specfiles import SPEC_SUFFIXES, discover, escape_message, is_symlink_escape
from reconciler.yamlload import Limits, LoadedYaml, load_yaml

# normalise_did and valid_did have always been imported from here, discovery lived here before
# it moved to specfiles, and the schema checks before they moved to schemacheck: re-exported.
__all__ = [
    "SCHEMA_DIR", "SPEC_SUFFIXES", "LoadedSpec", "customer_mismatch", "discover",
    "is_symlink_escape", "load_schema", "load_spec", "normalise_did", "schema_check",
    "unknown_customer", "valid_did",
]


# ---- loading -------------------------------------------------------------------------------------

@dataclass
class LoadedSpec:
    """A spec file after loading: the desired state when valid, and every problem found.

    ``spec`` is set only when the file has no error. ``checkable`` is the desired state built
    from the values that could be read even when others are broken: the agreement is checked on
    it, so that one broken value hides only the checks that depend on it. It is never planned
    for apply.
    """

    file: str
    yaml: LoadedYaml
    spec: CustomerSpec | None = None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    checkable: CustomerSpec | None = None
    # Set by the owners map (reconciler.owners) when the file may not speak for the customer it
    # names: the spec then belongs to no customer, and no command reads that customer for it.
    disowned: bool = False

    @property
    def customer_id(self) -> int | None:
        """The customer id, when it can be read at all (even from an otherwise broken spec);
        None for a spec the owners map disowned."""
        if self.disowned:
            return None
        if self.spec is not None:
            return self.spec.customer_id
        if self.checkable is not None:
            return self.checkable.customer_id
        data = self.yaml.data
        if isinstance(data, dict) and isinstance(data.get("customer"), dict):
            value = data["customer"].get("id")
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None


def load_spec(path: str, limits: Limits | None = None) -> LoadedSpec:
    """Load and check one customer spec file. Never raises for bad content.

    Every problem of the file is collected: schema errors do not stop the duplicate checks, and
    a broken value is left out of the desired state instead of discarding the whole file.
    """
    if is_symlink_escape(path):
        loaded = LoadedYaml(path)
        problem = Problem("yaml_refused", escape_message(path), path)
        return LoadedSpec(path, loaded, errors=[problem])
    # Without the node tree: it is composed again only if a problem has to be located.
    loaded = load_yaml(path, path, limits, keep_nodes=False)
    result = LoadedSpec(path, loaded, errors=list(loaded.problems))
    if loaded.data is None and loaded.problems:
        return result
    if loaded.is_empty:
        result.errors.append(
            Problem(
                "schema",
                "the file is empty: a spec needs at least version and customer "
                "(extensions and auto_attendants may be left out)",
                path,
            )
        )
        return result
    if not isinstance(loaded.data, dict):
        kind = type(loaded.data).__name__
        kind = {"list": "a list", "str": "text", "int": "a number"}.get(kind, kind)
        result.errors.append(
            loaded.problem(
                "schema", f"a spec must be a mapping (version, customer, ...), not {kind}"
            )
        )
        return result
    broken: set[Path] = set()
    if not _fast_check("customer-spec.schema.json")(loaded.data):
        problems, broken = _schema_problems(loaded, "customer-spec.schema.json")
        result.errors.extend(problems)
    checkable, errors, warnings = desired_state(loaded, broken)
    result.errors.extend(errors)
    result.warnings.extend(warnings)
    result.errors.sort(key=Problem.sort_key)
    result.warnings.sort(key=Problem.sort_key)
    result.checkable = checkable
    if not result.errors:
        result.spec = checkable
    return result


# ---- the spec's customer in billing -------------------------------------------------------------
# plan and adopt both refuse a spec whose customer billing does not have, or has under another
# name: the same problem, in the same words, from either command.


def unknown_customer(loaded: LoadedSpec, spec: CustomerSpec) -> Problem:
    """``customer.id`` names no customer in billing."""
    return loaded.yaml.problem(
        "unknown_customer", f"billing has no customer {spec.customer_id}", ("customer", "id")
    )


def customer_mismatch(
    loaded: LoadedSpec, spec: CustomerSpec, state: CustomerState
) -> Problem | None:
    """``customer.name`` is not billing's name for ``customer.id`` (most likely a pasted wrong
    id); None when the names agree or the spec's name could not be read."""
    if spec.customer_name is None or state.customer.name == spec.customer_name:
        return None
    return loaded.yaml.problem(
        "customer_mismatch",
        f"customer {spec.customer_id} is {state.customer.name!r} in billing, "
        f"not {spec.customer_name!r}: is the id right?",
        ("customer", "name"),
    )
