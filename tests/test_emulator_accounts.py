"""Billing objects as real servers show them: self-care roles, alias rows, bill status, generated
extension accounts, add-ons with dates, and every list paged (as the second contract, v2, shows
them: who blocked is shown; tests/test_emulator_v3.py covers the realistic defaults)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorServer
from reconciler.emulator.testing import state_from_yaml
from reconciler.statefile import BillingState
from tests.emulator_support import LOGIN, PASSWORD, STATE, account, call, fault, login

REAL = {"with_aliases": 1, "get_only_real_accounts": 1}


@pytest.fixture
def state(tmp_path: Path) -> BillingState:
    return state_from_yaml(STATE, str(tmp_path))


@pytest.fixture
def server(state: BillingState) -> Iterator[EmulatorServer]:
    with EmulatorServer(state, page_cap=100, login=LOGIN, password=PASSWORD, wire="v2") as running:
        yield running


@pytest.fixture
def token(server: EmulatorServer) -> str:
    return login(server)


def accounts(server: EmulatorServer, token: str, **flags: int) -> dict[str, Any]:
    return call(server, token, "Account/get_account_list",
                {"i_customer": 46170, "limit": 100, "offset": 0, **flags})  # fmt: skip


def dumped(server: EmulatorServer, account_id: str) -> Any:
    return next(a for a in server.dump_state().accounts if a.id == account_id)


def update(server: EmulatorServer, token: str, **info: Any) -> None:
    call(server, token, "Account/update_account", {"account_info": info})


# ---- customers -----------------------------------------------------------------------------------


def test_the_self_care_role_tells_who_may_block(server: EmulatorServer, token: str) -> None:
    abc = call(server, token, "Customer/get_customer_info", {"i_customer": 46170})["customer_info"]
    globex = call(server, token, "Customer/get_customer_info", {"i_customer": 70001})[
        "customer_info"
    ]
    assert (abc["i_role"], abc["extension_blocking"]) == (2, "Y")
    assert (globex["i_role"], globex["extension_blocking"]) == (3, "N")
    assert "PORTABILLING_BLOCKING_ROLES" not in server.env()
    missing = fault(server, token, "Customer/get_customer_info", {"i_customer": 424242})
    assert missing["faultcode"] == "Server.Customer.not_found"


def test_without_the_legacy_field_only_the_role_is_shown(state: BillingState) -> None:
    with EmulatorServer(
        state, login=LOGIN, password=PASSWORD, legacy_blocking_field=False
    ) as server:
        info = call(server, login(server), "Customer/get_customer_info", {"i_customer": 46170})
        assert info == {"customer_info": {"i_customer": 46170, "name": "ABC", "i_role": 2}}
        assert server.dump_state() == state  # the role still round-trips as block_extensions


# ---- the account list ----------------------------------------------------------------------------


def test_aliases_are_listed_as_accounts_unless_only_real_ones_are_asked_for(
    server: EmulatorServer, token: str
) -> None:
    everything = accounts(server, token, with_aliases=1)
    aliases = [a for a in everything["account_list"] if a["billing_model"] == 2]
    assert sorted(a["id"] for a in aliases) == ["12094555948", "12094555950", "12094555951"]
    reception = account(server, token, "ph46170x100")
    assert {a["i_master_account"] for a in aliases if a["id"] != "12094555948"} == {
        reception["i_account"]
    }
    assert everything["total"] == 5 + 3
    real = accounts(server, token, **REAL)
    assert real["total"] == 5 and all(a["billing_model"] == 1 for a in real["account_list"])
    assert sorted(a["id"] for a in reception["alias_list"]) == ["12094555950", "12094555951"]


def test_bill_status_is_open_or_closed(server: EmulatorServer, token: str) -> None:
    statuses = {a["id"]: a["bill_status"] for a in accounts(server, token, **REAL)["account_list"]}
    assert statuses["ph46170x100"] == "O" and statuses["ph46170x400"] == "C"
    call(server, token, "Account/terminate_account",
         {"i_account": account(server, token, "ph46170x100")["i_account"]})  # fmt: skip
    closed = account(server, token, "ph46170x100")
    assert closed["bill_status"] == "C" and closed["alias_list"] == []


def test_an_administrators_block_is_shown_as_such(server: EmulatorServer, token: str) -> None:
    locked = account(server, token, "ph46170x300")
    assert (locked["blocked"], locked["blocked_by"]) == ("Y", "admin")


# ---- creating an extension -----------------------------------------------------------------------


def test_an_extension_created_with_a_product_gets_a_generated_account(
    server: EmulatorServer, token: str
) -> None:
    created = call(server, token, "Customer/add_customer_extension",
                   {"i_customer": 46170, "id": "466", "name": "John Doe",
                    "i_product": 1})  # fmt: skip
    assert set(created) == {"i_c_ext"}
    listed = call(server, token, "Customer/get_extensions_list",
                  {"i_customer": 46170, "limit": 100, "offset": 0})  # fmt: skip
    extension = next(e for e in listed["extensions_list"] if e["id"] == "466")
    assert extension["i_c_ext"] == created["i_c_ext"] and extension["name"] == "John Doe"
    generated = account(server, token, "ph46170x466")
    assert generated["i_account"] == extension["i_account"]
    assert (generated["i_product"], generated["bill_status"],
            generated["assigned_addons"]) == (1, "O", [])
    assert generated["firstname"] == "" and generated["extension_name"] == "John Doe"
    assert dumped(server, "ph46170x466").name == "John Doe"
    assert server.unlinked_extensions() == [] and server.invariant_problems() == []


def test_an_extension_number_or_account_id_in_use_is_refused(
    server: EmulatorServer, token: str
) -> None:
    before = server.dump_state()
    again = fault(server, token, "Customer/add_customer_extension",
                  {"i_customer": 46170, "id": "100", "name": "Twice", "i_product": 1})  # fmt: skip
    assert again["faultcode"] == "Server.Customer.extension_exists"
    elsewhere = fault(server, token, "Customer/add_customer_extension",
                      {"i_customer": 46170, "id": "999", "name": "Clash",
                       "i_product": 1})  # fmt: skip
    assert elsewhere["faultcode"] == "Server.Account.id_exists"
    assert "customer 70001" in elsewhere["faultstring"]
    for extra in ({}, {"i_product": 1, "i_account": 1}):
        neither = fault(server, token, "Customer/add_customer_extension",
                        {"i_customer": 46170, "id": "467", "name": "X", **extra})  # fmt: skip
        assert neither["faultcode"] == "Client.Validation.missing_parameter"
    assert server.dump_state() == before


def test_an_extension_can_still_link_an_existing_account(server: EmulatorServer,
                                                         token: str) -> None:
    created = call(server, token, "Account/add_account", {"account_info": {
        "i_customer": 46170, "id": "ph46170x500", "i_product": 1, "i_account_role": 1,
        "billing_model": 1, "assigned_addons": [], "firstname": ""}})  # fmt: skip
    assert server.unlinked_extensions() == ["ph46170x500"]
    call(server, token, "Customer/add_customer_extension",
         {"i_customer": 46170, "id": "500", "name": "Linked",
          "i_account": created["i_account"]})  # fmt: skip
    assert server.unlinked_extensions() == []
    assert dumped(server, "ph46170x500").name == "Linked"


@pytest.mark.parametrize(("field", "value"), [("i_account_role", 2), ("billing_model", -1)])
def test_an_auto_attendant_is_a_universal_credit_account(
    server: EmulatorServer, token: str, field: str, value: int
) -> None:
    info = {"i_customer": 46170, "id": "ph46170aa2", "i_product": 2, "i_account_role": 1,
            "billing_model": 1, "assigned_addons": [], "firstname": "Night",
            field: value}  # fmt: skip
    answer = fault(server, token, "Account/add_account", {"account_info": info})
    assert answer["faultcode"] == "Client.Validation.invalid_value"
    assert f"account_info.{field}" in answer["faultstring"]


# ---- add-ons with dates --------------------------------------------------------------------------


def addons(server: EmulatorServer, token: str, account_id: str) -> dict[int, dict[str, Any]]:
    return {a["i_product"]: a for a in account(server, token, account_id)["assigned_addons"]}


def test_an_expired_addon_is_listed_with_its_end_but_no_longer_assigned(
    server: EmulatorServer, token: str
) -> None:
    assert addons(server, token, "ph46170x100")[3]["addon_effective_to"] is None
    server.expire_addon("ph46170x100", "Call recording")
    ended = addons(server, token, "ph46170x100")[3]
    assert ended["addon_effective_to"] < ended["addon_effective_from"]
    assert dumped(server, "ph46170x100").addons == ("Voicemail to email",)
    with pytest.raises(KeyError):
        server.expire_addon("ph46170x300", "Call recording")


def test_an_expired_addon_frees_its_quantity(server: EmulatorServer, token: str) -> None:
    # Call recording: quantity 2, held by x100 and x200.
    locked = account(server, token, "ph46170aa1")["i_account"]
    full = fault(server, token, "Account/update_account",
                 {"account_info": {"i_account": locked,
                                   "assigned_addons": [{"i_product": 3}]}})  # fmt: skip
    assert full["faultcode"] == "Server.Customer.quantity_exceeded"
    server.expire_addon("ph46170x200", "Call recording")
    update(server, token, i_account=locked, assigned_addons=[{"i_product": 3}])
    assert dumped(server, "ph46170aa1").addons == ("Call recording",)


def test_kept_addons_keep_their_dates_and_an_expired_one_sent_bare_starts_again(
    server: EmulatorServer, token: str
) -> None:
    i_account = account(server, token, "ph46170x100")["i_account"]
    server.expire_addon("ph46170x100", "Voicemail to email")
    before = addons(server, token, "ph46170x100")
    # Sent back as read, both keep their dates (so the expired one stays expired).
    update(server, token, i_account=i_account, assigned_addons=list(before.values()))
    assert addons(server, token, "ph46170x100") == before
    assert dumped(server, "ph46170x100").addons == ("Call recording",)
    # Without dates, the kept one still keeps them; the expired one is assigned anew.
    update(server, token, i_account=i_account, assigned_addons=[{"i_product": 3}, {"i_product": 4}])
    after = addons(server, token, "ph46170x100")
    assert after[3] == before[3]
    assert after[4]["addon_effective_to"] is None
    assert dumped(server, "ph46170x100").addons == ("Call recording", "Voicemail to email")


def test_an_addon_listed_twice_is_a_fault(server: EmulatorServer, token: str) -> None:
    i_account = account(server, token, "ph46170x100")["i_account"]
    twice = fault(server, token, "Account/update_account", {"account_info": {
        "i_account": i_account,
        "assigned_addons": [{"i_product": 3}, {"i_product": 3}]}})  # fmt: skip
    assert twice["faultcode"] == "Client.Validation.duplicate_value"
    assert "assigned_addons[1]" in twice["faultstring"]


# ---- paging --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "key", "total"),
    [
        ("Product/get_product_list", {}, "product_list", 5),
        ("Customer/get_customer_list", {}, "customer_list", 2),
        ("DID/get_number_list", {"i_customer": 46170}, "number_list", 5),
        ("Account/get_account_list", {"i_customer": 46170, **REAL}, "account_list", 5),
        ("Customer/get_extensions_list", {"i_customer": 46170}, "extensions_list", 4),
        # ph46170aa1 is loaded first, its DID next: ph46170x100 is account 3.
        ("Account/get_alias_list", {"i_master_account": 3}, "alias_list", 2),
    ],
)
def test_every_list_is_paged_under_the_cap_with_its_total(
    state: BillingState, method: str, params: dict[str, Any], key: str, total: int
) -> None:
    with EmulatorServer(state, page_cap=1, login=LOGIN, password=PASSWORD) as server:
        token = login(server)
        assert account(server, token, "ph46170x100")["i_account"] == 3
        seen = []
        for offset in range(total + 1):
            page = call(server, token, method, {**params, "limit": 50, "offset": offset})
            assert page["total"] == total and len(page[key]) == (1 if offset < total else 0)
            seen += page[key]
        assert len({str(item) for item in seen}) == total
