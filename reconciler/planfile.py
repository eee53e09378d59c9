"""Saved plans (`plan --out FILE`, `apply --plan FILE`)."""

from __future__ import annotations

import json

import jsonschema

from reconciler.errors import UsageError
from reconciler.runner import FORMAT_VERSION, Plan
from reconciler.spec import load_schema


def read_plan_file(path: str) -> Plan:
    """A saved plan, checked against schemas/plan.schema.json."""
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
