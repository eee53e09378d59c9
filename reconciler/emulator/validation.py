"""Params checked against the declared shapes (shapes.py), the way a server validates a request.

Validators are compiled once. As for spec files (reconciler/fastschema.py), a yes/no check
compiled from the same schema answers "valid" for a well-formed call (a few microseconds: the
benchmark pushes thousands of calls a second through here), and jsonschema, the authority,
describes the problem when the answer is "invalid". A malformed call becomes a
``Client.Validation.*`` fault whose message names the parameter path, e.g. ``account_info.i_acount
is not a parameter of Account/update_account``: never a silent coercion of ``"46170"`` to 46170,
never a crashed handler.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from reconciler.emulator.db import Fault
from reconciler.emulator.shapes import SHAPES, Schema
from reconciler.fastschema import compile_schema

# JSON Schema's "integer" admits 46170.0 (and Python's bool is an int): a server's parser takes
# neither for an integer field.
_TYPES = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, value: type(value) is int
)
_StrictValidator = validators.extend(Draft202012Validator, type_checker=_TYPES)

UNKNOWN = "Client.Validation.unknown_parameter"
MISSING = "Client.Validation.missing_parameter"
INVALID_TYPE = "Client.Validation.invalid_type"
INVALID_VALUE = "Client.Validation.invalid_value"

_JSON_TYPES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}
_WANTED = {
    "integer": "an integer",
    "string": "a string",
    "object": "an object",
    "array": "an array",
    "null": "null",
    "number": "a number",
    "boolean": "a boolean",
}


class Shapes:
    """The compiled validator of every declared method."""

    def __init__(self, shapes: dict[str, Schema] | None = None) -> None:
        shapes = shapes or SHAPES
        self._validators = {method: _StrictValidator(schema) for method, schema in shapes.items()}
        self._checks = {method: compile_schema(schema) for method, schema in shapes.items()}

    def __contains__(self, method: str) -> bool:
        return method in self._validators

    def check(self, method: str, params: Any) -> None:
        """Raise the fault a server answers when ``params`` do not fit ``method``'s shape."""
        validator = self._validators.get(method)
        if validator is None:
            raise Fault("Client.Service.unknown_method", f"no method {method}")
        if not isinstance(params, dict):
            raise Fault(INVALID_TYPE, f"params of {method} must be an object, not {_kind(params)}")
        if self._checks[method](params):
            return
        raise _fault(method, validator.iter_errors(params))

    def is_valid(self, method: str, params: Any) -> tuple[bool, bool]:
        """(compiled verdict, jsonschema verdict): for tests that hold the two together."""
        return self._checks[method](params), self._validators[method].is_valid(params)


def _fault(method: str, errors: Iterable[ValidationError]) -> Fault:
    """The fault for the most telling problem: the shallowest, and an unknown parameter before a
    missing one before a wrong type before a wrong value (the others are counted)."""
    found = sorted(
        (_describe(method, error) for error in errors), key=lambda f: (f[0], f[1], f[3])
    )
    _depth, _rank, code, text = found[0]
    if len(found) > 1:
        text += f" (and {len(found) - 1} more problem(s))"
    return Fault(code, text)


def _describe(method: str, error: ValidationError) -> tuple[int, int, str, str]:
    """(depth, rank, faultcode, faultstring) of one schema error."""
    where = list(error.absolute_path)
    kind = error.validator
    instance = error.instance
    # The stubs allow an "unset" marker here; an error from iter_errors always has both.
    schema: Any = error.schema
    wanted: Any = error.validator_value
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = schema.get("properties", {})
        extra = sorted(name for name in instance if name not in known)
        names = ", ".join(_path([*where, name]) for name in extra)
        verb = "is not a parameter" if len(extra) == 1 else "are not parameters"
        return len(where), 0, UNKNOWN, f"{names} {verb} of {method}"
    if kind == "required" and isinstance(instance, dict):
        missing = [name for name in wanted if name not in instance]
        names = ", ".join(_path([*where, name]) for name in missing)
        return len(where), 1, MISSING, f"{names} is required by {method}"
    if kind == "type":
        wanted_text = " or ".join(_WANTED.get(w, w)
                                  for w in ([wanted] if isinstance(wanted, str) else wanted))
        return (
            len(where),
            2,
            INVALID_TYPE,
            f"{_path(where)} must be {wanted_text}, not {_kind(instance)} in {method}",
        )
    return len(where), 3, INVALID_VALUE, f"{_path(where)}: {_value_problem(error)} in {method}"


def _value_problem(error: ValidationError) -> str:
    kind, value = error.validator, error.instance
    wanted: Any = error.validator_value
    shown = _show(value)
    if kind == "enum":
        return f"must be one of {', '.join(_show(v) for v in wanted)}, not {shown}"
    if kind == "const":
        return f"must be {_show(wanted)}, not {shown}"
    if kind == "minimum":
        return f"must be at least {wanted}, not {shown}"
    if kind == "pattern":
        return f"{shown} does not match {wanted}"
    if kind in ("minLength", "maxLength"):
        return f"{shown} is too {'short' if kind == 'minLength' else 'long'} ({kind} {wanted})"
    return error.message


def _path(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "params"


def _kind(value: Any) -> str:
    """How a JSON value reads in a message: its type, and the value itself when it is short."""
    kind = _JSON_TYPES.get(type(value), type(value).__name__)
    if isinstance(value, (dict, list)) or value is None:
        return kind
    return f"{kind} ({_show(value)})"


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."
