"""YAML and JSON Schema errors in the words of a person editing YAML.

jsonschema finds the errors; this module says them (YAML syntax errors are said by
reconciler.yamlsyntax, which the loader uses): a misspelt key gets "did you mean", a value
YAML read as a boolean or a number where text is wanted says how it was read and to quote it, a
single value where a list is wanted shows the list form. Each problem carries the path of the
value it breaks, so that later checks skip only what depends on a broken value.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from reconciler.model import Path, Problem
from reconciler.yamlload import LoadedYaml, reads_as_text

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError


# What one item of a list is called in a message: the list's key -> the item's name.
_ITEM_NAMES = {
    "extensions": "extension", "auto_attendants": "auto attendant", "dids": "DID",
    "addons": "add-on", "products": "product", "customers": "customer", "accounts": "account",
    "agreement": "agreement entry",
}


def ordinal(number: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def breadcrumb(path: Path) -> str:
    """Where a value is, counting list items from one as people do:
    ('extensions', 2, 'name') -> '3rd extension, name'; ('customer', 'id') -> 'customer.id'."""
    if not path:
        return "top level"
    parts: list[str] = []
    for index, step in enumerate(path):
        if isinstance(step, int):
            owner = str(path[index - 1]) if index else ""
            item = f"{ordinal(step + 1)} {_ITEM_NAMES.get(owner, 'entry')}"
            if parts and owner in _ITEM_NAMES and parts[-1].endswith(owner):
                # "extensions" is said by "2nd extension"; a nested key path keeps its head.
                head = parts[-1][: -len(owner)].rstrip(".")
                parts[-1:] = [head, item] if head else [item]
            else:
                parts.append(item)
        elif parts and not isinstance(path[index - 1], int):
            parts[-1] += f".{step}"
        else:
            parts.append(str(step))
    return ", ".join(parts)


def _squash(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "").replace(" ", "")


def suggest_key(key: Any, allowed: Iterable[str]) -> str | None:
    """The allowed key a misspelt one most likely means: 'add-ons' -> 'addons',
    'extention' -> 'extension'."""
    if not isinstance(key, str):
        return None
    choices = sorted(allowed)
    for choice in choices:
        if _squash(choice) == _squash(key):
            return choice
    close = difflib.get_close_matches(key.lower(), choices, n=1, cutoff=0.6)
    return close[0] if close else None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "empty"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _yaml_scalar(text: str) -> str:
    """A value as it reads in a flow list: quoted when YAML would not read it as text."""
    if (
        text
        and reads_as_text(text)
        and text == text.strip()
        and not any(c in text for c in ",[]{}#:")
    ):
        return text
    return json.dumps(text, ensure_ascii=False)


def schema_problems(
    loaded: LoadedYaml, errors: Iterable[ValidationError]
) -> tuple[list[Problem], set[Path]]:
    """Every schema error of a document as problems at the offending key or value, and the paths
    of the values they make unusable (later checks skip those, and only those)."""
    found: list[Problem] = []
    broken: set[Path] = set()
    # A misspelt key and the required key it stands for are one mistake, said once.
    suggested: set[Path] = set()
    # One problem per missing key: each `required` error lists every key its object requires.
    required: dict[tuple[Path, str], None] = {}
    for error in errors:
        path = tuple(error.absolute_path)
        validator = error.validator
        if validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = (
                set(error.schema.get("properties", {})) if isinstance(error.schema, dict) else set()
            )
            for key in sorted((k for k in error.instance if k not in allowed), key=str):
                guess = suggest_key(key, allowed - set(error.instance))
                if guess is not None:
                    suggested.add(path + (guess,))
                    hint = f"; did you mean {guess!r}?"
                elif allowed:
                    hint = f" (allowed: {', '.join(sorted(allowed))})"
                else:
                    hint = ""
                message = f"{breadcrumb(path + (key,))}: unknown key {key!r}{hint}"
                found.append(loaded.problem("schema", message, path + (key,), at_key=True))
            continue
        if validator == "required":
            for name in error.validator_value:
                if isinstance(error.instance, dict) and name not in error.instance:
                    required[(path, name)] = None
                    broken.add(path + (name,))
            continue
        if validator == "uniqueItems" and isinstance(error.instance, list):
            for index, problem in _repeated_items(loaded, path, error.instance):
                found.append(problem)
                broken.add(path + (index,))
            continue
        message = _value_message(loaded, path, error)
        found.append(loaded.problem("schema", f"{breadcrumb(path)}: {message}", path))
        broken.add(path)
    for path, name in required:
        if path + (name,) in suggested:
            continue
        where = f"{breadcrumb(path)}: " if path else ""
        found.append(loaded.problem("schema", f"{where}the required key {name!r} is missing", path))
    return found, broken


def _repeated_items(loaded: LoadedYaml, path: Path, items: list[Any]) -> list[tuple[int, Problem]]:
    first: dict[str, int] = {}
    found = []
    for index, item in enumerate(items):
        marker = json.dumps(item, sort_keys=True)
        if marker not in first:
            first[marker] = index
            continue
        line, _ = loaded.locate(path + (first[marker],))
        message = (
            f"{breadcrumb(path)}: {item!r} is listed twice (first at line {line}); say it once"
        )
        found.append((index, loaded.problem("schema", message, path + (index,))))
    return found


def _value_message(loaded: LoadedYaml, path: Path, error: ValidationError) -> str:
    validator, expected, value = error.validator, error.validator_value, error.instance
    written = loaded.written(path)
    key = next((step for step in reversed(path) if isinstance(step, str)), "")
    if validator == "type":
        wanted = expected if isinstance(expected, list) else [expected]
        return _type_message(wanted, value, written, key, path)
    if validator == "const":
        shown = written if written is not None else json.dumps(value)
        return f"{shown} is not supported; write {key}: {json.dumps(expected)}"
    if validator == "enum":
        return f"{value!r} is not one of {', '.join(map(repr, expected))}"
    if validator == "minimum":
        return f"{value} is below the minimum of {expected}"
    if validator == "maximum":
        return f"{value} is over the maximum of {expected}"
    if validator == "minLength":
        return "must not be empty"
    if validator == "maxLength":
        return f"is {len(value)} characters long, over the limit of {expected}"
    if validator == "minItems":
        return f"needs at least {expected} entries"
    if validator == "pattern":
        if key == "extension":
            return f"{value!r} is not an extension (1-15 digits)"
        if "dids" in path:
            return f"{value!r} is not a DID (digits, e.g. 12094555948)"
        if key == "number":
            return f"{value!r} is not an auto attendant number (a positive whole number)"
        return f"{value!r} does not match the expected format"
    return str(error.message)


def _type_message(wanted: list[str], value: Any, written: str | None, key: str, path: Path) -> str:
    shown = written if written is not None else value
    # Quoting helps only where text is wanted: an auto attendant number takes "1" as well as 1,
    # but 1.0 or true quoted is still no whole number, so those are told so below.
    if "string" in wanted and "integer" not in wanted and isinstance(value, (bool, int, float)):
        how = (
            f"the boolean {str(value).lower()}"
            if isinstance(value, bool)
            else f"the number {value!r}"
        )
        return (
            f"{shown} is read by YAML as {how}, not as text; to mean the text, quote it: "
            f"{key}: {json.dumps(str(shown), ensure_ascii=False)}"
        )
    if value is None:
        if "array" in wanted:
            return f"is empty; write {key}: [] or leave the key out"
        return "is empty; write a value after the ':'"
    if "array" in wanted and not isinstance(value, (list, dict)):
        return f"a list is wanted, not one value; write {key}: [{_yaml_scalar(str(shown))}]"
    if "array" in wanted:
        return "a list is wanted, not a mapping: each entry starts with '- '"
    if "object" in wanted:
        what = {"extensions": "an extension", "auto_attendants": "an auto attendant"}.get(
            str(path[-2]) if len(path) > 1 else "", ""
        )
        if what:
            return f"{what} is a mapping (extension:, name:, product: ...), not {_kind(value)}"
        return f"a mapping (key: value lines) is wanted, not {_kind(value)}"
    if "integer" in wanted:
        if isinstance(value, bool):
            return (f"{shown} is read by YAML as the boolean {str(value).lower()}; "
                    "a whole number is wanted")
        if isinstance(value, float):
            return f"{shown} is not a whole number"
        if isinstance(value, str) and value.strip().isdigit():
            return f"a number is wanted: write {key}: {value.strip()} without quotes"
        return f"a whole number is wanted, not {_kind(value)} {value!r}"
    if "boolean" in wanted:
        return f"write true or false (without quotes), not {_kind(value)} {shown!r}"
    if "string" in wanted:
        return f"text is wanted, not {_kind(value)}"
    return f"{_kind(value)} is not allowed here (wanted: {' or '.join(wanted)})"
