"""Plan and apply agree on every quantity verdict.

The plan reports ``quantity_exceeded`` as an error when a spec makes a product's use go over the
customer's agreement; apply refuses a saved plan whose changes do that. Both are one rule
(reconciler/rules.py), and this property holds them to it: over generated catalogues,
agreements (0 = unlimited), billing states and specs, the products the plan refuses for quantity
are exactly the products apply's bounds check refuses the plan's changes for.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reconciler.apply import out_of_bounds
from reconciler.diff import plan_customer
from reconciler.model import Account, Catalogue, Customer, CustomerState, Product
from reconciler.spec import load_spec

CUSTOMER = 100
NAMES = ("Alpha", "Beta", "Gamma", "Delta", "Epsilon")
NUMBERS = tuple(range(1, 7))
# A product a spec may name that billing lacks.
UNKNOWN = "Zeta"


@st.composite
def catalogues(draw: st.DrawFn) -> Catalogue:
    count = draw(st.integers(min_value=1, max_value=len(NAMES)))
    types = draw(st.lists(st.sampled_from(("main", "addon")), min_size=count, max_size=count))
    return Catalogue(tuple(Product(i + 1, NAMES[i], t) for i, t in enumerate(types)))


@st.composite
def accounts(draw: st.DrawFn, names: list[str], account_id: str) -> Account:
    return Account(
        account_id,
        CUSTOMER,
        f"User {account_id}",
        product=draw(st.sampled_from([None, *names])),
        addons=tuple(draw(st.lists(st.sampled_from(names), unique=True, max_size=3))),
        blocked_by=draw(st.sampled_from((None, None, "customer", "admin"))),
        status=draw(st.sampled_from(("open", "open", "open", "terminated"))),
    )


@st.composite
def states(draw: st.DrawFn) -> CustomerState:
    catalogue = draw(catalogues())
    names = catalogue.names()
    agreed = draw(st.lists(st.sampled_from(names), unique=True, min_size=1))
    # Small quantities, so that a spec often goes over one; 0 is unlimited.
    agreement = tuple(sorted((n, draw(st.sampled_from((0, 1, 1, 2, 3)))) for n in agreed))
    customer = Customer(CUSTOMER, "Acme", draw(st.booleans()), agreement, frozenset())
    numbers = draw(st.lists(st.sampled_from(NUMBERS), unique=True, max_size=5))
    held = [draw(accounts(names, f"ph{CUSTOMER}x{n}")) for n in numbers]
    # An account the reconciler does not manage: never changed, but its products count.
    if draw(st.booleans()):
        held.append(draw(accounts(names, "reception-desk")))
    return CustomerState(customer, tuple(held), catalogue)


@st.composite
def specs(draw: st.DrawFn, state: CustomerState) -> str:
    names = [*state.catalogue.names(), UNKNOWN]
    lines = ["version: 1", f"customer: {{id: {CUSTOMER}, name: Acme}}",
             f"prune: {str(draw(st.booleans())).lower()}"]
    numbers = draw(st.lists(st.sampled_from(NUMBERS), unique=True, max_size=5))
    lines.append("extensions:" if numbers else "extensions: []")
    for n in numbers:
        product = draw(st.sampled_from(names))
        addons = draw(st.lists(st.sampled_from(names), unique=True, max_size=3))
        entry = f"  - {{extension: '{n}', name: User {n}, product: {product}"
        entry += f", addons: [{', '.join(addons)}]" if addons else ""
        lines.append(entry + "}")
    return "\n".join(lines) + "\n"


_PLAN_REFUSES = re.compile(r"'([A-Za-z]+)': the spec wants")
_APPLY_REFUSES = re.compile(r"'([A-Za-z]+)' would be used by \d+ accounts")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One spec file, written again for each example: a folder each would cost more than a plan."""
    return tmp_path_factory.mktemp("quantity-verdicts")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_plan_and_apply_refuse_the_same_products_for_quantity(
    folder: Path, data: st.DataObject
) -> None:
    state = data.draw(states())
    text = data.draw(specs(state))
    path = folder / "acme.yaml"
    path.write_text(text, encoding="utf-8")
    loaded = load_spec(str(path))
    assert loaded.spec is not None, loaded.errors
    plan = plan_customer(loaded, state)
    planned = {
        m.group(1) for p in plan.errors if p.code == "quantity_exceeded"
        if (m := _PLAN_REFUSES.match(p.message))
    }
    assert len(planned) == sum(p.code == "quantity_exceeded" for p in plan.errors)
    refused = {m.group(1) for line in out_of_bounds(plan.changes, state)
               if (m := _APPLY_REFUSES.match(line))}
    event("refused for quantity" if planned else "within the agreement")
    assert planned == refused, (text, state, [c.to_dict() for c in plan.changes])
