"""Customer spec files: discovery, safe loading, schema check, and the desired state they describe."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from reconciler.errors import UsageError
from reconciler.fastschema import Check, compile_schema
from reconciler.messages import breadcrumb, schema_problems
from reconciler.model import (
    CustomerSpec,
    DesiredAccount,
    Path,
    Problem,
    auto_attendant_account_id,
    extension_account_id,
)
from reconciler.yamlload import Limits, LoadedYaml, load_yaml

if TYPE_CHECKING:
    import jsonschema



def _schema_dir() -> FsPath:
    """Where the JSON Schemas are: inside the installed package (a wheel ships them as
    reconciler/schemas), or the repository's schemas/ folder in a source checkout."""
    here = FsPath(__file__).resolve().parent
    packaged = here / "schemas"
    return packaged if packaged.is_dir() else here.parent / "schemas"


SCHEMA_DIR = _schema_dir()
SPEC_SUFFIXES = (".yaml", ".yml")


@cache
def load_schema(name: str) -> dict[str, Any]:
    with open(SCHEMA_DIR / name, encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


@cache
def _fast_check(name: str) -> Check:
    return compile_schema(load_schema(name))


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    # Imported here: jsonschema is needed only for a spec that fails the fast check, and
    # importing it costs a third of the start-up of a one-file plan.
    import jsonschema

    schema = load_schema(name)
    base = jsonschema.validators.validator_for(schema)
    strict = jsonschema.validators.extend(
        base,
        type_checker=base.TYPE_CHECKER.redefine(
            "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
        ),
    )
    return strict(schema)  # type: ignore[no-any-return]


# ---- discovery ----------------------------------------------------------------------------------


def discover(paths: list[str]) -> list[str]:
    """Spec files named by ``paths`` (files, or folders searched for *.yaml / *.yml), sorted.

    Folders are walked without following symbolic links, so a link loop cannot trap us; a
    linked file inside a folder is taken only when it stays inside that folder.
    """
    found: set[str] = set()
    for given in paths:
        if os.path.isdir(given):
            root = os.path.realpath(given)
            for folder, subfolders, files in os.walk(given, followlinks=False):
                subfolders.sort()
                for name in files:
                    if not name.lower().endswith(SPEC_SUFFIXES):
                        continue
                    full = os.path.join(folder, name)
                    if os.path.islink(full):
                        target = os.path.realpath(full)
                        if os.path.commonpath([root, target]) != root:
                            # Reported by load_spec as refused; keep it so the user hears of it.
                            found.add(os.path.normpath(full))
                            continue
                    found.add(os.path.normpath(full))
        elif os.path.exists(given) or os.path.islink(given):
            found.add(os.path.normpath(given))
        else:
            raise UsageError(f"{given}: no such file or folder")
    if not found and paths:
        # A mistyped folder must not pass CI as "no changes".
        raise UsageError(f"no spec files (*.yaml, *.yml) in {', '.join(paths)}")
    return sorted(found)


# ---- loading -------------------------------------------------------------------------------------

_DID_SEPARATORS = re.compile(r"[ ().-]")
_DID = re.compile(r"[0-9]{7,15}")
_EXTENSION = re.compile(r"[0-9]{1,15}")
_NUMBER = re.compile(r"[1-9][0-9]{0,8}")


def normalise_did(written: str) -> str:
    """'+1 209-455-5948' -> '12094555948'. Validity (7-15 digits) is checked by the caller."""
    return _DID_SEPARATORS.sub("", written.strip().removeprefix("+"))


def valid_did(written: str) -> str | None:
    """The DID ``written`` stands for (normalised to 7-15 digits), or None if it is not one."""
    normal = normalise_did(written)
    return normal if _DID.fullmatch(normal) else None


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

    @property
    def customer_id(self) -> int | None:
        """The customer id, when it can be read at all (even from an otherwise broken spec)."""
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


def _is_symlink_escape(path: str) -> bool:
    if not os.path.islink(path):
        return False
    target = os.path.realpath(path)
    folder = os.path.realpath(os.path.dirname(path) or ".")
    return os.path.commonpath([folder, target]) != folder


def load_spec(path: str, limits: Limits | None = None) -> LoadedSpec:
    """Load and check one customer spec file. Never raises for bad content.

    Every problem of the file is collected: schema errors do not stop the duplicate checks, and
    a broken value is left out of the desired state instead of discarding the whole file.
    """
    if _is_symlink_escape(path):
        loaded = LoadedYaml(path)
        problem = Problem(
            "yaml_refused",
            f"the spec is a symbolic link to {os.path.realpath(path)}, outside its folder",
            path,
        )
        return LoadedSpec(path, loaded, errors=[problem])
    # Without the node tree: it is composed again only if a problem has to be located.
    loaded = load_yaml(path, path, limits, keep_nodes=False)
    result = LoadedSpec(path, loaded, errors=list(loaded.problems))
    if loaded.data is None and loaded.problems:
        return result
    if loaded.is_empty:
        result.errors.append(
            Problem("schema", "the file is empty: a spec needs version, customer and extensions", path)
        )
        return result
    if not isinstance(loaded.data, dict):
        kind = type(loaded.data).__name__
        kind = {"list": "a list", "str": "text", "int": "a number"}.get(kind, kind)
        result.errors.append(
            loaded.problem("schema", f"a spec must be a mapping (version, customer, ...), not {kind}")
        )
        return result
    broken: set[Path] = set()
    if not _fast_check("customer-spec.schema.json")(loaded.data):
        problems, broken = _schema_problems(loaded, "customer-spec.schema.json")
        result.errors.extend(problems)
    checkable, errors, warnings = _desired_state(loaded, broken)
    result.errors.extend(errors)
    result.warnings.extend(warnings)
    result.errors.sort(key=Problem.sort_key)
    result.warnings.sort(key=Problem.sort_key)
    result.checkable = checkable
    if not result.errors:
        result.spec = checkable
    return result


def _schema_problems(loaded: LoadedYaml, schema_name: str) -> tuple[list[Problem], set[Path]]:
    return schema_problems(loaded, _validator(schema_name).iter_errors(loaded.data))


def schema_check(loaded: LoadedYaml, schema_name: str) -> list[Problem]:
    """Schema problems of a loaded document, each at the offending key or value, in line order."""
    if _fast_check(schema_name)(loaded.data):
        return []
    problems, _ = _schema_problems(loaded, schema_name)
    return sorted(problems, key=Problem.sort_key)


def _is_broken(broken: set[Path], path: Path) -> bool:
    """Is the value at ``path``, or anything it sits in, broken?"""
    return any(path[:length] in broken for length in range(1, len(path) + 1)) if broken else False


_SECTIONS = (
    ("extensions", "extension", "extension", "duplicate_extension"),
    ("auto_attendants", "auto_attendant", "number", "duplicate_auto_attendant"),
)


def _desired_state(
    loaded: LoadedYaml, broken: set[Path]
) -> tuple[CustomerSpec | None, list[Problem], list[Problem]]:
    """The desired state from every value that could be read, with the problems found on the
    way (repeated extensions, numbers, DIDs; DIDs that are not 7-15 digits)."""
    data = loaded.data
    errors: list[Problem] = []
    warnings: list[Problem] = []
    customer = data.get("customer")
    customer = customer if isinstance(customer, dict) else {}
    customer_id = None if _is_broken(broken, ("customer", "id")) else customer.get("id")
    if not isinstance(customer_id, int) or isinstance(customer_id, bool):
        customer_id = None
    accounts: list[DesiredAccount] = []
    for section, kind, key_field, duplicate_code in _SECTIONS:
        entries = data.get(section)
        if _is_broken(broken, (section,)) or not isinstance(entries, list):
            continue
        seen: dict[str, int] = {}
        for index, entry in enumerate(entries):
            path = (section, index)
            if _is_broken(broken, path + (key_field,)) or not isinstance(entry, dict):
                continue  # which account this entry means cannot be known
            key = str(entry[key_field])
            if not (_EXTENSION if kind == "extension" else _NUMBER).fullmatch(key):
                # The schema's pattern lets "7\n" through ($ matches before a final newline).
                what = "an extension (1-15 digits)" if kind == "extension" else "a positive whole number"
                errors.append(
                    loaded.problem(
                        "schema",
                        f"{breadcrumb(path + (key_field,))}: {key!r} is not {what}",
                        path + (key_field,),
                    )
                )
                continue
            if key in seen:
                label = "extension" if kind == "extension" else "auto attendant number"
                first_line, _ = loaded.locate((section, seen[key], key_field))
                errors.append(
                    loaded.problem(
                        duplicate_code,
                        f"{label} {key} is listed twice (first at line {first_line})",
                        path + (key_field,),
                    )
                )
                continue
            seen[key] = index
            accounts.append(_desired_account(loaded, broken, entry, path, kind, key, customer_id, errors, warnings))
    accounts = _one_account_per_did(loaded, accounts, errors)
    if customer_id is None:
        return None, errors, warnings
    name = None if _is_broken(broken, ("customer", "name")) else customer.get("name")
    prune = data.get("prune", False)
    spec = CustomerSpec(
        file=loaded.file,
        customer_id=customer_id,
        customer_name=name if isinstance(name, str) else None,
        prune=prune is True and not _is_broken(broken, ("prune",)),
        accounts=tuple(accounts),
    )
    return spec, errors, warnings


def _one_account_per_did(
    loaded: LoadedYaml, accounts: list[DesiredAccount], errors: list[Problem]
) -> list[DesiredAccount]:
    """A DID given to two accounts is a did_duplicate at the second; the first keeps it."""
    first: dict[str, tuple[str, Path]] = {}
    result = []
    for account in accounts:
        kept: list[int] = []
        for index, did in enumerate(account.dids):
            holder = first.setdefault(did, (account.id, account.did_path(index)))
            if holder[0] == account.id:
                kept.append(index)
                continue
            line, _ = loaded.locate(holder[1])
            errors.append(
                loaded.problem(
                    "did_duplicate",
                    f"DID {did} is given to both {holder[0]} and {account.id} (first at line {line})",
                    account.did_path(index),
                )
            )
        if len(kept) != len(account.dids):
            account = replace(
                account,
                dids=tuple(account.dids[i] for i in kept),
                did_at=tuple(account.did_at[i] for i in kept),
                unreadable=account.unreadable | {"dids"},
            )
        result.append(account)
    return result


def _desired_account(
    loaded: LoadedYaml,
    broken: set[Path],
    entry: dict[str, Any],
    path: Path,
    kind: str,
    key: str,
    customer_id: int | None,
    errors: list[Problem],
    warnings: list[Problem],
) -> DesiredAccount:
    dids: list[str] = []
    did_at: list[int] = []
    unreadable: set[str] = set()
    written_dids = entry.get("dids") or []
    if _is_broken(broken, path + ("dids",)) or not isinstance(written_dids, list):
        written_dids = []
        unreadable.add("dids")
    first_index: dict[str, int] = {}
    for did_index, written in enumerate(written_dids):
        did_path = path + ("dids", did_index)
        if _is_broken(broken, did_path) or not isinstance(written, str):
            unreadable.add("dids")
            continue
        did = normalise_did(written)
        if not _DID.fullmatch(did):
            unreadable.add("dids")
            errors.append(
                loaded.problem(
                    "schema",
                    f"{breadcrumb(did_path)}: {written!r} is not a DID: "
                    "it must be 7-15 digits (E.164 without +)",
                    did_path,
                )
            )
            continue
        if did in first_index:
            first_line, _ = loaded.locate(path + ("dids", first_index[did]))
            errors.append(
                loaded.problem(
                    "did_duplicate",
                    f"DID {did} is listed twice for this {kind.replace('_', ' ')} "
                    f"(first at line {first_line}); say it once",
                    did_path,
                )
            )
            continue
        first_index[did] = did_index
        did_at.append(did_index)
        if did != written:
            warnings.append(
                loaded.problem(
                    "did_normalised",
                    f"DID {written!r} is read as {did}; `reconciler fmt` writes it that way",
                    did_path,
                )
            )
        dids.append(did)
    written_addons = entry.get("addons") or []
    if _is_broken(broken, path + ("addons",)) or not isinstance(written_addons, list):
        written_addons = []
        unreadable.add("addons")
    addon_at = [
        index for index, addon in enumerate(written_addons)
        if isinstance(addon, str) and not _is_broken(broken, path + ("addons", index))
    ]
    addons = [written_addons[index] for index in addon_at]
    if len(addons) != len(written_addons):
        unreadable.add("addons")
    product = entry.get("product")
    name = entry.get("name")
    if not isinstance(name, str) or _is_broken(broken, path + ("name",)):
        name = ""
        unreadable.add("name")
    blocked = entry.get("blocked")
    cid = customer_id or 0
    return DesiredAccount(
        id=extension_account_id(cid, key) if kind == "extension" else auto_attendant_account_id(cid, int(key)),
        kind=kind,  # type: ignore[arg-type]
        key=key,
        name=name,
        product=product if isinstance(product, str) and not _is_broken(broken, path + ("product",)) else None,
        addons=tuple(addons),
        dids=tuple(dids),
        blocked=blocked if isinstance(blocked, bool) and not _is_broken(broken, path + ("blocked",)) else None,
        path=path,
        unreadable=frozenset(unreadable),
        did_at=tuple(did_at),
        addon_at=tuple(addon_at),
    )
