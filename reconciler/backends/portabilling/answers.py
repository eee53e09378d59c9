"""Reading what PortaBilling answered: the shapes the client accepts, and words for the rest.

An answer that is not what the wire contract describes (HTML from a proxy, truncated JSON, a list
where an object belongs) becomes a ``MalformedAnswer`` naming the method and what came back,
never the body itself (it may echo parameters).
"""

from __future__ import annotations

from typing import Any

import requests

from reconciler.backends.portabilling.errors import MalformedAnswer

NOT_JSON = object()


def shape(status: int, body: object, response: requests.Response) -> str:
    """What came back instead of a JSON object, in a few words (never the body itself)."""
    kind = (response.headers.get("Content-Type") or "no content type").split(";")[0]
    if body is NOT_JSON:
        what = f"a body that is not JSON ({kind})"
    else:
        what = f"a JSON {type(body).__name__} where an object was expected"
    prefix = "" if status == 200 else f"HTTP {status} with "
    hint = (
        "; is this the address of a PortaBilling server's JSON API?"
        if status in (301, 302, 404, 405) or (body is NOT_JSON and "html" in kind)
        else ""
    )
    return f"{prefix}{what}{hint}"


def objects_in(answer: dict[str, Any], key: str, method: str) -> list[dict[str, Any]]:
    """``answer[key]`` as a list of objects (absent or null: empty), or MalformedAnswer."""
    value = answer.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise MalformedAnswer(method, f"{key} that is not a list of objects")
    return value


def object_in(answer: dict[str, Any], key: str, method: str) -> dict[str, Any] | None:
    """``answer[key]`` as an object, None when absent, null or empty; else MalformedAnswer."""
    value = answer.get(key)
    if value in (None, {}, ""):
        return None
    if not isinstance(value, dict):
        raise MalformedAnswer(method, f"{key} that is not an object")
    return value


def total_of(answer: dict[str, Any], method: str) -> int | None:
    total = answer.get("total")
    if total is None:
        return None
    try:
        return int(total)
    except (TypeError, ValueError):
        raise MalformedAnswer(method, "a total that is not a number") from None
