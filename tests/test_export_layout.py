"""An exported spec is already in fmt's layout: export writes it directly, fmt defines it.

Export no longer passes its text through fmt's round trip (about 10 ms per extension), so this
holds the two to one layout over generated customers: names of any text, add-ons, DIDs, blocks,
extensions and auto attendants.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.export import export_spec
from reconciler.fmt import format_text
from reconciler.model import Account, Catalogue, Customer, CustomerState, Product
from reconciler.spec import load_spec

CATALOGUE = Catalogue((
    Product(1, "Cloud PBX service", "main"),
    Product(2, "Call recording", "addon"),
    Product(3, "yes", "addon"),
))
# Names as billing may hold them: any printable text, YAML's special words and characters.
NAMES = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
            max_size=30).filter(lambda s: s.strip() == s and s.strip()),
    st.sampled_from(["No", "yes", "null", "~", "0755", "1e3", "a: b", "#x", "x #y", "- d", "[x]",
                     "{y}", "@home", "*star", "&a", "!bang", "%p", '"q"', "'s'", "|", ">", "?",
                     "Zoë O'Brien", "—", "a\tb"]),
)


@st.composite
def customers(draw: st.DrawFn) -> CustomerState:
    count = draw(st.integers(min_value=0, max_value=6))
    extensions = draw(st.lists(st.from_regex(r"[0-9]{1,6}", fullmatch=True), min_size=count,
                               max_size=count, unique=True))
    attendants = draw(st.lists(st.integers(1, 20), max_size=3, unique=True))
    keys = [f"x{e}" for e in extensions] + [f"aa{n}" for n in attendants]
    accounts = []
    for index, key in enumerate(keys):
        accounts.append(Account(
            f"ph46170{key}", 46170, draw(NAMES), "Cloud PBX service",
            tuple(draw(st.lists(st.sampled_from(["Call recording", "yes"]), max_size=2,
                                unique=True))),
            tuple(f"1555{index:03}{n:04}" for n in range(draw(st.integers(0, 3)))),
            blocked_by=draw(st.sampled_from([None, "customer", "admin"])),
        ))
    customer = Customer(46170, draw(NAMES), True, (), frozenset())
    return CustomerState(customer, tuple(accounts), CATALOGUE)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=customers())
def test_an_export_is_a_fixed_point_of_fmt_and_reads_back_as_billing_holds_it(
    state: CustomerState, tmp_path: Path
) -> None:
    text = export_spec(state, "# yaml-language-server: $schema=../schemas/customer.schema.json\n")
    assert format_text(text, "x.yaml").text == text
    spec = tmp_path / "s.yaml"
    spec.write_text(text, encoding="utf-8")
    loaded = load_spec(str(spec))
    assert loaded.spec is not None, loaded.errors
    by_id = {a.id: a for a in loaded.spec.accounts}
    for account in state.accounts:
        read = by_id[account.id]
        assert (read.name, read.addons, read.dids) == (account.name, account.addons, account.dids)
        assert bool(read.blocked) == (account.blocked_by is not None)
    assert loaded.spec.customer_name == state.customer.name
