"""The desired state a customer spec describes, built from every value that could be read.

A value the schema check found broken is left out, and only the checks that need it are lost:
an entry whose extension cannot be read is skipped, a broken name or list is marked
``unreadable`` so that the plan neither renames nor removes anything because of it. On the way
the duplicates the schema cannot see are found: an extension or number twice, a DID twice in one
list or on two accounts, a DID that is not 7-15 digits once normalised.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from reconciler.messages import breadcrumb
from reconciler.model import (
    CustomerSpec,
    DesiredAccount,
    Path,
    Problem,
    auto_attendant_account_id,
    extension_account_id,
)
from reconciler.yamlload import LoadedYaml

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


def _is_broken(broken: set[Path], path: Path) -> bool:
    """Is the value at ``path``, or anything it sits in, broken?"""
    return any(path[:length] in broken for length in range(1, len(path) + 1)) if broken else False


_SECTIONS = (
    ("extensions", "extension", "extension", "duplicate_extension"),
    ("auto_attendants", "auto_attendant", "number", "duplicate_auto_attendant"),
)


def desired_state(
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
