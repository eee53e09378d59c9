"""The domain: products, agreements, accounts, the desired state of a spec and problems.

The changes of a plan are reconciler/changes.py.

Everything here is immutable; the plan is computed from these values without side effects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

ProductType = Literal["main", "addon"]
Kind = Literal["extension", "auto_attendant"]

OPEN = "open"
TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str
    type: ProductType


@dataclass(frozen=True)
class Catalogue:
    """The product catalogue, looked up by name (specs) and by id (backends)."""

    products: tuple[Product, ...]
    _by_name: dict[str, Product] = field(init=False, repr=False, compare=False)
    _by_id: dict[int, Product] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.products})
        object.__setattr__(self, "_by_id", {p.id: p for p in self.products})

    def by_name(self, name: str) -> Product | None:
        return self._by_name.get(name)

    def by_id(self, product_id: int) -> Product | None:
        return self._by_id.get(product_id)

    def names(self) -> list[str]:
        return [p.name for p in self.products]


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    name: str
    block_extensions: bool
    agreement: tuple[tuple[str, int], ...]  # (product name, quantity); 0 = unlimited
    dids: frozenset[str]
    # Why blocking is refused, when billing could not say (PortaBilling without
    # PORTABILLING_BLOCKING_ROLES): added to block_not_permitted. Not part of the fingerprint.
    block_note: str | None = None

    def quantity_for(self, product: str) -> int | None:
        """The agreed quantity of ``product`` (0 = unlimited), or None if the agreement lacks it."""
        for name, quantity in self.agreement:
            if name == product:
                return quantity
        return None


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    customer: int
    name: str
    product: str | None
    addons: tuple[str, ...] = ()
    dids: tuple[str, ...] = ()
    blocked_by: str | None = None  # "admin" | "customer" | None
    status: str = OPEN

    @property
    def is_open(self) -> bool:
        return self.status != TERMINATED

    @property
    def products_used(self) -> set[str]:
        used = set(self.addons)
        if self.product:
            used.add(self.product)
        return used


@dataclass(frozen=True, slots=True)
class CustomerState:
    """What billing holds for one customer: all the plan needs to know; what is fingerprinted."""

    customer: Customer
    accounts: tuple[Account, ...]
    catalogue: Catalogue
    # Account IDs that carry this customer's managed pattern but belong to another customer.
    foreign_ids: frozenset[str] = frozenset()
    # DIDs of this customer's pool held by another customer's account.
    foreign_dids: frozenset[str] = frozenset()


# ---- managed account IDs -------------------------------------------------------------------

# ASCII digits only and nothing after them: "ph100x٥" or "ph100x5\n" only look managed.
_MANAGED = re.compile(r"ph([0-9]+)(?:x([0-9]{1,15})|aa([1-9][0-9]*))")


def extension_account_id(customer_id: int, extension: str) -> str:
    return f"ph{customer_id}x{extension}"


def auto_attendant_account_id(customer_id: int, number: int) -> str:
    return f"ph{customer_id}aa{number}"


def managed_kind(account_id: str, customer_id: int) -> Kind | None:
    """The kind of a managed account of ``customer_id``; None when the ID is not managed by it."""
    match = _MANAGED.fullmatch(account_id)
    if match is None or match.group(1) != str(customer_id):
        return None
    return "extension" if match.group(2) is not None else "auto_attendant"


def managed_key(account_id: str) -> tuple[Kind, str] | None:
    """(kind, extension-or-number) of a managed-looking account ID, whatever its customer."""
    match = _MANAGED.fullmatch(account_id)
    if match is None:
        return None
    if match.group(2) is not None:
        return "extension", match.group(2)
    return "auto_attendant", match.group(3)


# ---- the desired state ------------------------------------------------------------------------

Path = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class DesiredAccount:
    """One extension or auto attendant of a spec, with the spec paths of its values."""

    id: str
    kind: Kind
    name: str
    product: str | None  # None only in a spec with errors, when the product could not be read
    addons: tuple[str, ...]
    dids: tuple[str, ...]
    blocked: bool | None
    path: Path  # e.g. ("extensions", 3)
    # Fields of a spec with errors whose value could not be read in full ("name", "addons",
    # "dids"): the plan neither removes nor renames anything on their account.
    unreadable: frozenset[str] = frozenset()
    # Where each DID and add-on was written in its list (a list may have lost broken items).
    did_at: tuple[int, ...] = ()
    addon_at: tuple[int, ...] = ()

    def did_path(self, index: int) -> Path:
        """The spec path of ``dids[index]`` as written in the file."""
        return self.path + ("dids", self.did_at[index] if self.did_at else index)

    def addon_path(self, index: int) -> Path:
        """The spec path of ``addons[index]`` as written in the file."""
        return self.path + ("addons", self.addon_at[index] if self.addon_at else index)


@dataclass(frozen=True, slots=True)
class CustomerSpec:
    file: str
    customer_id: int
    customer_name: str | None  # None only in a spec with errors, when the name could not be read
    prune: bool
    accounts: tuple[DesiredAccount, ...]
    # Entries of a spec with errors whose extension or number cannot be read: which account they
    # mean is unknown, but their DIDs are still checked against the pool (``id`` is empty).
    unplaced: tuple[DesiredAccount, ...] = ()


# ---- problems -----------------------------------------------------------------------------------


MAX_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __post_init__(self) -> None:
        # A message quotes the offending value; a 1 MB value must not make a 1 MB message.
        if len(self.message) > MAX_MESSAGE:
            cut = len(self.message) - MAX_MESSAGE
            cut_message = f"{self.message[:MAX_MESSAGE]}… ({cut} more characters)"
            object.__setattr__(self, "message", cut_message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        return cls(
            code=data["code"],
            message=data["message"],
            file=data.get("file"),
            line=data.get("line"),
            column=data.get("column"),
        )

    def sort_key(self) -> tuple[str, int, int]:
        """File, line, column: the order problems are reported in."""
        return (self.file or "", self.line or 0, self.column or 0)

    def where(self) -> str:
        if self.file is None:
            return ""
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}:{self.column or 1}"
