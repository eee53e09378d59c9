"""The owners map: which spec file speaks for which customer, and who may edit it.

A specs repository is shared by many customers' editors, and CI holds the billing credentials.
The provider's map (``owners.yaml`` at the repository's top folder, schemas/owners.schema.json)
binds each customer id to exactly one spec file. A spec whose ``customer.id`` is not the id bound
to its path (or a spec file the map does not list) is ``customer_not_owned``: it speaks for no
customer, so no command reads that customer's billing state for it, plans or applies anything
for it, or prints a word billing holds about it. The check runs as each spec is loaded, before
any billing read, and its message names only the file, the ids and the map.

Paths in the map are relative to the repository's top folder (the git top level of the spec
paths, or the current folder outside git), which is where the map lives by default; so a copy
of the base branch's map given with ``RECONCILER_OWNERS`` judges the files of the checkout.
Without a map everything works as before, unless ``RECONCILER_REQUIRE_OWNERS`` (CI) says a map
is required. The CODEOWNERS lines the map implies come from :func:`codeowners`.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from reconciler.errors import OwnersMapError, UsageError
from reconciler.model import Problem
from reconciler.spec import LoadedSpec, schema_check
from reconciler.specfiles import is_spec_name
from reconciler.yamlload import Limits, load_yaml

if TYPE_CHECKING:
    from reconciler.plan import CustomerPlan


class SavedCustomers(Protocol):
    """What ``check_saved_plan`` needs of a plan: its customers and its file-level problems."""

    customers: list[CustomerPlan]
    errors: list[Problem]

OWNERS_FILE = "owners.yaml"
OWNERS_ENV = "RECONCILER_OWNERS"
REQUIRE_ENV = "RECONCILER_REQUIRE_OWNERS"
CODE = "customer_not_owned"
# What only the provider may change, besides the map itself: listed last in CODEOWNERS.
PROVIDER_PATHS = ("/.github/", "/schemas/")


@dataclass(frozen=True)
class Binding:
    """One customer's spec file (relative to the repository's top folder) and its editors."""

    customer: int
    file: str
    editors: tuple[str, ...] = ()


@dataclass
class OwnersMap:
    """A loaded, checked owners map. ``root`` is the real path of the repository's top folder."""

    path: str
    root: str
    provider: tuple[str, ...]
    bindings: tuple[Binding, ...]
    folders: tuple[str, ...] = (".",)
    required: bool = False
    _by_file: dict[str, Binding] = field(default_factory=dict, repr=False)
    _by_id: dict[int, Binding] = field(default_factory=dict, repr=False)
    _folders_in_repo: dict[str, str | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_file = {b.file: b for b in self.bindings}
        self._by_id = {b.customer: b for b in self.bindings}

    def repo_path(self, path: str) -> str | None:
        """``path`` relative to the repository's top folder, with ``/``; None when outside it.

        The folder is resolved (a checkout reached through a link is still the checkout), the
        name is not: a link named ``evil.yaml`` is judged as ``evil.yaml``, never as its target.
        Folders are resolved once each: a fleet's thousand files cost one lookup each.
        """
        folder, name = os.path.split(path)
        if folder not in self._folders_in_repo:
            real = os.path.realpath(folder or os.curdir)
            relative = os.path.relpath(real, self.root)
            outside = relative == os.pardir or relative.startswith(os.pardir + os.sep)
            self._folders_in_repo[folder] = (
                None if outside
                else "" if relative == os.curdir
                else relative.replace(os.sep, "/") + "/"
            )
        prefix = self._folders_in_repo[folder]
        return None if prefix is None else prefix + name

    def governs(self, repo_path: str | None) -> bool:
        if repo_path is None:
            return False
        return any(folder == "." or repo_path.startswith(folder + "/") for folder in self.folders)

    @property
    def display(self) -> str:
        return self.repo_path(self.path) or self.path

    def not_owned(self, file: str, customer_id: int | None) -> str | None:
        """Why the spec ``file`` may not speak for ``customer_id``; None when it may.

        A file outside the folders the map governs is judged only when a map is required (CI);
        a file whose id cannot be read is judged only by whether the map lists it. The reason
        names the file, the ids and the map, never anything billing holds.
        """
        where = self.repo_path(file)
        if not self.governs(where):
            if not self.required:
                return None
            return (f"this file is outside the folders the owners map {self.display} governs "
                    f"({', '.join(self.folders)}): nothing is planned for it")
        assert where is not None
        bound = self._by_file.get(where)
        if bound is None:
            return (f"this file is not in the owners map {self.display}, which binds each "
                    "spec file to its customer: nothing is planned for it until the provider "
                    "adds it there")
        if customer_id is None or customer_id == bound.customer:
            return None
        other = self._by_id.get(customer_id)
        elsewhere = f" (customer {customer_id}'s file is {other.file})" if other is not None else ""
        return (f"this file speaks for customer {bound.customer} in the owners map {self.display}, "
                f"not for customer {customer_id}{elsewhere}: nothing is planned for it")

    def check(self, loaded: LoadedSpec) -> LoadedSpec:
        """``loaded`` when its file may speak for its customer, else a spec of no customer.

        The spec returned carries ``customer_not_owned`` at ``customer.id`` and the file's own
        problems, and nothing to plan: no command reads that customer's billing state for it.
        """
        reason = self.not_owned(loaded.file, loaded.customer_id)
        if reason is None:
            return loaded
        problem = loaded.yaml.problem(CODE, reason, ("customer", "id"))
        errors = sorted([problem, *loaded.errors], key=Problem.sort_key)
        return replace(loaded, spec=None, checkable=None, errors=errors, warnings=[], disowned=True)

    def binding_of(self, file: str) -> Binding | None:
        where = self.repo_path(file)
        return self._by_file.get(where) if where is not None else None


def check_saved_plan(plan: SavedCustomers, owners: OwnersMap) -> None:
    """Drop from a saved plan every customer its file may not speak for, as an error.

    ``plan`` checked the map when it was made; this holds a saved plan (an artifact that
    travelled between jobs) to the map of the run that applies it.
    """
    kept = []
    for customer in plan.customers:
        reason = owners.not_owned(customer.file, customer.customer)
        if reason is None:
            kept.append(customer)
        else:
            plan.errors.append(Problem(CODE, reason, customer.file))
    plan.customers = kept


# ---- finding and loading the map -----------------------------------------------------------------


def top_folder(path: str) -> str | None:
    """The real path of the git working tree holding ``path`` (found by its ``.git``), or None."""
    current = os.path.realpath(os.path.abspath(path))
    while not os.path.isdir(current):
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent
    while True:
        if os.path.exists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def find_owners(paths: Sequence[str], *, given: str | None = None,
                required: bool = False) -> OwnersMap | None:
    """The owners map for a command on ``paths``: ``given`` (``--owners``/``RECONCILER_OWNERS``),
    else ``owners.yaml`` at the repository's top folder; None when there is none and none is
    required. Raises UsageError for a missing map that was given or required, OwnersMapError for
    a malformed one."""
    roots = sorted({top_folder(p) or os.path.realpath(os.getcwd()) for p in (paths or ["."])})
    candidates = [os.path.join(root, OWNERS_FILE) for root in roots]
    if len(roots) > 1 and (given or required or any(os.path.exists(c) for c in candidates)):
        raise UsageError(
            f"the spec paths are in {len(roots)} repositories ({', '.join(roots)}); each has its "
            "own owners map: run one command per repository"
        )
    root = roots[0]
    candidates = [_shown(c) for c in candidates]
    if given:
        if not os.path.isfile(given):
            raise UsageError(f"the owners map {given} (--owners / {OWNERS_ENV}) does not exist")
        return load_owners(given, root, required=required)
    if not os.path.isfile(candidates[0]):
        if required:
            raise UsageError(
                f"no owners map: {candidates[0]} does not exist, and {REQUIRE_ENV} requires one "
                f"(give it with --owners FILE or {OWNERS_ENV})"
            )
        return None
    return load_owners(candidates[0], root, required=required)


def load_owners(path: str, root: str, *, required: bool = False) -> OwnersMap:
    """Read and check an owners map; raise OwnersMapError listing every problem with its line."""
    loaded = load_yaml(path, path, Limits.from_env())
    problems = list(loaded.problems)
    if not problems and loaded.root is None:
        problems.append(Problem("schema", "the file is empty: an owners map needs version, "
                                          "provider and customers", path))
    if not problems and not isinstance(loaded.data, dict):
        problems.append(loaded.problem("schema", "an owners map must be a mapping (version, "
                                                 "provider, customers)"))
    if not problems:
        problems.extend(schema_check(loaded, "owners.schema.json"))
    if problems:
        raise OwnersMapError(f"{path}: the owners map is not valid", problems)
    data = loaded.data
    folders = tuple(_folder(f) for f in data.get("folders") or ["."])
    bindings: list[Binding] = []
    first_id: dict[int, int] = {}
    first_file: dict[str, int] = {}
    for index, entry in enumerate(data["customers"]):
        where = ("customers", index)
        file = posixpath.normpath(entry["file"])
        line = loaded.locate(where)[0]
        if file.split("/")[0] == "..":
            problems.append(loaded.problem("schema", f"{entry['file']} leaves the repository",
                                           (*where, "file")))
            continue
        if entry["id"] in first_id:
            problems.append(loaded.problem(
                "schema",
                f"customer {entry['id']} is listed twice (first at line {first_id[entry['id']]}); "
                "a customer has one spec file", (*where, "id")))
            continue
        if file in first_file:
            problems.append(loaded.problem(
                "schema",
                f"{file} is listed twice (first at line {first_file[file]}); a spec file speaks "
                "for one customer", (*where, "file")))
            continue
        if not is_spec_name(file):
            problems.append(loaded.problem("schema", f"{file} is not a spec file (.yaml or .yml)",
                                           (*where, "file")))
            continue
        if not any(f == "." or file.startswith(f + "/") for f in folders):
            problems.append(loaded.problem(
                "schema", f"{file} is outside the folders this map governs ({', '.join(folders)})",
                (*where, "file")))
            continue
        first_id[entry["id"]] = first_file[file] = line or 0
        bindings.append(Binding(entry["id"], file, tuple(entry.get("editors") or ())))
    if problems:
        raise OwnersMapError(f"{path}: the owners map is not consistent",
                             sorted(problems, key=Problem.sort_key))
    return OwnersMap(path, os.path.realpath(root), tuple(data["provider"]), tuple(bindings),
                     folders, required)


def _shown(path: str) -> str:
    """``path`` as a person would type it here: relative to the current folder when inside it."""
    relative = os.path.relpath(path)
    return path if relative == os.pardir or relative.startswith(os.pardir + os.sep) else relative


def _folder(text: str) -> str:
    return posixpath.normpath(text.rstrip("/") or ".")


# ---- CODEOWNERS ----------------------------------------------------------------------------------


def codeowners(owners: OwnersMap) -> str:
    """The CODEOWNERS file the map implies, the same for the same map.

    The provider owns everything; each customer's spec file is owned by its editors and the
    provider; the map, ``.github/`` (workflows and CODEOWNERS) and the schemas are the
    provider's alone, listed last because in CODEOWNERS the last matching pattern wins.
    """
    provider = " ".join(owners.provider)
    map_path = owners.repo_path(owners.path) or OWNERS_FILE
    lines = [
        f"# Generated from {map_path} by `reconciler owners --codeowners`: change {map_path}, not",
        "# this file, then run `reconciler owners --codeowners > .github/CODEOWNERS`.",
        "# The last matching pattern wins.",
        "",
        "# The provider owns everything not listed below.",
        f"* {provider}",
    ]
    if owners.bindings:
        lines += ["", "# Each customer's spec file: the customer's editors and the provider."]
        for binding in sorted(owners.bindings, key=lambda b: b.file):
            names = list(dict.fromkeys([*binding.editors, *owners.provider]))
            lines.append(f"/{binding.file} {' '.join(names)}")
    lines += ["",
              "# The provider alone, last, so that no pattern above can hand these to anyone else."]
    for path in (f"/{map_path}", *PROVIDER_PATHS):
        lines.append(f"{path} {provider}")
    return "\n".join(lines) + "\n"
