"""The PortaBilling emulator: state round trip, parity with the embedded backend, the CLI story."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.backends.portabilling.backend import PortaBillingBackend
from reconciler.backends.sqlite import SqliteBackend
from reconciler.diff import fingerprint
from reconciler.emulator import EmulatorServer, FaultConfig, run_emulator
from reconciler.emulator.accounts import CUSTOMER_BLOCK_NOTE
from reconciler.emulator.testing import state_from_yaml, write_spec
from reconciler.model import Account, Customer
from reconciler.runner import build_plan
from reconciler.statefile import BillingState, load_state_file
from tests.cli_capture import run_cli

REPO = Path(__file__).resolve().parent.parent
DEMO_STATE = REPO / "specs" / "demo-billing-state.yaml"
DEMO_SPECS = REPO / "specs" / "customers"

# Every shape an account can take: blocked by admin and by customer, terminated, unmanaged,
# auto attendants, a zero-led extension, an account with no product.
RICH_STATE = """
products:
  - {id: 1, name: Cloud PBX service, type: main}
  - {id: 2, name: Auto attendant, type: main}
  - {id: 3, name: Call recording, type: addon}
  - {id: 4, name: Voicemail to email, type: addon}
  - {id: 7, name: SIP trunk, type: main}
customers:
  - id: 46170
    name: ABC
    self_care: {block_extensions: true}
    agreement:
      - {product: Auto attendant, quantity: 2}
      - {product: Cloud PBX service, quantity: 0}
      - {product: Call recording, quantity: 300}
      - {product: Voicemail to email, quantity: 0}
    dids: ["12094555948", "12094555949", "12094555950", "12094555951", "12094555952"]
  - id: 70001
    name: Globex
    self_care: {block_extensions: false}
    agreement:
      - {product: SIP trunk, quantity: 1}
    dids: []
accounts:
  - {id: ph46170x100, customer: 46170, name: Reception, product: Cloud PBX service,
     addons: [Call recording, Voicemail to email], dids: ["12094555950", "12094555951"]}
  - {id: ph46170x0203, customer: 46170, name: "Zoë O'Brien", product: Cloud PBX service,
     addons: [], dids: [], blocked_by: customer}
  - {id: ph46170x300, customer: 46170, name: Locked, product: Cloud PBX service,
     addons: [], dids: [], blocked_by: admin}
  - {id: ph46170x400, customer: 46170, name: Gone, product: Cloud PBX service,
     addons: [], dids: [], status: terminated}
  - {id: ph46170aa1, customer: 46170, name: Main menu, product: Auto attendant,
     addons: [], dids: ["12094555948"]}
  - {id: trunk-1, customer: 46170, name: Office trunk, product: null, addons: [], dids: []}
  - {id: sip-7, customer: 70001, name: Trunk, product: SIP trunk, addons: [], dids: []}
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def demo_state() -> BillingState:
    return load_state_file(str(DEMO_STATE))


@pytest.fixture
def rich_state(tmp_path: Path) -> BillingState:
    return state_from_yaml(RICH_STATE, str(tmp_path))


def sqlite_with(state: BillingState, path: Path) -> SqliteBackend:
    backend = SqliteBackend(f"sqlite:///{path}", create=True)
    backend.load_state(state)
    return backend


def pb_backend(server: EmulatorServer, **kwargs: Any) -> PortaBillingBackend:
    return PortaBillingBackend(server.url, env=server.env(), **kwargs)


# ---- state in, state out -------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["demo_state", "rich_state"])
def test_a_state_loaded_into_the_emulator_dumps_back_unchanged(
    which: str, request: pytest.FixtureRequest
) -> None:
    state = request.getfixturevalue(which)
    with EmulatorServer(state) as server:
        assert server.dump_state() == state
        assert server.invariant_problems() == []
        assert server.unlinked_extensions() == []


def test_load_state_replaces_everything(demo_state: BillingState, rich_state: BillingState) -> None:
    with EmulatorServer(demo_state) as server:
        server.load_state(rich_state)
        assert server.dump_state() == rich_state


def test_a_database_file_keeps_the_state(demo_state: BillingState, tmp_path: Path) -> None:
    with EmulatorServer(demo_state, db_path=str(tmp_path / "emulator.db")):
        pass
    with EmulatorServer(None, db_path=str(tmp_path / "emulator.db")) as server:
        assert server.dump_state() == demo_state


# ---- the same state read through either backend --------------------------------------------------


@pytest.mark.parametrize("which", ["demo_state", "rich_state"])
def test_portabilling_reads_the_same_customer_state_as_the_embedded_backend(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    state = request.getfixturevalue(which)
    embedded = sqlite_with(state, tmp_path / "billing.db")
    with EmulatorServer(state) as server:
        remote = pb_backend(server)
        assert remote.catalogue() == embedded.catalogue()
        ids = [c.id for c in state.customers]
        for (_, ours), theirs in zip(
            remote.read_customers(ids, remote.catalogue()), ids, strict=True
        ):
            reference = embedded.read_customer(theirs, embedded.catalogue())
            assert ours == reference
            assert ours is not None and reference is not None
            assert fingerprint(ours) == fingerprint(reference)
        assert remote.read_customer(424242, remote.catalogue()) is None
        remote.close()


# ---- the ABC story through the command line ------------------------------------------------------


def test_apply_of_the_demo_specs_through_the_cli_then_plan_shows_no_changes(
    demo_state: BillingState, tmp_path: Path
) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(DEMO_SPECS, specs)
    with EmulatorServer(demo_state, page_cap=2) as server:
        env = {**server.env(), "RECONCILER_BACKEND": server.url}
        applied = run_cli(["apply", str(specs), "--auto-approve"], env)
        assert applied.code == 0, applied.text
        assert "customer 46170: applied, 4 change(s)" in applied.out
        again = run_cli(["plan", str(specs), "--detailed-exitcode"], env)
        assert again.code == 0, again.text
        assert "Plan: 0 change(s)" in again.out
        history = run_cli(["history", "--customer", "46170", "--format", "json"], env)
        assert [e["op"] for e in json.loads(history.out)] == [
            "create_account",
            "create_account",
            "add_alias",
            "add_alias",
        ]
        after = server.dump_state()
        assert server.unlinked_extensions() == [] and server.invariant_problems() == []
    # The embedded backend, given the same specs, ends in the same state.
    embedded = run_cli(
        ["--backend", f"sqlite:///{tmp_path / 'billing.db'}", "state", "load", str(DEMO_STATE)]
    )
    assert embedded.code == 0, embedded.text
    assert (
        run_cli(
            [
                "--backend",
                f"sqlite:///{tmp_path / 'billing.db'}",
                "apply",
                str(specs),
                "--auto-approve",
            ]
        ).code
        == 0
    )
    assert SqliteBackend(f"sqlite:///{tmp_path / 'billing.db'}").dump_state() == after


def test_a_saved_plan_applies_to_the_server_it_was_made_for(
    demo_state: BillingState, tmp_path: Path
) -> None:
    with EmulatorServer(demo_state) as server:
        env = {**server.env(), "RECONCILER_BACKEND": server.url}
        saved = run_cli(["plan", str(DEMO_SPECS / "abc.yaml"), "--out", "plan.json"], env)
        assert saved.code == 0, saved.text
        assert run_cli(["apply", "--plan", "plan.json"], env).code == 0
        stale = run_cli(["apply", "--plan", "plan.json"], env)
        assert stale.code == 1 and "stale" in stale.text


# ---- API calls for planning one customer ---------------------------------------------------------


def big_customer(extensions: int, tmp_path: Path) -> tuple[BillingState, str]:
    """A customer with ``extensions`` extensions, each with one DID,
    and the spec that matches it."""
    state = load_state_file(str(DEMO_STATE))
    dids = [f"1555{n:07d}" for n in range(extensions)]
    customer = Customer(
        80000, "Initech", True, (("Call recording", 0), ("Cloud PBX service", 0)), frozenset(dids)
    )
    accounts = tuple(
        Account(
            f"ph80000x{1000 + n}",
            80000,
            f"User {n}",
            "Cloud PBX service",
            ("Call recording",),
            (dids[n],),
        )
        for n in range(extensions)
    )
    spec = {
        "version": 1,
        "customer": {"id": 80000, "name": "Initech"},
        "extensions": [
            {
                "extension": str(1000 + n),
                "name": f"User {n}",
                "product": "Cloud PBX service",
                "addons": ["Call recording"],
                "dids": [dids[n]],
            }
            for n in range(extensions)
        ],
    }
    path = write_spec(str(tmp_path / "specs"), "initech.yaml", spec)
    return BillingState(state.products, (customer,), accounts), path


@pytest.mark.parametrize(
    ("extensions", "page_cap", "expected"),
    [
        # login, products, customer, agreement + DIDs + accounts (real ones only) + extensions:
        # every list answers its total, so a client stops at the last full page.
        (10, 100, 1 + 1 + 1 + 1 + 1 + 1 + 1),
        (10, 500, 1 + 1 + 1 + 1 + 1 + 1 + 1),
        (1000, 100, 1 + 1 + 1 + 1 + 10 + 10 + 10),
        (1000, 500, 1 + 1 + 1 + 1 + 2 + 2 + 2),
    ],
)
def test_api_calls_for_planning_one_customer(
    extensions: int, page_cap: int, expected: int, tmp_path: Path
) -> None:
    state, spec = big_customer(extensions, tmp_path)
    with EmulatorServer(state, page_cap=page_cap) as server:
        with pb_backend(server) as backend:
            plan = build_plan([spec], backend)
        assert plan.change_count == 0 and plan.error_count == 0
        assert server.calls == expected, server.call_counts


# ---- the emulator's own behaviour ----------------------------------------------------------------


@pytest.fixture
def server(rich_state: BillingState) -> Iterator[EmulatorServer]:
    with EmulatorServer(rich_state, page_cap=2, login="api", password="pw") as running:
        yield running


def post(
    server: EmulatorServer, method: str, params: dict[str, Any], token: str | None = None
) -> requests.Response:
    base = server.url.replace("portabilling+", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(
        f"{base}/rest/{method}", json={"params": params}, headers=headers, timeout=5
    )


def login(server: EmulatorServer) -> str:
    answer = post(server, "Session/login", {"login": "api", "password": "pw"})
    assert answer.status_code == 200
    return str(answer.json()["access_token"])


def test_calls_without_a_valid_session_get_an_auth_fault(server: EmulatorServer) -> None:
    answer = post(server, "Product/get_product_list", {}, token="nonsense")
    assert answer.status_code == 500
    assert "check_auth" in answer.json()["faultcode"]
    refused = post(server, "Session/login", {"login": "api", "password": "nope"})
    assert refused.status_code == 500 and "auth_failed" in refused.json()["faultcode"]
    assert "nope" not in refused.text


def test_pages_are_capped_and_totals_given(server: EmulatorServer) -> None:
    token = login(server)
    params = {"i_customer": 46170, "with_aliases": 1, "get_only_real_accounts": 1, "get_total": 1}
    pages, accounts, offset = [], [], 0
    while True:
        page = post(
            server,
            "Account/get_account_list",
            {**params, "limit": 500, "offset": offset},
            token,
        ).json()
        assert page["total"] == 6
        if not page["account_list"]:
            break
        pages.append(len(page["account_list"]))
        accounts.extend(page["account_list"])
        offset += len(page["account_list"])
    assert pages == [2, 2, 2]  # 500 asked for, the server's cap of 2 given
    aliases = {a["id"]: sorted(alias["id"] for alias in a["alias_list"]) for a in accounts}
    assert aliases == {
        "ph46170x100": ["12094555950", "12094555951"],
        "ph46170x0203": [],
        "ph46170x300": [],
        "ph46170x400": [],
        "ph46170aa1": ["12094555948"],
        "trunk-1": [],
    }
    rest = post(
        server, "Account/get_account_list", {**params, "limit": 500, "offset": 6}, token
    ).json()
    assert rest == {"account_list": [], "total": 6}


def aa_info(account_id: str, i_product: int) -> dict[str, Any]:
    """An Account/add_account account_info as the wire contract has it."""
    return {
        "i_customer": 46170,
        "id": account_id,
        "i_product": i_product,
        "i_account_role": 1,
        "billing_model": 1,
        "assigned_addons": [],
        "firstname": "Menu",
    }


@pytest.mark.parametrize(
    ("method", "params", "faultcode"),
    [
        (
            "Account/add_account",
            {"account_info": aa_info("ph46170x9", 99)},
            "Server.Product.not_found",
        ),
        (
            "Account/add_account",
            {"account_info": aa_info("ph46170x100", 1)},
            "Server.Account.id_exists",
        ),
        (
            "Account/add_account",
            {"account_info": aa_info("ph46170x9", 3)},
            "Server.Product.wrong_product_type",
        ),
        (
            "Account/add_account",
            {"account_info": aa_info("ph46170x9", 7)},
            "Server.Customer.product_not_in_agreement",
        ),
        (
            "Account/add_alias",
            {"alias_info": {"i_master_account": 1, "id": "12094555950"}},
            "Server.Account.duplicate_alias",
        ),
        (
            "Account/add_alias",
            {"alias_info": {"i_master_account": 1, "id": "19995550000"}},
            "Server.DID.number_not_owned",
        ),
        (
            "Account/update_account",
            {"account_info": {"i_account": 4242, "blocked": "Y"}},
            "Server.Account.not_found",
        ),
        (
            "Account/delete_alias",
            {"alias_info": {"i_account": 4242}},
            "Server.Account.alias_not_found",
        ),
    ],
)
def test_bad_writes_are_refused_with_faults(
    server: EmulatorServer, method: str, params: dict[str, Any], faultcode: str
) -> None:
    before = server.dump_state()
    answer = post(server, method, params, login(server))
    assert answer.status_code == 500
    assert answer.json()["faultcode"] == faultcode
    assert server.dump_state() == before


def test_injected_failures_take_every_promised_shape(server: EmulatorServer) -> None:
    token = login(server)
    server.set_faults(FaultConfig(rate=1.0, kinds=("fault",), scope="reads"))
    fault = post(server, "Product/get_product_list", {}, token)
    assert (
        fault.status_code == 500 and fault.json()["faultcode"] == "Server.Emulator.injected_fault"
    )
    server.set_faults(FaultConfig(rate=1.0, kinds=("503",), scope="reads"))
    assert post(server, "Product/get_product_list", {}, token).status_code == 503
    server.set_faults(FaultConfig(rate=1.0, kinds=("drop",), scope="reads"))
    with pytest.raises(requests.ConnectionError):
        post(server, "Product/get_product_list", {}, token)
    # After the change: the write is made, the answer lost.
    server.set_faults(FaultConfig(rate=1.0, kinds=("502",), phases=("after",)))
    reception = post(server, "Account/get_account_info", {"id": "ph46170x100"}, token).json()[
        "account_info"
    ]
    blocked = post(
        server,
        "Account/update_account",
        {
            "account_info": {
                "i_account": reception["i_account"],
                "blocked": "Y",
                "blocked_by": "customer",
                "note": CUSTOMER_BLOCK_NOTE,  # what tells the customer's block under v3
            }
        },
        token,
    )
    assert blocked.status_code == 502
    server.set_faults(FaultConfig())
    accounts = {a.id: a for a in server.dump_state().accounts}
    assert accounts["ph46170x100"].blocked_by == "customer"
    assert server.injected == {}


def test_the_emulator_command_announces_its_url_and_credentials(demo_state: BillingState) -> None:
    lines: list[str] = []
    run_emulator(
        state_file=str(DEMO_STATE),
        host="127.0.0.1",
        port=0,
        announce=lines.append,
        env={},
        stop_after=0.1,
    )
    text = "\n".join(lines)
    assert "portabilling+http://127.0.0.1:" in text
    assert "PORTABILLING_LOGIN=emulator PORTABILLING_PASSWORD=emulator" in text
    lines.clear()
    secret_env = {"PORTABILLING_LOGIN": "me", "PORTABILLING_PASSWORD": "my-own-secret"}
    run_emulator(
        state_file=str(DEMO_STATE), port=0, announce=lines.append, env=secret_env, stop_after=0.1
    )
    assert "my-own-secret" not in "\n".join(lines)


def test_the_emulator_command_serves_until_stopped(demo_state: BillingState) -> None:
    import threading

    lines: list[str] = []
    thread = threading.Thread(
        target=run_emulator,
        kwargs={
            "state_file": str(DEMO_STATE),
            "port": 0,
            "announce": lines.append,
            "env": {},
            "stop_after": 0.6,
        },
    )
    thread.start()
    try:
        for _ in range(100):
            if lines:
                break
            threading.Event().wait(0.01)
        url = lines[0].split(" at ")[1]
        backend = PortaBillingBackend(
            url, env={"PORTABILLING_LOGIN": "emulator", "PORTABILLING_PASSWORD": "emulator"}
        )
        assert backend.read_customer(46170, backend.catalogue()) is not None
        backend.close()
    finally:
        thread.join()
    assert os.path.basename(str(DEMO_STATE)) in lines[0]


def test_a_stopped_emulator_answers_nothing_more(demo_state: BillingState) -> None:
    from reconciler.backends.portabilling.client import ClientSettings, TransportError

    server = EmulatorServer(demo_state).start()
    backend = PortaBillingBackend(
        server.url, env=server.env(), settings=ClientSettings(backoff=0.001)
    )
    backend.catalogue()  # a kept-alive connection now exists
    server.stop()
    with pytest.raises(TransportError, match="connection"):
        backend.read_customer(46170, backend.catalogue())
    backend.close()
