"""`reconciler adopt`: billing's changes written back into the spec, every other byte kept.

Each story changes billing the way an administrator would by hand, runs adopt, and checks the
whole file byte for byte against the original with only the expected lines changed; then a
plan must show no changes.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Billing, write

SPEC = """\
# yaml-language-server: $schema=../schemas/customer-spec.schema.json
# Acme's PBX: owned by the Acme IT team.
version: 1
customer:
  id: 100
  name: Acme   # must match billing
extensions:
  # Alice runs reception.
  - extension: "1"
    name: Alice          # reception
    product: Cloud PBX service
    addons: [Call recording]
    dids: ["15550000001"]
    blocked: false

  - extension: '3'
    name: 'Dan'
    product: "Cloud PBX service"
    dids:
      - 15550000003   # main line
auto_attendants:
  - number: 1
    name: Main menu
    product: Auto attendant
    dids: ["15550000002"]   # the published number
# end of file
"""

STATE: dict[str, Any] = {
    "products": [
        {"id": 1, "name": "Cloud PBX service", "type": "main"},
        {"id": 2, "name": "Auto attendant", "type": "main"},
        {"id": 3, "name": "Call recording", "type": "addon"},
        {"id": 4, "name": "Fax to email", "type": "addon"},
        {"id": 5, "name": "Hotdesk", "type": "main"},
    ],
    "customers": [
        {
            "id": 100,
            "name": "Acme",
            "self_care": {"block_extensions": True},
            "agreement": [
                {"product": "Cloud PBX service", "quantity": 0},
                {"product": "Auto attendant", "quantity": 1},
                {"product": "Call recording", "quantity": 0},
                {"product": "Fax to email", "quantity": 0},
                {"product": "Hotdesk", "quantity": 0},
            ],
            "dids": [f"1555000000{n}" for n in range(1, 10)],
        },
        {
            "id": 200,
            "name": "Beta",
            "self_care": {"block_extensions": False},
            "agreement": [{"product": "Cloud PBX service", "quantity": 0}],
            "dids": ["15550000201"],
        },
    ],
    "accounts": [
        {"id": "ph100x1", "customer": 100, "name": "Alice", "product": "Cloud PBX service",
         "addons": ["Call recording"], "dids": ["15550000001"]},
        {"id": "ph100x3", "customer": 100, "name": "Dan", "product": "Cloud PBX service",
         "dids": ["15550000003"]},
        {"id": "ph100aa1", "customer": 100, "name": "Main menu", "product": "Auto attendant",
         "dids": ["15550000002"]},
        {"id": "trunk-1", "customer": 100, "name": "Trunk", "product": "Cloud PBX service",
         "dids": ["15550000009"]},
        {"id": "ph200x1", "customer": 200, "name": "Carol", "product": "Cloud PBX service"},
    ],
}

BETA = """\
version: 1
customer: {id: 200, name: Beta}
extensions:
  - {extension: "1", name: Carol, product: Cloud PBX service}
"""


def _account(state: dict[str, Any], account_id: str) -> dict[str, Any]:
    return next(a for a in state["accounts"] if a["id"] == account_id)


def _load(billing: Billing, state: dict[str, Any]) -> None:
    path = write(billing.workdir / "state.yaml", yaml.safe_dump(state, sort_keys=False))
    billing.load(path)


@pytest.fixture
def acme(sqlite_billing: Billing) -> Billing:
    """Billing matching specs/acme.yaml (checked: the plan is empty), and the spec."""
    write(sqlite_billing.workdir / "own" / "acme.yaml", SPEC)
    _load(sqlite_billing, STATE)
    assert _plan_is_empty(sqlite_billing, "own/acme.yaml")
    return sqlite_billing


def _plan_is_empty(billing: Billing, *paths: str) -> bool:
    """No changes, no errors, and no managed account billing has that the spec lacks."""
    result = billing.cli("plan", *paths, "--detailed-exitcode", "--format", "json")
    plan = result.json
    not_in_spec = [w for c in plan["customers"] for w in c["warnings"]
                   if w["code"] == "not_in_spec"]
    return result.code == 0 and plan["summary"]["changes"] == 0 and not not_in_spec


def _drift(billing: Billing, change: Any) -> None:
    state = copy.deepcopy(STATE)
    change(state)
    _load(billing, state)


def _adopt(billing: Billing, *args: str) -> str:
    result = billing.cli("adopt", "own/acme.yaml", *args)
    assert result.code == 0, result
    return result.out


def _edited(*replacements: tuple[str, str]) -> str:
    """SPEC with whole lines replaced; each old line must occur exactly once."""
    text = SPEC
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


SPEC_PATH = Path("own/acme.yaml")


def _rename(state: dict[str, Any]) -> None:
    _account(state, "ph100x1")["name"] = "Alice Smith"


def _product(state: dict[str, Any]) -> None:
    _account(state, "ph100x3")["product"] = "Hotdesk"


def _addon_added(state: dict[str, Any]) -> None:
    _account(state, "ph100x1")["addons"] = ["Call recording", "Fax to email"]


def _addon_removed(state: dict[str, Any]) -> None:
    _account(state, "ph100x1")["addons"] = []


def _addon_added_where_none(state: dict[str, Any]) -> None:
    _account(state, "ph100x3")["addons"] = ["Fax to email"]


def _did_added(state: dict[str, Any]) -> None:
    _account(state, "ph100x3")["dids"] = ["15550000003", "15550000004"]


def _did_removed(state: dict[str, Any]) -> None:
    _account(state, "ph100aa1")["dids"] = []


def _did_moved(state: dict[str, Any]) -> None:
    _account(state, "ph100x1")["dids"] = []
    _account(state, "ph100x3")["dids"] = ["15550000001", "15550000003"]


def _blocked_by_customer(state: dict[str, Any]) -> None:
    _account(state, "ph100x1")["blocked_by"] = "customer"


def _blocked_by_admin(state: dict[str, Any]) -> None:
    _account(state, "ph100x1")["blocked_by"] = "admin"


def _created(state: dict[str, Any]) -> None:
    state["accounts"].append({"id": "ph100x5", "customer": 100, "name": "Eve O'Neil",
                              "product": "Cloud PBX service", "addons": ["Fax to email"],
                              "dids": ["15550000005"], "blocked_by": "customer"})


def _terminated(state: dict[str, Any]) -> None:
    _account(state, "ph100x3")["status"] = "terminated"


STORIES = {
    "rename": (_rename, [("    name: Alice          # reception\n",
                          "    name: Alice Smith          # reception\n")]),
    "product": (_product, [('    product: "Cloud PBX service"\n', '    product: "Hotdesk"\n')]),
    "addon-added": (_addon_added, [("    addons: [Call recording]\n",
                                    "    addons: [Call recording, Fax to email]\n")]),
    "addon-removed": (_addon_removed, [("    addons: [Call recording]\n", "    addons: []\n")]),
    "addon-added-where-none": (_addon_added_where_none, [(
        '    product: "Cloud PBX service"\n',
        '    product: "Cloud PBX service"\n    addons: [Fax to email]\n',
    )]),
    "did-added": (_did_added, [("      - 15550000003   # main line\n",
                                "      - 15550000003   # main line\n      - 15550000004\n")]),
    "did-removed": (_did_removed, [('    dids: ["15550000002"]   # the published number\n',
                                    "    dids: []   # the published number\n")]),
    "did-moved": (_did_moved, [('    dids: ["15550000001"]\n', "    dids: []\n"),
                               ("      - 15550000003   # main line\n",
                                "      - 15550000003   # main line\n      - 15550000001\n")]),
    "blocked-by-customer": (_blocked_by_customer,
                            [("    blocked: false\n", "    blocked: true\n")]),
    "blocked-by-admin": (_blocked_by_admin, [("    blocked: false\n", "    blocked: true\n")]),
    "created-in-billing": (_created, [(
        "      - 15550000003   # main line\n",
        ("      - 15550000003   # main line\n"
        '  - extension: "5"\n'
        '    name: "Eve O\'Neil"\n'
        "    product: Cloud PBX service\n"
        "    addons: [Fax to email]\n"
        '    dids: ["15550000005"]\n'
        "    blocked: true\n"),
    )]),
    "terminated-in-billing": (_terminated, [(
        ("\n  - extension: '3'\n    name: 'Dan'\n    product: \"Cloud PBX service\"\n"
         "    dids:\n      - 15550000003   # main line\n"),
        "\n",
    )]),
}


@pytest.mark.parametrize("story", list(STORIES))
def test_adopt_writes_billings_change_and_nothing_else(acme: Billing, story: str) -> None:
    change, replacements = STORIES[story]
    _drift(acme, change)
    assert not _plan_is_empty(acme, "own/acme.yaml")
    out = _adopt(acme)
    assert "1 of 1 spec file(s) rewritten" in out
    assert SPEC_PATH.read_bytes() == _edited(*replacements).encode()
    assert _plan_is_empty(acme, "own/acme.yaml")


def test_report_names_each_change(acme: Billing) -> None:
    _drift(acme, lambda s: (_rename(s), _did_moved(s), _created(s), _terminated(s)))
    out = _adopt(acme)
    assert "~ ph100x1: name 'Alice' -> 'Alice Smith'" in out
    assert "~ ph100x1: DIDs [15550000001] -> []" in out
    assert "+ ph100x5: added (created in billing)" in out
    assert "- ph100x3: removed (terminated in billing)" in out
    assert _plan_is_empty(acme, "own/acme.yaml")
    for comment in ("# Alice runs reception.", "# reception", "# the published number",
                    "# end of file"):
        assert comment in SPEC_PATH.read_text()


def test_no_drift_leaves_the_file_untouched(acme: Billing) -> None:
    before = os.stat(SPEC_PATH)
    out = _adopt(acme)
    assert "no drift, unchanged" in out and "0 of 1 spec file(s) rewritten" in out
    after = os.stat(SPEC_PATH)
    assert SPEC_PATH.read_bytes() == SPEC.encode()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)


@pytest.mark.parametrize(
    "broken",
    [
        SPEC.replace("    blocked: false\n", "    blocked: false\n    colour: red\n"),  # schema
        # customer_mismatch
        SPEC.replace("  name: Acme   # must match billing", "  name: Acme Corp"),
        SPEC.replace("id: 100", "id: 999"),  # unknown_customer
        SPEC.replace("version: 1\n", "version: 1\nversion: 1\n"),  # duplicate_key
    ],
    ids=["schema", "customer-mismatch", "unknown-customer", "duplicate-key"],
)
def test_a_spec_with_errors_is_left_alone_and_reported(acme: Billing, broken: str) -> None:
    write(SPEC_PATH, broken)
    _drift(acme, _rename)
    result = acme.cli("adopt", "own/")
    assert result.code == 1, result
    assert "left as it is" in result.out and "error[" in result.out
    assert SPEC_PATH.read_text() == broken


def test_two_files_for_one_customer_are_both_left_alone(acme: Billing) -> None:
    write("own/acme-copy.yaml", SPEC)
    _drift(acme, _rename)
    result = acme.cli("adopt", "own/")
    assert result.code == 1 and "duplicate_customer" in result.out, result
    assert SPEC_PATH.read_text() == SPEC and Path("own/acme-copy.yaml").read_text() == SPEC


def test_customer_option_adopts_only_that_customer(acme: Billing) -> None:
    write("own/beta.yaml", BETA)
    _drift(acme, lambda s: (_rename(s), _account(s, "ph200x1").update(name="Carol Jones")))
    result = acme.cli("adopt", "own/", "--customer", "200")
    assert result.code == 0, result
    assert SPEC_PATH.read_text() == SPEC
    assert Path("own/beta.yaml").read_text() == BETA.replace("name: Carol,", 'name: Carol Jones,')
    assert acme.cli("adopt", "own/", "--customer", "300").code == 1


def test_unmanaged_accounts_are_never_written(acme: Billing) -> None:
    _drift(acme, lambda s: (_created(s), s["accounts"].append(
        {"id": "sip-trunk-7", "customer": 100, "name": "Trunk 7", "product": "Cloud PBX service"})))
    _adopt(acme)
    text = SPEC_PATH.read_text()
    assert "ph100x5" not in text and '"5"' in text  # written as extension "5"
    assert "trunk" not in text.lower()


def test_markdown_body_lists_what_billing_changed(acme: Billing) -> None:
    _drift(acme, lambda s: (_rename(s), _created(s)))
    out = _adopt(acme, "--format", "markdown")
    assert out.startswith("## Billing changed customer 100 (Acme)")
    assert "| ~ | ph100x1 | name 'Alice' -&gt; 'Alice Smith' |" in out
    assert "| + | ph100x5 | added (created in billing): &quot;Eve O'Neil&quot;" in out


def test_sections_created_and_emptied(acme: Billing) -> None:
    # Billing lost every extension and gained a second auto attendant in a spec without one.
    def change(state: dict[str, Any]) -> None:
        for account_id in ("ph100x1", "ph100x3"):
            _account(state, account_id)["status"] = "terminated"
        state["customers"][0]["agreement"][1]["quantity"] = 2
        state["accounts"].append({"id": "ph100aa2", "customer": 100, "name": "After hours",
                                  "product": "Auto attendant"})

    _drift(acme, change)
    _adopt(acme)
    start, end = SPEC.index("  # Alice runs reception."), SPEC.index("auto_attendants:")
    expected = SPEC[:start].replace("extensions:\n", "extensions: []\n") + "\n" + SPEC[end:]
    expected = expected.replace(
        "# the published number\n",
        "# the published number\n  - number: 2\n    name: After hours\n    product: Auto "
        "attendant\n",
    )
    assert SPEC_PATH.read_text() == expected
    assert _plan_is_empty(acme, "own/acme.yaml")


def test_crlf_line_endings_are_kept(acme: Billing) -> None:
    SPEC_PATH.write_bytes(SPEC.replace("\n", "\r\n").encode())
    _drift(acme, _rename)
    _adopt(acme)
    expected = _edited(*STORIES["rename"][1]).replace("\n", "\r\n")
    assert SPEC_PATH.read_bytes() == expected.encode()


def test_adopt_on_both_backends(billing: Billing) -> None:
    write(billing.workdir / "own" / "acme.yaml", SPEC)
    _drift(billing, lambda s: (_rename(s), _did_moved(s), _created(s)))
    result = billing.cli("adopt", "own/")
    assert result.code == 0, result
    assert "1 of 1 spec file(s) rewritten" in result.out
    assert _plan_is_empty(billing, "own/")


def test_a_drifted_fleet_is_adopted_and_untouched_entries_keep_their_bytes(
    sqlite_billing: Billing,
) -> None:
    from tests.generate import generate

    fleet = generate(customers=6, extensions=25, change_share=0.25, seed=2)
    fleet.write_specs("fleet")
    sqlite_billing.load(fleet.write_state_file("state.yaml"))
    before = {path: path.read_text() for path in Path("fleet").iterdir()}
    result = sqlite_billing.cli("adopt", "fleet")
    assert result.code == 0, result
    assert f"{len(fleet.changed_customers())} of 6 spec file(s) rewritten" in result.out
    assert _plan_is_empty(sqlite_billing, "fleet")
    for customer in fleet.customers:
        path = Path("fleet") / customer.file_name
        text = path.read_text()
        drifted = {account for _, account in customer.expected}
        if not drifted:
            assert text == before[path]
            continue
        # Every entry billing did not change is still there, byte for byte.
        blocks = before[path].split("\n  - ")[1:]
        for block in blocks:
            extension = block.split('"')[1]
            if f"ph{customer.id}x{extension}" not in drifted:
                assert "\n  - " + block.rstrip("\n") in text


def test_shard_option_adopts_only_that_shards_customers(acme: Billing) -> None:
    from reconciler.selection import shard_of

    write("own/beta.yaml", BETA)
    _drift(acme, lambda s: (_rename(s), _account(s, "ph200x1").update(name="Carol Jones")))
    acme_shard, beta_shard = shard_of(100, 3), shard_of(200, 3)
    assert acme_shard != beta_shard
    for index in (1, 2, 3):
        assert acme.cli("adopt", "own/", "--shard", f"{index}/3").code == 0
        assert (SPEC_PATH.read_text() != SPEC) == (index >= acme_shard)
        assert (Path("own/beta.yaml").read_text() != BETA) == (index >= beta_shard)


def test_two_files_for_one_customer_name_each_other(acme: Billing) -> None:
    write("own/acme-copy.yaml", SPEC)
    _drift(acme, _rename)
    result = acme.cli("adopt", "own/", "--format", "json")
    assert result.code == 1, result
    files = result.json["files"]
    assert [(f["file"], f["customer"], f["changed"], f["changes"], f["errors"]) for f in files] == [
        ("own/acme-copy.yaml", 100, False, [], [{
            "code": "duplicate_customer", "file": "own/acme-copy.yaml", "line": None,
            "column": None, "message": "customer 100 is also described by own/acme.yaml"}]),
        ("own/acme.yaml", 100, False, [], [{
            "code": "duplicate_customer", "file": "own/acme.yaml", "line": 5, "column": 7,
            "message": ("customer 100 is also described by own/acme-copy.yaml; "
                        "neither file is adopted")}]),
    ]


def test_an_account_created_with_lists_is_written_whole_and_reported_as_billing_has_it(
        acme: Billing) -> None:
    def created(state: dict[str, Any]) -> None:
        state["accounts"].append({
            "id": "ph100x7", "customer": 100, "name": "Zed", "product": "Cloud PBX service",
            "addons": ["Call recording", "Fax to email"], "dids": ["15550000007", "15550000008"],
            "blocked_by": "admin"})

    _drift(acme, created)
    result = acme.cli("adopt", "own/acme.yaml", "--format", "json")
    assert result.code == 0, result
    assert result.json["files"][0]["changes"] == [{
        "account": "ph100x7", "what": "added", "before": None, "reason": "created in billing",
        "after": {"name": "Zed", "product": "Cloud PBX service",
                  "addons": ["Call recording", "Fax to email"],
                  "dids": ["15550000007", "15550000008"], "blocked": True}}]
    assert SPEC_PATH.read_text() == _edited((
        "      - 15550000003   # main line\n",
        ("      - 15550000003   # main line\n"
         '  - extension: "7"\n'
         "    name: Zed\n"
         "    product: Cloud PBX service\n"
         "    addons: [Call recording, Fax to email]\n"
         '    dids: ["15550000007", "15550000008"]\n'
         "    blocked: true\n"),
    ))
    assert _plan_is_empty(acme, "own/acme.yaml")


def test_a_spec_whose_customer_cannot_be_read_is_left_alone(acme: Billing) -> None:
    broken = SPEC.replace("  id: 100\n", "  id: [100]\n")
    write(SPEC_PATH, broken)
    _drift(acme, _rename)
    result = acme.cli("adopt", "own/acme.yaml", "--format", "json")
    assert result.code == 1, result
    [file] = result.json["files"]
    assert (file["file"], file["customer"], file["changed"]) == ("own/acme.yaml", None, False)
    assert [(e["code"], e["line"]) for e in file["errors"]] == [("schema", 5)]
    assert SPEC_PATH.read_text() == broken


def _assert_layout_refused(billing: Billing, reason: str) -> None:
    """adopt of own/acme.yaml exits 1, changes nothing and names ``reason`` in its JSON report."""
    result = billing.cli("adopt", "own/acme.yaml", "--format", "json")
    assert result.code == 1, result
    [file] = result.json["files"]
    assert (file["changed"], file["changes"]) == (False, [])
    assert file["errors"] == [{
        "code": "adopt_layout", "file": "own/acme.yaml", "line": None, "column": None,
        "message": f"cannot rewrite this layout: {reason}; left as it is"}]


def test_a_layout_adopt_cannot_edit_is_named_and_left_alone(acme: Billing) -> None:
    flow = ("{version: 1, customer: {id: 100, name: Acme}, extensions: ["
            "{extension: '1', name: Alice, product: Cloud PBX service, addons: [Call recording],"
            " dids: ['15550000001'], blocked: false},"
            " {extension: '3', name: Dan, product: Cloud PBX service, dids: ['15550000003']}],"
            " auto_attendants: [{number: 1, name: Main menu, product: Auto attendant,"
            " dids: ['15550000002']}]}\n")
    write(SPEC_PATH, flow)
    assert _plan_is_empty(acme, "own/acme.yaml")
    _drift(acme, _rename)
    _assert_layout_refused(acme, "the spec is not a block mapping at the top level")
    assert SPEC_PATH.read_text() == flow


@pytest.mark.parametrize(("rewritten", "reason"), [
    ("version: 1\ncustomer: [\n",
     "invalid YAML: while parsing a flow node did not find expected node content"),
    (SPEC + "colour: red\n",
     "colour: unknown key 'colour' (allowed: auto_attendants, customer, extensions, prune, "
     "version)"),
    (SPEC.replace("extension: '3'", "extension: '1'"),
     "extension 1 is listed twice (first at line 9)"),
    (SPEC, "ph100x1 name, ph100x3 product"),
], ids=["not-yaml", "schema", "duplicate-extension", "still-drifting"])
def test_a_rewrite_that_would_not_describe_billing_is_never_written(
        acme: Billing, monkeypatch: pytest.MonkeyPatch, rewritten: str, reason: str) -> None:
    """The rewritten text is read back as plan reads it and compared with billing before it is
    written: whatever went wrong in the edit, the file is left as it was and the reason said."""
    from reconciler.specedit import SpecEditor

    monkeypatch.setattr(SpecEditor, "result", lambda self: rewritten)
    _drift(acme, lambda state: (_rename(state), _product(state)))
    result = acme.cli("adopt", "own/acme.yaml", "--format", "json")
    assert result.code == 1, result
    [file] = result.json["files"]
    assert (file["changed"], file["changes"]) == (False, [])
    assert [(e["code"], e["file"], e["message"]) for e in file["errors"]] == [(
        "adopt_failed", "own/acme.yaml",
        f"the rewritten spec would still differ from billing ({reason}); left as it is")]
    assert SPEC_PATH.read_text() == SPEC


def test_a_product_the_catalogue_does_not_name_is_kept_or_not_added_and_said(
        tmp_path: Path) -> None:
    """PortaBilling can hold an account whose product the catalogue does not list: adopt keeps
    what the spec says of it, and does not write a new entry it could not describe."""
    from reconciler.adopt import adopt_customer
    from reconciler.model import Account, Catalogue, Customer, CustomerState, Product
    from reconciler.spec import load_spec

    path = write(tmp_path / "acme.yaml", SPEC)
    loaded = load_spec(str(path))
    catalogue = Catalogue(tuple(Product(p["id"], p["name"], p["type"]) for p in STATE["products"]))
    customer = Customer(100, "Acme", True, (("Cloud PBX service", 0),),
                        frozenset(STATE["customers"][0]["dids"]))
    state = CustomerState(customer, (
        Account("ph100x1", 100, "Alice Smith", None, ("Call recording",), ("15550000001",)),
        Account("ph100x3", 100, "Dan", "Cloud PBX service", (), ("15550000003",)),
        Account("ph100aa1", 100, "Main menu", "Auto attendant", (), ("15550000002",)),
        Account("ph100x5", 100, "Eve", None),
    ), catalogue)
    adopted = adopt_customer(loaded, state)
    assert [(w.code, w.message, w.file) for w in adopted.warnings] == [
        ("unknown_product", "ph100x1 has a product the catalogue does not name; kept as written",
         str(path)),
        ("unknown_product", ("ph100x5 was created in billing with a product the catalogue does "
                             "not name; not added to the spec"), str(path)),
    ]
    assert [(c.account, c.what) for c in adopted.changes] == [("ph100x1", "name")]
    assert adopted.new_text == _edited(*STORIES["rename"][1])


def _change(account: str, what: str, before: Any = None, after: Any = None,
            reason: str | None = None) -> dict[str, Any]:
    return {"account": account, "what": what, "before": before, "after": after, "reason": reason}


REPORTED = {
    "rename": [_change("ph100x1", "name", "Alice", "Alice Smith")],
    "product": [_change("ph100x3", "product", "Cloud PBX service", "Hotdesk")],
    "addon-added": [_change("ph100x1", "addons", ["Call recording"],
                            ["Call recording", "Fax to email"])],
    "addon-removed": [_change("ph100x1", "addons", ["Call recording"], [])],
    "addon-added-where-none": [_change("ph100x3", "addons", [], ["Fax to email"])],
    "did-added": [_change("ph100x3", "dids", ["15550000003"], ["15550000003", "15550000004"])],
    "did-removed": [_change("ph100aa1", "dids", ["15550000002"], [])],
    "did-moved": [_change("ph100x1", "dids", ["15550000001"], []),
                  _change("ph100x3", "dids", ["15550000003"], ["15550000003", "15550000001"])],
    "blocked-by-customer": [_change("ph100x1", "blocked", False, True, "by the customer")],
    "blocked-by-admin": [_change("ph100x1", "blocked", False, True, "by the administrator")],
    "created-in-billing": [_change("ph100x5", "added", None, {
        "name": "Eve O'Neil", "product": "Cloud PBX service", "addons": ["Fax to email"],
        "dids": ["15550000005"], "blocked": True}, "created in billing")],
    "terminated-in-billing": [_change("ph100x3", "removed", reason="terminated in billing")],
}


@pytest.mark.parametrize("story", list(STORIES))
def test_the_json_report_says_what_billing_changed_before_and_after(
        acme: Billing, story: str) -> None:
    _drift(acme, STORIES[story][0])
    result = acme.cli("adopt", "own/acme.yaml", "--format", "json")
    assert result.code == 0, result
    [file] = result.json["files"]
    assert (file["changed"], file["errors"], file["warnings"]) == (True, [], [])
    assert file["changes"] == REPORTED[story]


def test_an_account_gone_from_billing_is_removed_and_one_of_another_customer_is_left(
        acme: Billing) -> None:
    def change(state: dict[str, Any]) -> None:
        _account(state, "ph100x1")["customer"] = 200  # now another customer's
        state["accounts"].remove(_account(state, "ph100x3"))  # deleted outright
        _account(state, "ph100aa1")["name"] = "Main menu 2"

    _drift(acme, change)
    result = acme.cli("adopt", "own/acme.yaml", "--format", "json")
    assert result.code == 0, result
    [file] = result.json["files"]
    assert file["warnings"] == [{
        "code": "account_id_taken", "file": "own/acme.yaml", "line": None, "column": None,
        "message": "ph100x1 belongs to another customer in billing; its entry is left as it is"}]
    # The entries after the one left alone are adopted all the same.
    assert file["changes"] == [_change("ph100x3", "removed", reason="not in billing"),
                               _change("ph100aa1", "name", "Main menu", "Main menu 2")]
    text = SPEC_PATH.read_text()
    assert "    name: Alice          # reception\n" in text and "extension: '3'" not in text
    assert "    name: Main menu 2\n" in text


def test_a_block_billing_lifted_is_written_false_and_reported_without_a_reason(
        acme: Billing) -> None:
    write(SPEC_PATH, _edited(("    blocked: false\n", "    blocked: true\n")))
    result = acme.cli("adopt", "own/acme.yaml", "--format", "json")
    assert result.code == 0, result
    assert result.json["files"][0]["changes"] == [_change("ph100x1", "blocked", True, False)]
    assert SPEC_PATH.read_text() == SPEC
    assert _plan_is_empty(acme, "own/acme.yaml")


def test_a_kept_add_on_keeps_its_line_and_comment_in_a_block_list(acme: Billing) -> None:
    block = _edited(("    addons: [Call recording]\n",
                     "    addons:\n      - Call recording   # ordered by the CFO\n"))
    write(SPEC_PATH, block)
    assert _plan_is_empty(acme, "own/acme.yaml")
    _drift(acme, _addon_added)
    _adopt(acme)
    assert SPEC_PATH.read_text() == block.replace(
        "      - Call recording   # ordered by the CFO\n",
        "      - Call recording   # ordered by the CFO\n      - Fax to email\n")
    assert _plan_is_empty(acme, "own/acme.yaml")


def test_a_byte_order_mark_is_kept(acme: Billing) -> None:
    SPEC_PATH.write_bytes(b"\xef\xbb\xbf" + SPEC.encode())
    _drift(acme, _rename)
    _adopt(acme)
    assert SPEC_PATH.read_bytes() == b"\xef\xbb\xbf" + _edited(*STORIES["rename"][1]).encode()


def test_a_rewrite_the_editor_refuses_at_the_end_is_named_and_left(
        acme: Billing, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.specedit import SpecEditError, SpecEditor

    def refuse(self: SpecEditor) -> str:
        raise SpecEditError("two edits overlap")

    monkeypatch.setattr(SpecEditor, "result", refuse)
    _drift(acme, _rename)
    _assert_layout_refused(acme, "two edits overlap")
    assert SPEC_PATH.read_text() == SPEC


def test_accounts_created_in_billing_are_appended_in_export_order(acme: Billing) -> None:
    # Extensions by number (9 before 10 before 100), then auto attendants, whatever order
    # billing lists them in.
    def created(state: dict[str, Any]) -> None:
        state["customers"][0]["agreement"][1]["quantity"] = 2
        for account_id in ("ph100aa2", "ph100x100", "ph100x10", "ph100x9"):
            state["accounts"].append({"id": account_id, "customer": 100, "name": account_id,
                                      "product": ("Auto attendant" if "aa" in account_id
                                                  else "Cloud PBX service")})

    _drift(acme, created)
    result = acme.cli("adopt", "own/acme.yaml", "--format", "json")
    assert result.code == 0, result
    [file] = result.json["files"]
    assert [(c["account"], c["what"]) for c in file["changes"]] == [
        ("ph100x9", "added"), ("ph100x10", "added"), ("ph100x100", "added"),
        ("ph100aa2", "added")]
    text = SPEC_PATH.read_text()
    assert text.index('extension: "9"') < text.index('extension: "10"') < text.index(
        'extension: "100"') < text.index("number: 2")
    assert _plan_is_empty(acme, "own/acme.yaml")


def test_a_spec_naming_its_customer_otherwise_is_reported_with_billings_name(
        acme: Billing) -> None:
    write(SPEC_PATH, SPEC.replace("  name: Acme   # must match billing", "  name: Acme Corp"))
    result = acme.cli("adopt", "own/acme.yaml", "--format", "json")
    assert result.code == 1, result
    [file] = result.json["files"]
    assert (file["customer"], file["name"], file["changed"]) == (100, "Acme", False)
    assert [e["code"] for e in file["errors"]] == ["customer_mismatch"]
