"""JSON Schema checks of loaded YAML documents (specs, billing state files, owners maps, plans).

The compiled fast check answers "valid?" for the common case; only a document that fails it
goes through jsonschema, whose errors are then located at the offending key or value.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from reconciler.fastschema import Check, compile_schema
from reconciler.messages import schema_problems
from reconciler.model import Path, Problem
from reconciler.yamlload import LoadedYaml

if TYPE_CHECKING:
    import jsonschema


def _schema_dir() -> FsPath:
    """Where the JSON Schemas are: inside the installed package (a wheel ships them as
    reconciler/schemas), or the repository's schemas/ folder in a source checkout."""
    here = FsPath(__file__).resolve().parent
    packaged = here / "schemas"
    return packaged if packaged.is_dir() else here.parent / "schemas"


SCHEMA_DIR = _schema_dir()


@cache
def load_schema(name: str) -> dict[str, Any]:
    with open(SCHEMA_DIR / name, encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


@cache
def fast_check(name: str) -> Check:
    return compile_schema(load_schema(name))


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    # Imported here: jsonschema is needed only for a spec that fails the fast check, and
    # importing it costs a third of the start-up of a one-file plan.
    import jsonschema

    schema = load_schema(name)
    base = jsonschema.validators.validator_for(schema)
    strict = jsonschema.validators.extend(
        base,
        type_checker=base.TYPE_CHECKER.redefine(
            "integer",
            lambda _checker, value: isinstance(value, int) and not isinstance(value, bool),
        ),
    )
    return strict(schema)  # type: ignore[no-any-return]


def located_problems(loaded: LoadedYaml, schema_name: str) -> tuple[list[Problem], set[Path]]:
    """Every schema problem of a document, and the paths of the values they make unreadable."""
    return schema_problems(loaded, validator(schema_name).iter_errors(loaded.data))


def schema_check(loaded: LoadedYaml, schema_name: str) -> list[Problem]:
    """Schema problems of a loaded document, each at the offending key or value, in line order."""
    if fast_check(schema_name)(loaded.data):
        return []
    problems, _ = located_problems(loaded, schema_name)
    return sorted(problems, key=Problem.sort_key)
