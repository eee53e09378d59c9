"""The desired state a customer spec describes, built from every value that could be read.

A value the schema check found broken is left out, and only the checks that need it are lost:
an entry whose extension cannot be read is skipped, a broken name or list is marked
``unreadable`` so that the plan neither renames nor removes anything because of it. On the way
the duplicates the schema cannot see are found: an extension or number twice, a DID twice in one
list or on two accounts, a DID that is not 7-15 digits once normalised.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
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
    entries = _Entries(loaded, broken, customer_id, errors, warnings)
    for section in _SECTIONS:
        entries.read_section(*section)
    accounts = _one_account_per_did(loaded, entries.accounts, errors)
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
        unplaced=tuple(entries.unplaced),
    )
    return spec, errors, warnings


class _Entries:
    """The entries of a spec's sections, read into desired accounts; problems on the way."""

    def __init__(
        self,
        loaded: LoadedYaml,
        broken: set[Path],
        customer_id: int | None,
        errors: list[Problem],
        warnings: list[Problem],
    ) -> None:
        self.loaded = loaded
        self.broken = broken
        self.customer_id = customer_id
        self.errors = errors
        self.warnings = warnings
        self.accounts: list[DesiredAccount] = []
        # Entries whose account cannot be known: their DIDs are still checked against the pool.
        self.unplaced: list[DesiredAccount] = []

    def read_section(self, section: str, kind: str, key_field: str, duplicate_code: str) -> None:
        loaded, broken = self.loaded, self.broken
        entries = loaded.data.get(section)
        if _is_broken(broken, (section,)) or not isinstance(entries, list):
            return
        seen: dict[str, int] = {}
        for index, entry in enumerate(entries):
            path = (section, index)
            if broken and (_is_broken(broken, path + (key_field,)) or not isinstance(entry, dict)):
                # Which account this entry means cannot be known; its DIDs are checked still.
                if isinstance(entry, dict):
                    self.add_unplaced(entry, path, kind)
                continue
            key = str(entry[key_field])
            if not (_EXTENSION if kind == "extension" else _NUMBER).fullmatch(key):
                # The schema's pattern lets "7\n" through ($ matches before a final newline).
                what = (
                    "an extension (1-15 digits)" if kind == "extension"
                    else "a positive whole number"
                )
                where = path + (key_field,)
                self.errors.append(
                    loaded.problem("schema", f"{breadcrumb(where)}: {key!r} is not {what}", where)
                )
                self.add_unplaced(entry, path, kind)
                continue
            if key in seen:
                label = "extension" if kind == "extension" else "auto attendant number"
                first_line, _ = loaded.locate((section, seen[key], key_field))
                self.errors.append(
                    loaded.problem(
                        duplicate_code,
                        f"{label} {key} is listed twice (first at line {first_line})",
                        path + (key_field,),
                    )
                )
                continue
            seen[key] = index
            self.accounts.append(_desired_account(
                loaded, broken, entry, path, kind, key, self.customer_id, self.errors, self.warnings
            ))

    def add_unplaced(self, entry: dict[str, Any], path: Path, kind: str) -> None:
        self.unplaced.append(
            _unplaced(self.loaded, self.broken, entry, path, kind, self.errors, self.warnings)
        )


def _unplaced(
    loaded: LoadedYaml,
    broken: set[Path],
    entry: dict[str, Any],
    path: Path,
    kind: str,
    errors: list[Problem],
    warnings: list[Problem],
) -> DesiredAccount:
    """An entry whose account cannot be known, read for the checks that do not need it."""
    # Any key builds the entry (every value is checked as in a spec with errors); no account ID.
    read = _desired_account(loaded, broken or {()}, entry, path, kind, "0", None, errors, warnings)
    return replace(read, id="")


def _one_account_per_did(
    loaded: LoadedYaml, accounts: list[DesiredAccount], errors: list[Problem]
) -> list[DesiredAccount]:
    """A DID given to two accounts is a did_duplicate at the second; the first keeps it."""
    first: dict[str, tuple[int, int]] = {}  # DID -> (account, DID) positions of its first use
    written = list(accounts)  # the positions above are in these, before any DID is dropped
    for number, account in enumerate(written):
        dropped: set[int] = set()
        for index, did in enumerate(account.dids):
            holder, at = first.setdefault(did, (number, index))
            if holder == number:
                continue
            dropped.add(index)
            line, _ = loaded.locate(written[holder].did_path(at))
            errors.append(
                loaded.problem(
                    "did_duplicate",
                    f"DID {did} is given to both {written[holder].id} and {account.id} "
                    f"(first at line {line})",
                    account.did_path(index),
                )
            )
        if dropped:
            kept = [i for i in range(len(account.dids)) if i not in dropped]
            accounts[number] = replace(
                account,
                dids=tuple(account.dids[i] for i in kept),
                did_at=tuple(account.did_at[i] if account.did_at else i for i in kept),
                unreadable=account.unreadable | {"dids"},
            )
    return accounts


_NOTHING: frozenset[str] = frozenset()
_NONE: frozenset[int] = frozenset()
_DIDS: frozenset[str] = frozenset({"dids"})


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
    """One entry's desired account. Without schema errors (``broken`` empty, the common case)
    every value has its schema type, and the checks of what is broken are skipped."""
    if customer_id is None:
        # Nothing is planned from such a spec: its messages name the entry, not an account ID.
        account_id = f"extension {key}" if kind == "extension" else f"auto attendant {key}"
    elif kind == "extension":
        account_id = extension_account_id(customer_id, key)
    else:
        account_id = auto_attendant_account_id(customer_id, int(key))
    if broken:
        return _partly_read_account(loaded, broken, entry, path, kind, account_id, errors, warnings)
    written = entry.get("dids") or ()
    dids, did_at = _dids(loaded, written, _NONE, path, kind, errors, warnings)
    complete = len(did_at) == len(written)
    return DesiredAccount(
        id=account_id,
        kind=kind,  # type: ignore[arg-type]
        name=entry["name"],
        product=entry["product"],
        addons=tuple(entry.get("addons") or ()),
        dids=dids,
        blocked=entry.get("blocked"),
        path=path,
        unreadable=_NOTHING if complete else _DIDS,
        did_at=() if complete else did_at,
    )


def _partly_read_account(
    loaded: LoadedYaml,
    broken: set[Path],
    entry: dict[str, Any],
    path: Path,
    kind: str,
    account_id: str,
    errors: list[Problem],
    warnings: list[Problem],
) -> DesiredAccount:
    """The entry's account in a spec with schema errors: each value is checked before it is
    used, and what cannot be read is left out and named in ``unreadable``."""
    unreadable: set[str] = set()
    written_dids, skip_dids = _readable_list(entry, "dids", broken, path, unreadable)
    written_addons, skip_addons = _readable_list(entry, "addons", broken, path, unreadable)
    product = entry.get("product")
    name: Any = entry.get("name")
    blocked = entry.get("blocked")
    if not isinstance(name, str) or _is_broken(broken, path + ("name",)):
        name = ""
        unreadable.add("name")
    if not isinstance(product, str) or _is_broken(broken, path + ("product",)):
        product = None
    if not isinstance(blocked, bool) or _is_broken(broken, path + ("blocked",)):
        blocked = None
    dids, did_at = _dids(loaded, written_dids, skip_dids, path, kind, errors, warnings)
    complete = len(did_at) == len(written_dids)
    if not complete:
        unreadable.add("dids")
    if skip_addons:
        unreadable.add("addons")
        addon_at = tuple(i for i in range(len(written_addons)) if i not in skip_addons)
        addons = tuple(written_addons[i] for i in addon_at)
    else:
        addon_at, addons = (), tuple(written_addons)
    return DesiredAccount(
        id=account_id,
        kind=kind,  # type: ignore[arg-type]
        name=name,
        product=product,
        addons=addons,
        dids=dids,
        blocked=blocked,
        path=path,
        unreadable=frozenset(unreadable) if unreadable else _NOTHING,
        # Positions are kept only where some item was left out: else a DID's index is its place.
        did_at=() if complete else did_at,
        addon_at=addon_at,
    )


def _readable_list(
    entry: dict[str, Any], key: str, broken: set[Path], path: Path, unreadable: set[str]
) -> tuple[Any, set[int]]:
    """An entry's list of text items in a spec with schema errors, and the indexes of the items
    that cannot be read; a list that cannot be read at all is empty and named in ``unreadable``."""
    written = entry.get(key, [])  # left out, a list is empty, as in a spec without errors
    if _is_broken(broken, path + (key,)) or not isinstance(written, list):
        written = []
        unreadable.add(key)
    skip = {i for i, item in enumerate(written)
            if not isinstance(item, str) or _is_broken(broken, path + (key, i))}
    return written, skip


def _dids(
    loaded: LoadedYaml,
    written_dids: Any,
    skip: AbstractSet[int],
    path: Path,
    kind: str,
    errors: list[Problem],
    warnings: list[Problem],
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The DIDs of one entry, normalised, and where each was written; problems on the way."""
    dids: list[str] = []
    did_at: list[int] = []
    first_index: dict[str, int] = {}
    for did_index, written in enumerate(written_dids):
        if skip and did_index in skip:
            continue
        did = normalise_did(written)
        if not _DID.fullmatch(did):
            did_path = path + ("dids", did_index)
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
                    path + ("dids", did_index),
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
                    path + ("dids", did_index),
                )
            )
        dids.append(did)
    return tuple(dids), tuple(did_at)
