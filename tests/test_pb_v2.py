"""Wire contract v2, point by point, against a stub PortaBilling on loopback (tests/pb_stub.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.backends.portabilling.backend import PortaBillingBackend
from reconciler.backends.portabilling.client import (
    BillingReadOnly,
    Credentials,
    LoginLockedOut,
    LoginRefused,
    MalformedAnswer,
    PortaBillingClient,
    endpoint_of,
)
from reconciler.backends.portabilling.config import blocking_roles_from_env
from reconciler.backends.portabilling.fields import BLOCK_MARKER
from reconciler.backends.portabilling.session import TokenSession
from reconciler.changes import AddAddon, CreateAccount, TerminateAccount
from reconciler.errors import UsageError
from tests.pb_stub import FAST, Stub, account, customer


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)



def client_for(stub: Stub, password: str = "pw") -> PortaBillingClient:
    return PortaBillingClient(endpoint_of(stub.url), Credentials("api", password), FAST)


def backend_for(stub: Stub, **env: str) -> PortaBillingBackend:
    return PortaBillingBackend(stub.url, env={**stub.env, **env}, settings=FAST, parallelism=4)


def fault(code: str, text: str = "refused") -> tuple[int, dict[str, str]]:
    return 500, {"faultcode": code, "faultstring": text}


# ---- tokens --------------------------------------------------------------------------------------


def test_a_run_logs_in_once_and_refreshes_the_token_each_time_it_expires(
    stubs: Callable[..., Stub],
) -> None:
    stub = stubs(customer())
    expired: set[str] = set()
    uses: dict[str, int] = {}

    def expire_after_three(method: str, params: dict[str, Any], n: int) -> Any:
        if method.startswith("Session/"):
            return False
        token = stub.requests[-1][1].get("Authorization", "")
        uses[token] = uses.get(token, 0) + 1
        if uses[token] > 3:
            expired.add(token)
            return fault("Server.Session.check_auth_failed", "access token expired")
        return False

    stub.overrides.append(expire_after_three)
    client = client_for(stub)
    for _ in range(10):
        assert client.read("Product/get_product_list", {"limit": 10, "offset": 0})["product_list"]
    assert stub.methods().count("Session/login") == 1
    assert stub.methods().count("Session/refresh_access_token") == 3
    refreshes = stub.params_of("Session/refresh_access_token")
    assert refreshes == [{"refresh_token": "r1"}, {"refresh_token": "r2"}, {"refresh_token": "r3"}]
    # The refresh token is the credential: no Bearer token goes with it.
    assert all(
        "Authorization" not in headers
        for m, headers, _ in stub.requests
        if m.startswith("Session/")
    )


def test_the_token_is_renewed_before_it_expires_from_expires_in(stubs: Callable[..., Stub]) -> None:
    stub = stubs(customer())
    client = client_for(stub)
    now = [1000.0]
    client.session = TokenSession(client._login, client._refresh, clock=lambda: now[0])
    client.read("Product/get_product_list", {"limit": 10, "offset": 0})
    now[0] += 900 - 31  # more than 30 s left of 900: still good
    client.read("Product/get_product_list", {"limit": 10, "offset": 0})
    now[0] += 2  # 29 s left: renewed first, no call is refused
    client.read("Product/get_product_list", {"limit": 10, "offset": 0})
    assert stub.methods() == [
        "Session/login",
        "Product/get_product_list",
        "Product/get_product_list",
        "Session/refresh_access_token",
        "Product/get_product_list",
    ]


def test_a_fresh_token_used_up_by_other_threads_is_refreshed_again_not_a_permission_error(
    stubs: Callable[..., Stub],
) -> None:
    # With many threads and a server that limits a token's calls, the token one thread just
    # renewed can be used up by the others before its own call arrives.
    stub = stubs(customer())
    refused = {"n": 0}

    def two_refusals(method: str, params: dict[str, Any], n: int) -> Any:
        if method == "Product/get_product_list" and refused["n"] < 2:
            refused["n"] += 1
            return fault("Server.Session.check_auth_failed", "access token used up")
        return False

    stub.overrides.append(two_refusals)
    client_for(stub).read("Product/get_product_list", {"limit": 10, "offset": 0})
    assert stub.methods() == [
        "Session/login",
        "Product/get_product_list",
        "Session/refresh_access_token",
        "Product/get_product_list",
        "Session/refresh_access_token",
        "Product/get_product_list",
    ]


def test_when_refreshing_fails_the_client_logs_in_again(stubs: Callable[..., Stub]) -> None:
    stub = stubs(customer())
    calls = {"n": 0}

    def first_call_refused(method: str, params: dict[str, Any], n: int) -> Any:
        if method == "Session/refresh_access_token":
            return fault("Server.Session.refresh_failed", "refresh token unknown")
        if method == "Product/get_product_list":
            calls["n"] += 1
            if calls["n"] == 1:
                return fault("Server.Session.check_auth_failed")
        return False

    stub.overrides.append(first_call_refused)
    client_for(stub).read("Product/get_product_list", {"limit": 10, "offset": 0})
    assert stub.methods() == [
        "Session/login",
        "Product/get_product_list",
        "Session/refresh_access_token",
        "Session/login",
        "Product/get_product_list",
    ]


# ---- failed logins -------------------------------------------------------------------------------


def test_a_wrong_password_makes_exactly_one_login_call_however_many_reads_follow(
    stubs: Callable[..., Stub],
) -> None:
    stub = stubs(*(customer(cid, f"C{cid}") for cid in (1, 2, 3, 4, 5)))
    stub.overrides.append(
        lambda m, p, n: (
            fault("Server.Session.auth_failed", "login failed") if m == "Session/login" else False
        )
    )
    backend = PortaBillingBackend(
        stub.url, env={"PORTABILLING_LOGIN": "api", "PORTABILLING_PASSWORD": "wrong"}, settings=FAST
    )
    with pytest.raises(LoginRefused) as caught:
        list(backend.read_customers([1, 2, 3, 4, 5], None))  # type: ignore[arg-type]
    with pytest.raises(LoginRefused):
        backend.catalogue()
    backend.close()
    message = str(caught.value)
    assert "login failed for user api at 127.0.0.1" in message
    assert "PORTABILLING_LOGIN and PORTABILLING_PASSWORD/PORTABILLING_TOKEN" in message
    assert "wrong" not in message
    assert stub.methods() == ["Session/login"]


def test_a_locked_out_login_says_so_plainly_and_is_not_retried(stubs: Callable[..., Stub]) -> None:
    stub = stubs(customer())
    stub.overrides.append(
        lambda m, p, n: (
            fault("Server.Session.brute_force", "user locked out")
            if m == "Session/login"
            else False
        )
    )
    client = client_for(stub)
    for _ in range(3):
        with pytest.raises(
            LoginLockedOut, match="locked the login out after repeated failed logins"
        ):
            client.read("Product/get_product_list")
    assert stub.methods() == ["Session/login"]


def test_a_failed_login_exits_1_with_one_line_on_the_command_line(
    stubs: Callable[..., Stub], tmp_path: Any
) -> None:
    from tests.helpers import run_cli

    stub = stubs(customer())
    stub.overrides.append(
        lambda m, p, n: (
            fault("Server.Session.brute_force", "locked") if m == "Session/login" else False
        )
    )
    spec = tmp_path / "abc.yaml"
    spec.write_text("version: 1\ncustomer: {id: 46170, name: ABC}\n")
    result = run_cli("--backend", stub.url, "plan", str(spec), env=stub.env)
    assert result.code == 1, result
    assert "locked the login out" in result.err
    assert "Traceback" not in result.err
    assert stub.methods() == ["Session/login"]


# ---- reads: paging, aliases, bill_status, add-on dates -------------------------------------------


def test_every_list_is_paged_with_limit_sent_alongside_every_offset(
    stubs: Callable[..., Stub],
) -> None:
    abc = customer()
    abc["accounts"] = [account(100 + n, f"ph46170x{100 + n}") for n in range(250)]
    abc["extensions"] = [
        {"i_c_ext": n, "id": str(100 + n), "name": f"U{n}", "i_account": 100 + n}
        for n in range(250)
    ]
    abc["accounts"][0]["alias_list"] = [
        {"i_account": 7000 + n, "id": f"1209{n:07d}"} for n in range(120)
    ]
    stub = stubs(abc, page_cap=100)
    backend = backend_for(stub)
    state = backend.read_customer(46170, backend.catalogue())
    assert state is not None and len(state.accounts) == 250
    session_reads = stub.params_of("Account/get_account_list")
    assert [p["offset"] for p in session_reads] == [0, 100, 200]
    for method, _, params in stub.requests:
        if "offset" in params:
            assert params["limit"] == 100, method
        if method.endswith("_list") and method != "Account/get_account_list":
            assert "get_total" not in params, method
    assert all(p["get_only_real_accounts"] == 1 and p["with_aliases"] == 1 for p in session_reads)
    # The alias list, read back after a write, is paged too.
    with backend.customer_session(46170, backend.catalogue()) as session:
        session.read()
        assert len(session.aliases(100)) == 120  # type: ignore[attr-defined]
    assert [p["offset"] for p in stub.params_of("Account/get_alias_list")] == [0, 100]
    backend.close()


def test_alias_rows_are_never_accounts_and_bill_status_i_is_open_c_terminated(
    stubs: Callable[..., Stub],
) -> None:
    abc = customer()
    abc["accounts"] = [
        account(
            1, "ph46170x100", bill_status="I", alias_list=[{"i_account": 9, "id": "12095550001"}]
        ),
        account(2, "ph46170x101", bill_status="C"),
        account(9, "12095550001", billing_model=2, i_master_account=1),
        account(10, "12095550002", billing_model=2),
    ]
    stub = stubs(abc)
    backend = backend_for(stub)
    state = backend.read_customer(46170, backend.catalogue())
    backend.close()
    assert state is not None
    assert {a.id: a.status for a in state.accounts} == {
        "ph46170x100": "open",
        "ph46170x101": "terminated",
    }
    assert state.accounts[0].dids == ("12095550001",)


def _stamp(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%d %H:%M:%S")


def test_an_add_on_past_its_end_date_is_not_assigned_and_is_added_again(
    stubs: Callable[..., Stub],
) -> None:
    kept = {
        "i_product": 4,
        "addon_effective_from": "2024-01-01 00:00:00",
        "addon_effective_to": None,
    }
    ended = {
        "i_product": 3,
        "addon_effective_from": "2024-01-01 00:00:00",
        "addon_effective_to": _stamp(-timedelta(days=1)),
    }
    ending = {
        "i_product": 3,
        "addon_effective_from": "2024-01-01 00:00:00",
        "addon_effective_to": _stamp(timedelta(days=30)),
    }
    abc = customer()
    abc["accounts"] = [
        account(1, "ph46170x100", assigned_addons=[kept, ended]),
        account(2, "ph46170x101", assigned_addons=[ending]),
    ]
    stub = stubs(abc)
    backend = backend_for(stub)
    state = backend.read_customer(46170, backend.catalogue())
    assert state is not None
    assert [a.addons for a in state.accounts] == [("Voicemail to email",), ("Call recording",)]
    with backend.customer_session(46170, backend.catalogue()) as session:
        session.read()
        session.execute([AddAddon("ph46170x100", product="Call recording")])
    backend.close()
    (update,) = stub.params_of("Account/update_account")
    assert update == {
        "account_info": {
            "i_account": 1,
            "assigned_addons": [
                {"i_product": 4, "addon_effective_from": "2024-01-01 00:00:00"},
                {"i_product": 3},
            ],
        }
    }


# ---- blocking permission -------------------------------------------------------------------------


def test_blocking_permission_comes_from_the_role_then_the_first_version_field() -> None:
    from reconciler.backends.portabilling.fields import customer_may_block

    roles = blocking_roles_from_env({"PORTABILLING_BLOCKING_ROLES": "2, 7"})
    assert roles == frozenset({2, 7})
    assert customer_may_block({"i_role": 2, "extension_blocking": "N"}, roles)
    assert not customer_may_block({"i_role": 3, "extension_blocking": "Y"}, roles)
    assert customer_may_block({"i_role": 3, "extension_blocking": "Y"}, None)
    assert not customer_may_block({"i_role": 2}, None)
    assert blocking_roles_from_env({}) is None
    with pytest.raises(UsageError, match="PORTABILLING_BLOCKING_ROLES='admins'"):
        blocking_roles_from_env({"PORTABILLING_BLOCKING_ROLES": "admins"})


def test_the_backend_reads_blocking_permission_from_the_role_setting(
    stubs: Callable[..., Stub],
) -> None:
    stub = stubs(customer(i_role=2), customer(51234, "Other", i_role=3, extension_blocking="Y"))
    backend = backend_for(stub, PORTABILLING_BLOCKING_ROLES="2")
    catalogue = backend.catalogue()
    by_role = {
        cid: s.customer.block_extensions
        for cid, s in backend.read_customers([46170, 51234], catalogue)
        if s
    }
    backend.close()
    assert by_role == {46170: True, 51234: False}


# ---- writes: v2 shapes ---------------------------------------------------------------------------


NEW_EXTENSION = CreateAccount("ph46170x466",
    kind="extension",
    name="John Doe",
    product="Cloud PBX service",
    addons=("Call recording",),
    blocked=True,
)


def test_an_extension_is_created_by_billing_then_found_by_i_c_ext_then_given_add_ons_and_block(
    stubs: Callable[..., Stub],
) -> None:
    stub = stubs(customer())
    backend = backend_for(stub)
    written: list[Any] = []
    with backend.customer_session(46170, backend.catalogue()) as session:
        session.read()
        stub.requests.clear()
        session.execute([NEW_EXTENSION], on_written=written.append)
    backend.close()
    assert written == [NEW_EXTENSION]
    # The account is found through the answer's i_c_ext and the extensions list, never by
    # guessing its ID.
    assert stub.methods() == [
        "Customer/add_customer_extension",
        "Customer/get_extensions_list",
        "Account/get_account_info",
        "Account/update_account",
    ]
    create, _extensions, read_back, update = (p for _, _, p in stub.requests)
    assert create == {"i_customer": 46170, "id": "466", "name": "John Doe", "i_product": 1}
    assert read_back == {"i_account": 1000}
    assert update == {
        "account_info": {
            "i_account": 1000,
            "assigned_addons": [{"i_product": 3}],
            "blocked": "Y",
            "blocked_by": "customer",
            "note": BLOCK_MARKER,
        }
    }
    assert "Account/add_account" not in stub.methods()


def test_a_create_whose_follow_up_fails_is_audited_as_written_and_says_exactly_what_is_left(
    stubs: Callable[..., Stub],
) -> None:
    from reconciler.errors import BackendError

    stub = stubs(customer())
    stub.overrides.append(
        lambda m, p, n: (
            fault("Server.Account.addon_refused", "no") if m == "Account/update_account" else False
        )
    )
    backend = backend_for(stub)
    written: list[Any] = []
    with backend.customer_session(46170, backend.catalogue()) as session:
        session.read()
        with pytest.raises(BackendError) as caught:
            session.execute([NEW_EXTENSION], on_written=written.append)
        assert session.done == [NEW_EXTENSION]
    backend.close()
    assert written == [NEW_EXTENSION]
    assert "ph46170x466 was created in billing, but" in str(caught.value)
    assert "run apply again" in str(caught.value)


def test_an_auto_attendant_is_created_with_add_account_in_the_v2_shape(
    stubs: Callable[..., Stub],
) -> None:
    abc = customer()
    abc["accounts"] = [account(1, "ph46170x100")]  # this server shows notes: a block is marked
    stub = stubs(abc)
    backend = backend_for(stub)
    item = CreateAccount("ph46170aa1",
        kind="auto_attendant",
        name="Main menu",
        product="Auto attendant",
        addons=(),
        blocked=True,
    )
    with backend.customer_session(46170, backend.catalogue()) as session:
        session.read()
        session.execute([item])
    backend.close()
    (params,) = stub.params_of("Account/add_account")
    assert params == {
        "account_info": {
            "i_customer": 46170,
            "id": "ph46170aa1",
            "i_product": 2,
            "i_account_role": 1,
            "billing_model": 1,
            "assigned_addons": [],
            "firstname": "Main menu",
            "blocked": "Y",
            "blocked_by": "customer",
            "note": BLOCK_MARKER,
        }
    }


# ---- read-only sites -----------------------------------------------------------------------------


def test_a_read_only_site_gets_one_write_attempt_and_apply_stops_for_every_customer(
    stubs: Callable[..., Stub], tmp_path: Any
) -> None:
    from tests.helpers import run_cli

    abc, other = customer(), customer(51234, "Other")
    abc["accounts"] = [account(1, "ph46170x100", firstname="x")]
    other["accounts"] = [account(2, "ph51234x100")]
    stub = stubs(abc, other)
    stub.overrides.append(
        lambda m, p, n: (
            fault("Server.Generic.read_only_mode", "the server is in read-only mode")
            if m
            in (
                "Customer/update_customer_extension",
                "Customer/add_customer_extension",
                "Account/update_account",
            )
            else False
        )
    )
    for cid, name in ((46170, "ABC"), (51234, "Other")):
        (tmp_path / "specs").mkdir(exist_ok=True)
        (tmp_path / "specs" / f"{cid}.yaml").write_text(
            f"version: 1\ncustomer: {{id: {cid}, name: {name}}}\nextensions:\n"
            f"  - {{extension: '100', name: Renamed, product: Cloud PBX service}}\n"
        )
    result = run_cli(
        "--backend", stub.url, "apply", str(tmp_path / "specs"), "--auto-approve", env=stub.env
    )
    assert result.code == 1, result
    assert (
        "is read-only (disaster-recovery site or maintenance): nothing more was written"
        in result.out + result.err
    )
    assert len(stub.writes()) == 1, stub.writes()
    assert "Traceback" not in result.out + result.err


def test_after_a_read_only_fault_no_write_leaves_the_client(stubs: Callable[..., Stub]) -> None:
    stub = stubs(customer())
    stub.overrides.append(
        lambda m, p, n: (
            fault("Server.Generic.standalone_mode") if m == "Account/terminate_account" else False
        )
    )
    client = client_for(stub)
    for _ in range(2):
        with pytest.raises(BillingReadOnly, match="billing at 127.0.0.1 is read-only"):
            client.write("Account/terminate_account", {"i_account": 1})
    assert client.read("Product/get_product_list", {"limit": 10, "offset": 0})  # reads still work
    assert stub.methods().count("Account/terminate_account") == 1


# ---- answers that are not PortaBilling's ---------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (
            (200, b"<html><body>Welcome to nginx</body></html>"),
            "a body that is not JSON (text/html)",
        ),
        ((200, b'{"customer_info": {"name": "AB'), "a body that is not JSON"),
        ((200, ["not", "an", "object"]), "a JSON list where an object was expected"),
        ((200, {"customer_info": ["a", "list"]}), "customer_info that is not an object"),
        ((404, b"<html>Not Found</html>"), "HTTP 404"),
    ],
)
def test_a_malformed_answer_is_one_clear_error(
    stubs: Callable[..., Stub], answer: Any, words: str
) -> None:
    stub = stubs(customer())
    stub.overrides.append(lambda m, p, n: answer if m == "Customer/get_customer_info" else False)
    backend = backend_for(stub)
    with pytest.raises(MalformedAnswer) as caught:
        backend.read_customer(46170, backend.catalogue())
    backend.close()
    assert words in str(caught.value)
    assert "Customer/get_customer_info" in str(caught.value)


def test_a_write_answered_with_garbage_is_read_back_not_repeated(
    stubs: Callable[..., Stub],
) -> None:
    stub = stubs(customer())
    abc = stub.customers[46170]
    abc["accounts"] = [account(1, "ph46170x100")]

    def garbled_after_terminating(method: str, params: dict[str, Any], n: int) -> Any:
        if method == "Account/terminate_account":
            abc["accounts"][0]["bill_status"] = "C"
            return 200, b'{"truncat'
        return False

    stub.overrides.append(garbled_after_terminating)
    backend = backend_for(stub)
    with backend.customer_session(46170, backend.catalogue()) as session:
        session.read()
        session.execute([TerminateAccount("ph46170x100")])
        assert [c.op for c in session.done] == ["terminate_account"]
    backend.close()
    assert stub.methods().count("Account/terminate_account") == 1
    assert stub.methods().count("Account/get_account_info") == 1


def test_an_unknown_fault_on_plan_is_one_line_and_exit_1(
    stubs: Callable[..., Stub], tmp_path: Any
) -> None:
    from tests.helpers import run_cli

    stub = stubs(customer())
    stub.overrides.append(
        lambda m, p, n: (
            fault("Server.Weird.something_new", "a new kind of trouble")
            if m == "DID/get_number_list"
            else False
        )
    )
    spec = tmp_path / "abc.yaml"
    spec.write_text("version: 1\ncustomer: {id: 46170, name: ABC}\n")
    result = run_cli("--backend", stub.url, "plan", str(spec), env=stub.env)
    assert result.code == 1
    assert "a new kind of trouble [Server.Weird.something_new]" in result.err
    assert (
        "Traceback" not in result.out + result.err
        and "internal error" not in result.out + result.err
    )


def test_garbage_mid_apply_stops_it_and_every_change_made_is_in_the_audit_log(
    stubs: Callable[..., Stub], tmp_path: Any
) -> None:
    from tests.helpers import run_cli

    abc = customer()
    abc["accounts"] = [account(n, f"ph46170x{n}") for n in (100, 101, 102)]
    abc["extensions"] = [
        {"i_c_ext": n, "id": str(n), "name": "Old", "i_account": n} for n in (100, 101, 102)
    ]
    stub = stubs(abc)
    renames = {"n": 0}

    def garbage_from_the_second_rename(method: str, params: dict[str, Any], n: int) -> Any:
        if method == "Customer/update_customer_extension":
            renames["n"] += 1
            if renames["n"] >= 2:
                return 200, b"<html><body>502 Bad Gateway</body></html>"
        if method == "Customer/get_extensions_list" and renames["n"] >= 2:
            return 200, {"extensions_list": {"not": "a list"}}
        return False

    stub.overrides.append(garbage_from_the_second_rename)
    spec = tmp_path / "abc.yaml"
    spec.write_text(
        "version: 1\ncustomer: {id: 46170, name: ABC}\nextensions:\n"
        + "".join(
            f"  - {{extension: '{n}', name: New, product: Cloud PBX service}}\n"
            for n in (100, 101, 102)
        )
    )
    applied = run_cli("--backend", stub.url, "apply", str(spec), "--auto-approve", env=stub.env)
    assert applied.code == 1
    assert "renaming ph46170x101: the outcome is unknown and reading billing back failed too" in (
        applied.err
    )
    assert "extensions_list that is not a list of objects" in applied.err
    assert "Traceback" not in applied.err
    assert stub.methods().count("Customer/update_customer_extension") == 2  # 102 never sent
    history = run_cli("--backend", stub.url, "history", "--format", "json", env=stub.env)
    assert [(e["op"], e["account"]) for e in history.json] == [("set_name", "ph46170x100")]
