"""The vocabulary of a plan: one frozen class per kind of change, closed and typed.

Each class knows its op name (the ``op`` of the plan's JSON form, schemas/plan.schema.json),
its rank in a plan's fixed order, its JSON fields, what it assigns or frees (a product use, a
DID, a block), and whether it needs the customer's self-care permission or counts as drastic.
``Change`` is the union of them all: code that must handle every kind matches on the class and
ends with ``assert_never``, so adding a kind is one new class plus the places mypy then names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

from reconciler.model import Kind, ProductType


@dataclass(frozen=True, slots=True)
class ProductUse:
    """A product put on (or taken off) an account, as its main product or as an add-on."""

    product: str
    type: ProductType


@dataclass(frozen=True, slots=True)
class _Base:
    account: str

    # The op's name in the plan's JSON form, its rank in a plan's order (removals first, so an
    # assignment never waits on a use the same plan frees), and its symbol in a rendered plan.
    op: ClassVar[str]
    rank: ClassVar[int]
    symbol: ClassVar[Literal["+", "-", "~"]]
    # Drastic changes count towards the unsafe verdict (reconciler/plan.py).
    drastic: ClassVar[bool] = False

    @property
    def detail(self) -> str:
        """What orders two changes of one op on one account (a DID, a product)."""
        return ""

    def sort_key(self) -> tuple[int, str, str]:
        return (self.rank, self.account, self.detail)

    @property
    def assigns(self) -> tuple[ProductUse, ...]:
        """Product uses this change newly puts on its account."""
        return ()

    @property
    def frees(self) -> tuple[ProductUse, ...]:
        """Product uses this change takes off its account (a termination frees them all)."""
        return ()

    @property
    def assigns_did(self) -> str | None:
        return None

    @property
    def frees_did(self) -> str | None:
        return None

    @property
    def sets_block(self) -> bool | None:
        """True: the account ends blocked; False: unblocked; None: its block is not touched."""
        return None

    @property
    def needs_self_care_block(self) -> bool:
        """Whether the customer's self-care role must allow blocking for this change."""
        return self.sets_block is not None

    def fields(self) -> dict[str, Any]:
        """The op's own JSON fields, in the schema's order."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "account": self.account, **self.fields()}


@dataclass(frozen=True, slots=True)
class RemoveAlias(_Base):
    did: str
    op: ClassVar[str] = "remove_alias"
    rank: ClassVar[int] = 0
    symbol: ClassVar[Literal["+", "-", "~"]] = "-"

    @property
    def detail(self) -> str:
        return self.did

    @property
    def frees_did(self) -> str | None:
        return self.did

    def fields(self) -> dict[str, Any]:
        return {"did": self.did}


@dataclass(frozen=True, slots=True)
class RemoveAddon(_Base):
    product: str
    op: ClassVar[str] = "remove_addon"
    rank: ClassVar[int] = 1
    symbol: ClassVar[Literal["+", "-", "~"]] = "-"

    @property
    def detail(self) -> str:
        return self.product

    @property
    def frees(self) -> tuple[ProductUse, ...]:
        return (ProductUse(self.product, "addon"),)

    def fields(self) -> dict[str, Any]:
        return {"product": self.product}


@dataclass(frozen=True, slots=True)
class TerminateAccount(_Base):
    op: ClassVar[str] = "terminate_account"
    rank: ClassVar[int] = 2
    symbol: ClassVar[Literal["+", "-", "~"]] = "-"
    drastic: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class SetProduct(_Base):
    from_: str | None
    to: str
    op: ClassVar[str] = "set_product"
    rank: ClassVar[int] = 3
    symbol: ClassVar[Literal["+", "-", "~"]] = "~"

    @property
    def assigns(self) -> tuple[ProductUse, ...]:
        return (ProductUse(self.to, "main"),)

    @property
    def frees(self) -> tuple[ProductUse, ...]:
        return () if self.from_ is None else (ProductUse(self.from_, "main"),)

    def fields(self) -> dict[str, Any]:
        return {"from": self.from_, "to": self.to}


@dataclass(frozen=True, slots=True)
class SetName(_Base):
    from_: str | None
    to: str
    op: ClassVar[str] = "set_name"
    rank: ClassVar[int] = 4
    symbol: ClassVar[Literal["+", "-", "~"]] = "~"

    def fields(self) -> dict[str, Any]:
        return {"from": self.from_, "to": self.to}


@dataclass(frozen=True, slots=True)
class Unblock(_Base):
    op: ClassVar[str] = "unblock"
    rank: ClassVar[int] = 5
    symbol: ClassVar[Literal["+", "-", "~"]] = "~"

    @property
    def sets_block(self) -> bool | None:
        return False


@dataclass(frozen=True, slots=True)
class Block(_Base):
    op: ClassVar[str] = "block"
    rank: ClassVar[int] = 6
    symbol: ClassVar[Literal["+", "-", "~"]] = "~"
    drastic: ClassVar[bool] = True

    @property
    def sets_block(self) -> bool | None:
        return True


@dataclass(frozen=True, slots=True)
class CreateAccount(_Base):
    kind: Kind
    name: str
    product: str | None  # None only in the plan of a spec with errors, which apply never runs
    addons: tuple[str, ...] = ()
    blocked: bool = False
    op: ClassVar[str] = "create_account"
    rank: ClassVar[int] = 7
    symbol: ClassVar[Literal["+", "-", "~"]] = "+"

    @property
    def assigns(self) -> tuple[ProductUse, ...]:
        main = () if self.product is None else (ProductUse(self.product, "main"),)
        return main + tuple(ProductUse(addon, "addon") for addon in self.addons)

    @property
    def sets_block(self) -> bool | None:
        # A new account is created unblocked unless asked; only a block needs the permission.
        return True if self.blocked else None

    def fields(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "product": self.product,
            "addons": list(self.addons),
            "blocked": self.blocked,
        }


@dataclass(frozen=True, slots=True)
class AddAddon(_Base):
    product: str
    op: ClassVar[str] = "add_addon"
    rank: ClassVar[int] = 8
    symbol: ClassVar[Literal["+", "-", "~"]] = "+"

    @property
    def detail(self) -> str:
        return self.product

    @property
    def assigns(self) -> tuple[ProductUse, ...]:
        return (ProductUse(self.product, "addon"),)

    def fields(self) -> dict[str, Any]:
        return {"product": self.product}


@dataclass(frozen=True, slots=True)
class AddAlias(_Base):
    did: str
    op: ClassVar[str] = "add_alias"
    rank: ClassVar[int] = 9
    symbol: ClassVar[Literal["+", "-", "~"]] = "+"

    @property
    def detail(self) -> str:
        return self.did

    @property
    def assigns_did(self) -> str | None:
        return self.did

    def fields(self) -> dict[str, Any]:
        return {"did": self.did}


Change: TypeAlias = (
    RemoveAlias | RemoveAddon | TerminateAccount | SetProduct | SetName | Unblock | Block
    | CreateAccount | AddAddon | AddAlias
)

CHANGE_TYPES: tuple[type[Change], ...] = (
    RemoveAlias, RemoveAddon, TerminateAccount, SetProduct, SetName, Unblock, Block,
    CreateAccount, AddAddon, AddAlias,
)
BY_OP: dict[str, type[Change]] = {kind.op: kind for kind in CHANGE_TYPES}
# The op names in plan order.
OP_ORDER: tuple[str, ...] = tuple(kind.op for kind in sorted(CHANGE_TYPES, key=lambda k: k.rank))
SYMBOL: dict[str, str] = {kind.op: kind.symbol for kind in CHANGE_TYPES}


def sort_key(item: Change) -> tuple[int, str, str]:
    """A plan's order: by rank, then account, then DID or product."""
    return item.sort_key()


def change_from_dict(data: dict[str, Any]) -> Change:
    """The change of a plan's JSON form (already checked against the schema).

    Raises KeyError for an op or a field the vocabulary lacks.
    """
    kind = BY_OP[data["op"]]
    values: dict[str, Any] = {
        name: tuple(data[key]) if isinstance(data[key], list) else data[key]
        for name, key in _JSON_KEYS[kind]
    }
    return kind(account=data["account"], **values)


# (attribute, JSON key) of each kind's own fields: "from" is a keyword in Python, so from_.
_JSON_KEYS: dict[type[Change], tuple[tuple[str, str], ...]] = {
    kind: tuple(
        (f.name, f.name.rstrip("_")) for f in dataclasses.fields(kind) if f.name != "account"
    )
    for kind in CHANGE_TYPES
}
