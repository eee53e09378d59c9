"""A deterministic generator of customers, their spec files and a matching billing state.

``generate(customers=N, extensions=M, change_share=p, seed=s)`` describes N customers with M
extensions each, and a billing state that matches the specs except for a chosen share of the
accounts, where it differs in one of four ways:

- ``rename``: billing has another display name (plan: ``set_name``);
- ``addon``: the spec adds an add-on billing lacks, or drops one billing has
  (plan: ``add_addon`` / ``remove_addon``);
- ``did``: the spec wants another DID of the pool (plan: ``remove_alias`` of the old one,
  if any, and ``add_alias`` of the new one);
- ``new``: the account is not in billing yet (plan: ``create_account``, ``add_alias`` per DID).

Every difference is recorded as the changes a correct plan must contain (``Generated.expected``),
so tests and the benchmark check the plan against the generator's own record instead of
hard-coded numbers. The same arguments always give the same files and state.

Use from tests: ``generate(...)``, then ``write_specs(folder)`` and either ``write_state_file``
(for ``reconciler state load``) or ``SqliteBackend(url, create=True).load_state(g.state())``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.model import Account, Customer, Product
from reconciler.statefile import BillingState, state_to_dict

KINDS = ("rename", "addon", "did", "new")

SERVICE, PREMIUM, ATTENDANT = "Cloud PBX service", "Cloud PBX premium", "Auto attendant"
RECORDING, VOICEMAIL, CONFERENCE = "Call recording", "Voicemail to email", "Conference bridge"

PRODUCTS = (
    Product(1, SERVICE, "main"),
    Product(2, PREMIUM, "main"),
    Product(3, ATTENDANT, "main"),
    Product(4, RECORDING, "addon"),
    Product(5, VOICEMAIL, "addon"),
    Product(6, CONFERENCE, "addon"),
)

_FIRST = ("Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jonas",
          "Kira", "Liam", "Maya", "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara")
_LAST = ("Adler", "Brown", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Horvat", "Ivanova",
         "Jensen", "Kowalski", "Lopez", "Muller", "Novak", "Olsen", "Petrov", "Rossi", "Silva")

FIRST_CUSTOMER_ID = 10_000


@dataclass(frozen=True)
class Entry:
    """One extension as the spec wants it."""

    extension: str
    name: str
    product: str
    addons: tuple[str, ...]
    dids: tuple[str, ...]
    blocked: bool | None


@dataclass
class GeneratedCustomer:
    index: int
    id: int
    name: str
    block_extensions: bool
    agreement: tuple[tuple[str, int], ...]
    pool: tuple[str, ...]
    entries: list[Entry]
    accounts: list[Account]  # what billing holds for this customer
    expected: list[tuple[str, str]]  # (op, account) a correct plan contains
    differences: Counter[str] = field(default_factory=Counter)  # kind -> how many accounts

    @property
    def file_name(self) -> str:
        return f"c{self.id}.yaml"

    def spec_text(self) -> str:
        return spec_text(self)


@dataclass
class Generated:
    customers: list[GeneratedCustomer]
    seed: int
    change_share: float

    @property
    def expected(self) -> list[tuple[str, str]]:
        return [item for c in self.customers for item in c.expected]

    def expected_ops(self, customer_ids: Iterable[int] | None = None) -> Counter[str]:
        """How many changes of each op a correct plan has (for these customers, or all)."""
        wanted = None if customer_ids is None else set(customer_ids)
        return Counter(
            op for c in self.customers if wanted is None or c.id in wanted for op, _ in c.expected
        )

    @property
    def differences(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for c in self.customers:
            total.update(c.differences)
        return total

    @property
    def account_count(self) -> int:
        return sum(len(c.entries) for c in self.customers)

    def changed_customers(self) -> list[GeneratedCustomer]:
        return [c for c in self.customers if c.expected]

    def state(self, customer_ids: Iterable[int] | None = None) -> BillingState:
        """The billing state (of all customers, or only of ``customer_ids``)."""
        wanted = None if customer_ids is None else set(customer_ids)
        chosen = [c for c in self.customers if wanted is None or c.id in wanted]
        return BillingState(
            products=PRODUCTS,
            customers=tuple(
                Customer(c.id, c.name, c.block_extensions, c.agreement, frozenset(c.pool))
                for c in chosen
            ),
            accounts=tuple(a for c in chosen for a in c.accounts),
        )

    def write_specs(self, folder: str | Path,
                    customer_ids: Iterable[int] | None = None) -> list[Path]:
        """Write one spec file per customer (or per chosen customer); the paths, sorted."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        wanted = None if customer_ids is None else set(customer_ids)
        paths = []
        for customer in self.customers:
            if wanted is not None and customer.id not in wanted:
                continue
            path = folder / customer.file_name
            path.write_text(customer.spec_text(), encoding="utf-8")
            paths.append(path)
        return sorted(paths)

    def write_state_file(self, path: str | Path, customer_ids: Iterable[int] | None = None) -> Path:
        """The billing state file for ``reconciler state load``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(state_yaml(self.state(customer_ids)), encoding="utf-8")
        return path


def did_number(customer_index: int, number: int) -> str:
    """A 12-digit DID unique to the customer: 1, six digits of customer, five of number."""
    return f"1{customer_index:06d}{number:05d}"


def generate(
    customers: int,
    extensions: int,
    *,
    change_share: float = 0.0,
    seed: int = 0,
    accounts_in_billing: bool = True,
    changed_customers: Iterable[int] | None = None,
) -> Generated:
    """N customers × M extensions, billing matching the specs but for ``change_share`` of accounts.

    ``changed_customers`` (customer indexes, 0-based) confines the differences to those
    customers; the share is then of their accounts. ``accounts_in_billing=False`` gives a
    billing state with customers, agreements and DID pools but no accounts at all.
    """
    if not 0 <= change_share <= 1:
        raise ValueError("change_share is a share: 0 to 1")
    if extensions > 40_000:
        raise ValueError("at most 40,000 extensions per customer (DID numbering)")
    rng = random.Random(seed)
    result = Generated([], seed, change_share)
    for index in range(customers):
        result.customers.append(_base_customer(index, extensions, rng))
    scope = (
        list(range(customers))
        if changed_customers is None
        else sorted(set(changed_customers) & set(range(customers)))
    )
    candidates = [(ci, j) for ci in scope for j in range(extensions)]
    changed = (
        rng.sample(candidates, round(change_share * len(candidates))) if accounts_in_billing else []
    )
    by_account = {pair: rng.choice(KINDS) for pair in sorted(changed)}
    for customer in result.customers:
        _differ(customer, by_account, accounts_in_billing, rng)
    return result


def _base_customer(index: int, extensions: int, rng: random.Random) -> GeneratedCustomer:
    customer_id = FIRST_CUSTOMER_ID + index
    entries = []
    pool: list[str] = []
    for j in range(extensions):
        addons: tuple[str, ...] = ()
        if j % 3 == 0:
            addons += (RECORDING,)
        if j % 4 == 0:
            addons += (VOICEMAIL,)
        dids: tuple[str, ...] = ()
        if j % 5 != 4:
            dids += (did_number(index, 2 * j),)
        if j % 7 == 0:
            dids += (did_number(index, 2 * j + 1),)
        pool.extend(dids)
        entries.append(
            Entry(
                extension=str(100 + j),
                name=f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
                product=PREMIUM if j % 10 == 0 else SERVICE,
                addons=addons,
                dids=dids,
                blocked=True if j % 50 == 49 else None,
            )
        )
    # Quantities are generous (but not all unlimited) so the quantity rules run without biting.
    agreement = (
        (ATTENDANT, 1),
        (RECORDING, 0),
        (SERVICE, 0),
        (CONFERENCE, 2 * extensions + 10),
        (PREMIUM, 2 * extensions + 10),
        (VOICEMAIL, 0),
    )
    return GeneratedCustomer(
        index=index,
        id=customer_id,
        name=f"Customer {index:05d} Ltd",
        block_extensions=True,
        agreement=tuple(sorted(agreement)),
        pool=tuple(pool),
        entries=entries,
        accounts=[],
        expected=[],
    )


def _account_id(customer: GeneratedCustomer, entry: Entry) -> str:
    return f"ph{customer.id}x{entry.extension}"


def _differ(
    customer: GeneratedCustomer,
    kinds: dict[tuple[int, int], str],
    accounts_in_billing: bool,
    rng: random.Random,
) -> None:
    """Fill in billing's accounts and the expected changes, applying this customer's differences."""
    spare = 2 * len(customer.entries)  # DID numbers from here on are not used by the base specs
    pool = list(customer.pool)
    for j, entry in enumerate(customer.entries):
        account_id = _account_id(customer, entry)
        kind = kinds.get((customer.index, j)) if accounts_in_billing else "new"
        held = entry  # what billing holds, as an entry
        expected: list[tuple[str, str]] = []
        if kind == "rename":
            held = _replace(entry, name=entry.name + " (old)")
            expected.append(("set_name", account_id))
        elif kind == "addon":
            if rng.random() < 0.5:
                entry = _replace(entry, addons=entry.addons + (CONFERENCE,))
                expected.append(("add_addon", account_id))
            else:
                held = _replace(entry, addons=entry.addons + (CONFERENCE,))
                expected.append(("remove_addon", account_id))
        elif kind == "did":
            new = did_number(customer.index, spare)
            spare += 1
            pool.append(new)
            if entry.dids:
                expected.append(("remove_alias", account_id))
                entry = _replace(entry, dids=(new,) + entry.dids[1:])
            else:
                entry = _replace(entry, dids=(new,))
            expected.append(("add_alias", account_id))
        elif kind == "new":
            expected.append(("create_account", account_id))
            expected.extend(("add_alias", account_id) for _ in entry.dids)
        customer.entries[j] = entry
        if kind is not None:
            customer.differences[kind] += 1
        customer.expected.extend(expected)
        if kind != "new":
            customer.accounts.append(
                Account(
                    id=account_id,
                    customer=customer.id,
                    name=held.name,
                    product=held.product,
                    addons=tuple(sorted(held.addons)),
                    dids=tuple(sorted(held.dids)),
                    blocked_by="customer" if held.blocked else None,
                )
            )
    customer.pool = tuple(pool)
    customer.accounts.sort(key=lambda a: a.id)


def _replace(entry: Entry, **changes: object) -> Entry:
    from dataclasses import replace

    return replace(entry, **changes)  # type: ignore[arg-type]


# ---- text ----------------------------------------------------------------------------------------


def _quoted(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(text, ensure_ascii=False)


def spec_text(customer: GeneratedCustomer) -> str:
    lines = [
        "version: 1",
        "customer:",
        f"  id: {customer.id}",
        f"  name: {_quoted(customer.name)}",
        "extensions:",
    ]
    for entry in customer.entries:
        lines.append(f'  - extension: "{entry.extension}"')
        lines.append(f"    name: {_quoted(entry.name)}")
        lines.append(f"    product: {entry.product}")
        if entry.addons:
            lines.append(f"    addons: [{', '.join(entry.addons)}]")
        if entry.dids:
            # Odd customers write DIDs unquoted: both spellings must read as the same text.
            written = entry.dids if customer.index % 2 else [_quoted(d) for d in entry.dids]
            lines.append(f"    dids: [{', '.join(written)}]")
        if entry.blocked is not None:
            lines.append(f"    blocked: {'true' if entry.blocked else 'false'}")
    return "\n".join(lines) + "\n"


def state_yaml(state: BillingState) -> str:
    """The state file text, block-style YAML written directly (yaml.dump is slow at 100,000)."""
    return "".join(_state_lines(state_to_dict(state)))


def _state_lines(data: dict[str, object]) -> Iterator[str]:
    yield "products:\n"
    for product in data["products"]:  # type: ignore[attr-defined]
        name = _quoted(product["name"])
        yield f"  - {{id: {product['id']}, name: {name}, type: {product['type']}}}\n"
    yield "customers:\n"
    for customer in data["customers"]:  # type: ignore[attr-defined]
        yield f"  - id: {customer['id']}\n    name: {_quoted(customer['name'])}\n"
        blocking = str(customer["self_care"]["block_extensions"]).lower()
        yield f"    self_care: {{block_extensions: {blocking}}}\n"
        yield "    agreement:\n"
        for item in customer["agreement"]:
            yield f"      - {{product: {_quoted(item['product'])}, quantity: {item['quantity']}}}\n"
        yield f"    dids: [{', '.join(_quoted(d) for d in customer['dids'])}]\n"
    accounts = data["accounts"]
    if not accounts:
        yield "accounts: []\n"
        return
    yield "accounts:\n"
    for account in accounts:  # type: ignore[attr-defined]
        yield f"  - id: {account['id']}\n    customer: {account['customer']}\n"
        yield f"    name: {_quoted(account['name'])}\n    product: {_quoted(account['product'])}\n"
        yield f"    addons: [{', '.join(_quoted(a) for a in account['addons'])}]\n"
        yield f"    dids: [{', '.join(_quoted(d) for d in account['dids'])}]\n"
        if account.get("blocked_by"):
            yield f"    blocked_by: {account['blocked_by']}\n"
        yield f"    status: {account['status']}\n"
