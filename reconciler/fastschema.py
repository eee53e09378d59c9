"""A compiled yes/no check for the subset of JSON Schema that the project's schemas use.

jsonschema is the authority and writes every error message, but it costs more than parsing
the YAML itself on a large spec. Most specs are valid, so a check compiled from the same schema
file answers "valid" quickly and jsonschema runs only when the answer is "invalid". A keyword
outside the subset makes compilation fail, so the two can never silently disagree; a property
test holds them to the same verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

_SUPPORTED = {
    "$schema", "$id", "$defs", "$ref", "title", "description", "default", "examples",
    "type", "const", "enum", "required", "properties", "additionalProperties", "items",
    "pattern", "minimum", "maximum", "minLength", "maxLength", "minItems", "uniqueItems",
}


class UnsupportedSchema(Exception):
    pass


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    # Stricter than JSON Schema's "1.0 is an integer": an id or number written 1.0 is a typo, and
    # spec.py's jsonschema validator is given the same rule, so the two checkers agree.
    "integer": _is_int,
    "number": lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool)),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _equal(a: Any, b: Any) -> bool:
    # JSON Schema equality: true is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def compile_schema(schema: dict[str, Any]) -> Check:
    root = schema
    cache: dict[str, Check] = {}
    building: set[str] = set()

    def resolve(ref: str) -> Check:
        if not ref.startswith("#/"):
            raise UnsupportedSchema(f"only local $ref is supported, not {ref}")
        if ref in building:
            # A recursive reference: look the compiled check up when it runs.
            return lambda v: cache[ref](v)
        if ref not in cache:
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part]
            building.add(ref)
            try:
                cache[ref] = build(target)
            finally:
                building.discard(ref)
        return cache[ref]

    def build(node: dict[str, Any] | bool) -> Check:
        if node is True:
            return lambda v: True
        if node is False:
            return lambda v: False
        unknown = set(node) - _SUPPORTED
        if unknown:
            raise UnsupportedSchema(f"unsupported keywords: {sorted(unknown)}")
        checks: list[Check] = []
        if "$ref" in node:
            checks.append(resolve(node["$ref"]))
        if "type" in node:
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            tests = [_TYPES[t] for t in types]
            if len(tests) == 1:
                checks.append(tests[0])
            else:
                checks.append(lambda v: any(t(v) for t in tests))
        if "const" in node:
            const = node["const"]
            checks.append(lambda v: _equal(v, const))
        if "enum" in node:
            options = node["enum"]
            checks.append(lambda v: any(_equal(v, o) for o in options))
        if "pattern" in node:
            regex = re.compile(node["pattern"])
            checks.append(lambda v: not isinstance(v, str) or regex.search(v) is not None)
        if "minLength" in node:
            shortest: int = node["minLength"]
            checks.append(lambda v: not isinstance(v, str) or len(v) >= shortest)
        if "maxLength" in node:
            longest: int = node["maxLength"]
            checks.append(lambda v: not isinstance(v, str) or len(v) <= longest)
        if "minimum" in node:
            least: float = node["minimum"]
            checks.append(lambda v: not _TYPES["number"](v) or v >= least)
        if "maximum" in node:
            most: float = node["maximum"]
            checks.append(lambda v: not _TYPES["number"](v) or v <= most)
        if "minItems" in node:
            least = node["minItems"]
            checks.append(lambda v: not isinstance(v, list) or len(v) >= least)
        if node.get("uniqueItems"):
            checks.append(_unique_check)
        if "items" in node:
            checks.append(_items_check(build(node["items"])))
        if "required" in node or "properties" in node or "additionalProperties" in node:
            checks.append(_object_check(node, build))
        return _all_of(checks)

    return build(schema)


def _all_of(checks: list[Check]) -> Check:
    # Specialised by count: this runs for every value of every spec, and a generator per call
    # (``all(c(v) for c in checks)``) costs more than the checks themselves.
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda v: first(v) and second(v)
    if len(checks) == 3:
        first, second, third = checks
        return lambda v: first(v) and second(v) and third(v)
    every = tuple(checks)

    def check(value: Any) -> bool:
        for test in every:
            if not test(value):
                return False
        return True

    return check


def _unique_check(value: Any) -> bool:
    if not isinstance(value, list) or len(value) < 2:
        return True
    try:
        # JSON Schema equality: true is not 1, but 1 is 1.0.
        return len({(isinstance(v, bool), v) for v in value}) == len(value)
    except TypeError:  # lists or mappings inside: compare their JSON form
        import json

        return len({json.dumps(v, sort_keys=True) for v in value}) == len(value)


def _items_check(item: Check) -> Check:
    def check(value: Any) -> bool:
        if not isinstance(value, list):
            return True
        for entry in value:
            if not item(entry):
                return False
        return True

    return check


def _object_check(node: dict[str, Any], build: Callable[[Any], Check]) -> Check:
    required = tuple(node.get("required", ()))
    properties = {name: build(sub) for name, sub in node.get("properties", {}).items()}
    additional = node.get("additionalProperties", True)
    extra = build(additional) if isinstance(additional, dict) else None
    closed = additional is False

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for name in required:
            if name not in value:
                return False
        for name, item in value.items():
            test = properties.get(name)
            if test is None:
                if closed:
                    return False
                if extra is not None and not extra(item):
                    return False
            elif not test(item):
                return False
        return True

    return check
