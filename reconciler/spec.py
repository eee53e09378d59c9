"""Customer spec files: discovery, safe loading, schema check, and the desired state they describe."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from reconciler.errors import UsageError
from reconciler.fastschema import Check, compile_schema
from reconciler.model import (
    CustomerSpec,
    DesiredAccount,
    Problem,
    auto_attendant_account_id,
    extension_account_id,
)
from reconciler.yamlload import Limits, LoadedYaml, load_yaml

if TYPE_CHECKING:
    import jsonschema

SCHEMA_DIR = FsPath(__file__).resolve().parent.parent / "schemas"
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
                    if not name.endswith(SPEC_SUFFIXES):
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


def normalise_did(written: str) -> str:
    """'+1 209-455-5948' -> '12094555948'. Validity (7-15 digits) is checked by the caller."""
    text = written.strip()
    if text.startswith("+"):
        text = text[1:]
    return _DID_SEPARATORS.sub("", text)


@dataclass
class LoadedSpec:
    """A spec file after loading: the desired state when valid, and every problem found."""

    file: str
    yaml: LoadedYaml
    spec: CustomerSpec | None = None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def customer_id(self) -> int | None:
        """The customer id, when it can be read at all (even from an otherwise broken spec)."""
        if self.spec is not None:
            return self.spec.customer_id
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
    """Load and check one customer spec file. Never raises for bad content."""
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
    schema_problems = schema_check(loaded, "customer-spec.schema.json")
    result.errors.extend(schema_problems)
    if schema_problems:
        return result
    spec, errors, warnings = _desired_state(loaded)
    result.errors.extend(errors)
    result.warnings.extend(warnings)
    if not result.errors:
        result.spec = spec
    return result


def schema_check(loaded: LoadedYaml, schema_name: str) -> list[Problem]:
    """Schema problems of a loaded document, each at the offending key or value."""
    if _fast_check(schema_name)(loaded.data):
        return []
    validator = _validator(schema_name)
    problems = []
    for error in sorted(validator.iter_errors(loaded.data), key=lambda e: list(e.absolute_path)):
        path = tuple(error.absolute_path)
        at_key = False
        message = error.message
        if (
            error.validator == "additionalProperties"
            and isinstance(error.instance, dict)
            and isinstance(error.schema, dict)
        ):
            allowed = set(error.schema.get("properties", {}))
            extra = sorted(k for k in error.instance if k not in allowed)
            for key in extra:
                where = _breadcrumb(path + (key,))
                problems.append(
                    loaded.problem(
                        "schema",
                        f"{where}: unknown key {key!r}"
                        + (f" (allowed: {', '.join(sorted(allowed))})" if allowed else ""),
                        path + (key,),
                        at_key=True,
                    )
                )
            continue
        if error.validator == "pattern":
            message = f"{error.instance!r} does not match the expected format"
            if path and path[-1] == "extension" or (len(path) > 1 and path[-1] == "extension"):
                message = f"{error.instance!r} is not an extension (1-15 digits)"
            elif len(path) > 1 and path[-2] == "dids":
                message = f"{error.instance!r} is not a DID (digits, e.g. 12094555948)"
        problems.append(loaded.problem("schema", f"{_breadcrumb(path)}: {message}", path, at_key=at_key))
    return problems


def _breadcrumb(path: tuple[Any, ...]) -> str:
    if not path:
        return "top level"
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _desired_state(loaded: LoadedYaml) -> tuple[CustomerSpec, list[Problem], list[Problem]]:
    data = loaded.data
    customer_id: int = data["customer"]["id"]
    errors: list[Problem] = []
    warnings: list[Problem] = []
    accounts: list[DesiredAccount] = []
    for section, kind, key_field, duplicate_code in (
        ("extensions", "extension", "extension", "duplicate_extension"),
        ("auto_attendants", "auto_attendant", "number", "duplicate_auto_attendant"),
    ):
        seen: dict[str, int] = {}
        for index, entry in enumerate(data.get(section) or []):
            path = (section, index)
            key = str(entry[key_field])
            if kind == "extension" and not _EXTENSION.fullmatch(key):
                # The schema's pattern lets "7\n" through ($ matches before a final newline).
                errors.append(
                    loaded.problem(
                        "schema",
                        f"{_breadcrumb(path + (key_field,))}: {key!r} is not an extension (1-15 digits)",
                        path + (key_field,),
                    )
                )
                continue
            if key in seen:
                label = "extension" if kind == "extension" else "auto attendant number"
                errors.append(
                    loaded.problem(
                        duplicate_code,
                        f"{label} {key} is listed twice (first at {section}[{seen[key]}])",
                        path + (key_field,),
                    )
                )
                continue
            seen[key] = index
            dids = []
            for did_index, written in enumerate(entry.get("dids") or []):
                did = normalise_did(written)
                did_path = path + ("dids", did_index)
                if not _DID.fullmatch(did):
                    errors.append(
                        loaded.problem(
                            "schema",
                            f"{_breadcrumb(did_path)}: {written!r} is not a DID: "
                            "it must be 7-15 digits (E.164 without +)",
                            did_path,
                        )
                    )
                    continue
                if did != written:
                    warnings.append(
                        loaded.problem(
                            "did_normalised", f"DID {written!r} is read as {did}", did_path
                        )
                    )
                dids.append(did)
            account_id = (
                extension_account_id(customer_id, key)
                if kind == "extension"
                else auto_attendant_account_id(customer_id, int(key))
            )
            accounts.append(
                DesiredAccount(
                    id=account_id,
                    kind=kind,  # type: ignore[arg-type]
                    key=key,
                    name=entry["name"],
                    product=entry["product"],
                    addons=tuple(entry.get("addons") or ()),
                    dids=tuple(dids),
                    blocked=entry.get("blocked"),
                    path=path,
                )
            )
    spec = CustomerSpec(
        file=loaded.file,
        customer_id=customer_id,
        customer_name=data["customer"]["name"],
        prune=bool(data.get("prune", False)),
        accounts=tuple(accounts),
    )
    return spec, errors, warnings
