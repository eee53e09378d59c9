"""The PortaBilling client and backend against a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reconciler.backends.portabilling.backend import PortaBillingBackend
from reconciler.backends.portabilling.client import (
    ClientSettings,
    Credentials,
    OutcomeUnknown,
    PortaBillingAuthError,
    PortaBillingClient,
    PortaBillingFault,
    TransportError,
    endpoint_of,
)
from reconciler.changes import AddAlias, Block, CreateAccount, SetName
from reconciler.emulator import EmulatorServer, FaultConfig
from reconciler.errors import BackendError, LockTimeout, UsageError
from reconciler.model import OPEN, Account, Customer, Product
from reconciler.statefile import BillingState

FAST = ClientSettings(connect_timeout=1.0, read_timeout=0.3, backoff=0.001)

PRODUCTS = (
    Product(1, "Cloud PBX service", "main"),
    Product(2, "Auto attendant", "main"),
    Product(3, "Call recording", "addon"),
)


def pbx_state(extensions: int = 3, customer_id: int = 46170) -> BillingState:
    """One customer with ``extensions`` extension accounts, each holding one DID of its pool."""
    dids = [f"1209555{n:04d}" for n in range(max(extensions, 1) + 2)]
    customer = Customer(
        customer_id,
        "ABC",
        True,
        (("Auto attendant", 1), ("Call recording", 0), ("Cloud PBX service", 0)),
        frozenset(dids),
    )
    accounts = tuple(
        Account(
            f"ph{customer_id}x{100 + n}",
            customer_id,
            f"User {n}",
            "Cloud PBX service",
            ("Call recording",) if n % 2 else (),
            (dids[n],),
        )
        for n in range(extensions)
    )
    return BillingState(PRODUCTS, (customer,), tuple(sorted(accounts, key=lambda a: a.id)))


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # locks and the audit log go under ./.reconciler


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(pbx_state(), login="api", password="pw") as server:
        yield server


def client_for(
    server: EmulatorServer, credentials: Credentials | None = None, settings: ClientSettings = FAST
) -> PortaBillingClient:
    return PortaBillingClient(
        endpoint_of(server.url), credentials or Credentials("api", "pw"), settings
    )


def backend_for(server: EmulatorServer, **kwargs: Any) -> PortaBillingBackend:
    kwargs.setdefault("settings", FAST)
    return PortaBillingBackend(server.url, env=server.env(), **kwargs)


# ---- a scripted server: every request recorded, every answer chosen by the test ------------------


class Scripted:
    """A loopback HTTP server whose answers come from ``respond(method, params, n)``.

    ``respond`` returns (status, payload) or None to drop the connection.
    """

    def __init__(
        self, respond: Callable[[str, dict[str, Any], int], tuple[int, dict[str, Any]] | None]
    ):
        self.respond = respond
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                method = self.path[len("/rest/") :]
                scripted.requests.append((method, dict(self.headers), body))
                answer = scripted.respond(method, body["params"], len(scripted.requests))
                if answer is None:
                    self.close_connection = True
                    return
                data = json.dumps(answer[1]).encode()
                self.send_response(answer[0])
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"portabilling+http://127.0.0.1:{self.httpd.server_address[1]}"

    def methods(self) -> list[str]:
        return [m for m, _, _ in self.requests]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def make(
        respond: Callable[[str, dict[str, Any], int], tuple[int, dict[str, Any]] | None],
    ) -> Scripted:
        servers.append(Scripted(respond))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def login_then(answer: Callable[[str, dict[str, Any], int], tuple[int, dict[str, Any]] | None]):  # type: ignore[no-untyped-def]
    def respond(method: str, params: dict[str, Any], n: int) -> tuple[int, dict[str, Any]] | None:
        if method == "Session/login":
            return 200, {"access_token": f"tok{n}"}
        return answer(method, params, n)

    return respond


# ---- login and the session -----------------------------------------------------------------------


def test_login_with_password_then_calls_carry_the_bearer_token(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(login_then(lambda m, p, n: (200, {"product_list": []})))
    client = PortaBillingClient(endpoint_of(server.url), Credentials("api", "pw"), FAST)
    client.read("Product/get_product_list")
    client.read("Product/get_product_list")
    (login, login_headers, login_body), (call, headers, body), _ = server.requests
    assert login == "Session/login"
    assert login_body == {"params": {"login": "api", "password": "pw"}}
    assert "Authorization" not in login_headers
    assert call == "Product/get_product_list"
    assert headers["Authorization"] == "Bearer tok1"
    assert headers["Content-Type"] == "application/json"
    assert body == {"params": {}}
    assert server.methods().count("Session/login") == 1


def test_login_with_a_token_instead_of_a_password() -> None:
    with EmulatorServer(pbx_state(), login="api", password=None, token="api-token") as server:
        client = client_for(server, Credentials("api", token="api-token"))
        assert client.read("Product/get_product_list")["product_list"]
        assert server.call_counts["Session/login"] == 1


def test_credentials_come_from_the_environment_and_their_absence_is_named() -> None:
    assert Credentials.from_env({"PORTABILLING_LOGIN": "a", "PORTABILLING_TOKEN": "t"}).token == "t"
    with pytest.raises(UsageError, match="PORTABILLING_PASSWORD or PORTABILLING_TOKEN"):
        Credentials.from_env({"PORTABILLING_LOGIN": "a"})
    with pytest.raises(UsageError, match="PORTABILLING_LOGIN"):
        Credentials.from_env({"PORTABILLING_PASSWORD": "secret"})
    assert "secret" not in repr(Credentials("a", "secret"))


def test_an_expired_session_is_renewed_once_and_the_call_succeeds(emulator: EmulatorServer) -> None:
    client = client_for(emulator)
    client.read("Product/get_product_list")
    emulator.expire_tokens()
    assert client.read("Product/get_product_list")["product_list"]
    assert emulator.call_counts["Session/login"] == 1  # renewed with the refresh token
    assert emulator.call_counts["Session/refresh_access_token"] == 1
    assert emulator.call_counts["Product/get_product_list"] == 3  # one refused, then resent


def test_tokens_that_last_a_few_calls_are_renewed_as_often_as_needed() -> None:
    with EmulatorServer(pbx_state(), login="api", password="pw", token_ttl_calls=3) as server:
        client = client_for(server)
        for _ in range(7):
            client.read("Product/get_product_list")
        assert server.call_counts["Session/login"] == 1
        assert server.call_counts["Session/refresh_access_token"] >= 2


def test_a_second_auth_fault_after_a_fresh_login_is_a_clear_error(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(
        login_then(
            lambda m, p, n: (
                500,
                {"faultcode": "Server.Session.check_auth_failed", "faultstring": "no access"},
            )
        )
    )
    client = PortaBillingClient(endpoint_of(server.url), Credentials("api", "pw"), FAST)
    with pytest.raises(PortaBillingAuthError, match="again right after a fresh session") as caught:
        client.read("Customer/get_customer_info", {"i_customer": 1})
    assert caught.value.faultcode == "Server.Session.check_auth_failed"
    assert server.methods() == ["Session/login", "Customer/get_customer_info"] * 2


def test_a_refused_login_names_the_environment_variables(emulator: EmulatorServer) -> None:
    client = client_for(emulator, Credentials("api", "wrong"))
    with pytest.raises(
        PortaBillingAuthError, match="PORTABILLING_LOGIN and PORTABILLING_PASSWORD"
    ) as caught:
        client.read("Product/get_product_list")
    assert "wrong" not in str(caught.value)
    assert emulator.call_counts == {"Session/login": 1}


# ---- faults, retries, paging ---------------------------------------------------------------------


def test_a_fault_is_a_backend_error_carrying_faultcode_and_faultstring(
    emulator: EmulatorServer,
) -> None:
    client = client_for(emulator)
    with pytest.raises(PortaBillingFault) as caught:
        client.read("Customer/get_customer_agreement_info", {"i_customer": 999})
    assert isinstance(caught.value, BackendError)
    assert "not_found" in caught.value.faultcode
    assert "999" in caught.value.faultstring
    assert "Customer/get_customer_agreement_info" in str(caught.value)


def test_reads_are_retried_on_503_with_backoff(scripted: Callable[..., Scripted]) -> None:
    server = scripted(
        login_then(lambda m, p, n: (503, {}) if n <= 3 else (200, {"product_list": []}))
    )
    client = PortaBillingClient(endpoint_of(server.url), Credentials("api", "pw"), FAST)
    assert client.read("Product/get_product_list") == {"product_list": []}
    assert server.methods().count("Product/get_product_list") == 3


def test_reads_give_up_after_the_last_attempt_with_a_clear_error(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(login_then(lambda m, p, n: None))  # every call: connection dropped
    client = PortaBillingClient(endpoint_of(server.url), Credentials("api", "pw"), FAST)
    with pytest.raises(TransportError, match="no usable answer after 4 attempt"):
        client.read("Product/get_product_list")
    assert server.methods().count("Product/get_product_list") == 4


def test_a_read_that_times_out_is_retried() -> None:
    faults = FaultConfig(rate=1.0, kinds=("timeout",), scope="reads", timeout_s=0.6, limit=1)
    with EmulatorServer(pbx_state(), login="api", password="pw", faults=faults) as server:
        client = client_for(server, settings=ClientSettings(read_timeout=0.2, backoff=0.001))
        assert client.read("Product/get_product_list")["product_list"]
        assert server.call_counts["Product/get_product_list"] == 2


def test_a_write_with_a_lost_answer_is_not_resent_by_the_client(emulator: EmulatorServer) -> None:
    emulator.set_faults(FaultConfig(rate=1.0, kinds=("503",), phases=("after",)))
    client = client_for(emulator)
    with pytest.raises(OutcomeUnknown):
        client.write("Account/terminate_account", {"i_account": 1})
    assert emulator.call_counts["Account/terminate_account"] == 1


def test_paging_reads_everything_from_a_server_that_caps_pages() -> None:
    with EmulatorServer(pbx_state(250), login="api", password="pw", page_cap=100) as server:
        client = client_for(server)
        accounts = client.read_list(
            "Account/get_account_list",
            {"i_customer": 46170, "with_aliases": 1, "get_only_real_accounts": 1},
            "account_list",
            with_total=True,
        )
        assert len(accounts) == 250 and len({a["id"] for a in accounts}) == 250
        # With total: 100 + 100 + 50, no empty page needed.
        assert server.call_counts["Account/get_account_list"] == 3
        extensions = client.read_list(
            "Customer/get_extensions_list", {"i_customer": 46170}, "extensions_list"
        )
        assert len(extensions) == 250
        # The answer carries total: 100 + 100 + 50, no empty page needed either.
        assert server.call_counts["Customer/get_extensions_list"] == 3


def test_plain_http_is_refused_for_hosts_that_are_not_loopback() -> None:
    with pytest.raises(UsageError, match="loopback"):
        endpoint_of("portabilling+http://billing.example.com:8443")
    with pytest.raises(UsageError, match="loopback"):
        PortaBillingBackend(
            "portabilling+http://10.1.2.3",
            env={"PORTABILLING_LOGIN": "a", "PORTABILLING_PASSWORD": "b"},
        )
    for url in (
        "portabilling+http://127.0.0.2:8080",
        "portabilling+http://[::1]:80",
        "portabilling+http://localhost",
    ):
        assert endpoint_of(url).base.startswith("http://")
    assert (
        endpoint_of("portabilling+https://billing.example.com").base
        == "https://billing.example.com:443"
    )


def test_a_url_with_credentials_is_refused_without_repeating_them() -> None:
    with pytest.raises(UsageError) as caught:
        endpoint_of("portabilling+https://api:hunter2@billing.example.com")
    assert "hunter2" not in str(caught.value)
    assert "PORTABILLING_PASSWORD" in str(caught.value)


def test_the_client_side_rate_limit_spaces_requests() -> None:
    with EmulatorServer(pbx_state(), login="api", password="pw") as server:
        client = client_for(server, settings=ClientSettings(max_rps=50))
        started = time.monotonic()
        for _ in range(9):
            client.read("Product/get_product_list")
        assert time.monotonic() - started >= 9 / 50 * 0.9  # 10 requests with the login


# ---- the backend: reading ------------------------------------------------------------------------


def test_customers_are_read_concurrently_and_yielded_in_the_order_given() -> None:
    state = pbx_state(5)
    more = [Customer(cid, f"C{cid}", False, (), frozenset()) for cid in (5, 3, 9, 1)]
    state = BillingState(state.products, state.customers + tuple(more), state.accounts)
    with EmulatorServer(state, login="api", password="pw", latency_ms=5) as server:
        backend = backend_for(server, parallelism=4)
        ids = [9, 46170, 404, 1, 5, 3]
        results = list(backend.read_customers(ids, backend.catalogue()))
        backend.close()
    assert [cid for cid, _ in results] == ids
    assert results[2][1] is None
    assert results[1][1] is not None and len(results[1][1].accounts) == 5


def test_the_catalogue_is_read_once_per_backend(emulator: EmulatorServer) -> None:
    backend = backend_for(emulator)
    assert backend.catalogue() is backend.catalogue()
    assert emulator.call_counts["Product/get_product_list"] == 1


# ---- the backend: writing ------------------------------------------------------------------------


def _apply(backend: PortaBillingBackend, *changes: Any) -> list[Any]:
    catalogue = backend.catalogue()
    with backend.customer_session(46170, catalogue) as session:
        session.read()
        session.execute(list(changes))
        return session.done


NEW_EXTENSION = CreateAccount("ph46170x466",
    kind="extension",
    name="John Doe",
    product="Cloud PBX service",
    addons=("Call recording",),
    blocked=False,
)


def test_a_write_whose_connection_dropped_after_the_change_is_read_back_not_repeated(
    emulator: EmulatorServer,
) -> None:
    emulator.set_faults(FaultConfig(rate=1.0, kinds=("drop",), phases=("after",)))
    backend = backend_for(emulator)
    alias = AddAlias("ph46170x466", did="12095550004")
    assert _apply(backend, NEW_EXTENSION, alias) == [NEW_EXTENSION, alias]
    counts = emulator.call_counts
    assert "Account/add_account" not in counts  # billing generates the extension's account
    assert counts["Customer/add_customer_extension"] == 1
    assert counts["Account/add_alias"] == 1
    assert counts["Account/get_account_info"] >= 1  # the read-back
    emulator.set_faults(FaultConfig())
    john = [a for a in emulator.dump_state().accounts if a.id == "ph46170x466"]
    assert john == [
        Account(
            "ph46170x466",
            46170,
            "John Doe",
            "Cloud PBX service",
            ("Call recording",),
            ("12095550004",),
            None,
            OPEN,
        )
    ]
    assert emulator.unlinked_extensions() == []


def test_a_write_that_was_not_made_is_sent_once_more(emulator: EmulatorServer) -> None:
    emulator.set_faults(FaultConfig(rate=1.0, kinds=("drop",), phases=("before",), limit=1))
    backend = backend_for(emulator)
    assert _apply(backend, NEW_EXTENSION) == [NEW_EXTENSION]
    assert emulator.call_counts["Customer/add_customer_extension"] == 2
    assert [a.id for a in emulator.dump_state().accounts].count("ph46170x466") == 1


def test_a_write_whose_outcome_stays_unknown_stops_with_an_error_that_says_so(
    emulator: EmulatorServer,
) -> None:
    emulator.set_faults(FaultConfig(rate=1.0, kinds=("503",), phases=("before",)))
    backend = backend_for(emulator)
    catalogue = backend.catalogue()
    with backend.customer_session(46170, catalogue) as session:
        session.read()
        with pytest.raises(BackendError, match="outcome is unknown .* twice"):
            session.execute([Block("ph46170x100"), NEW_EXTENSION])
        assert session.done == []
    assert emulator.call_counts["Account/update_account"] == 2


def test_a_timed_out_write_is_read_back() -> None:
    faults = FaultConfig(rate=1.0, kinds=("timeout",), phases=("after",), timeout_s=0.5)
    with EmulatorServer(pbx_state(), login="api", password="pw", faults=faults) as server:
        backend = backend_for(server, settings=ClientSettings(read_timeout=0.2, backoff=0.001))
        assert _apply(backend, SetName("ph46170x100", from_="User 0", to="Reception"))
        assert server.call_counts["Customer/update_customer_extension"] == 1
        server.set_faults(FaultConfig())
        assert server.dump_state().accounts[0].name == "Reception"


def test_creating_an_account_that_an_earlier_run_created_adopts_it(
    emulator: EmulatorServer,
) -> None:
    backend = backend_for(emulator)
    catalogue = backend.catalogue()
    with backend.customer_session(46170, catalogue) as session:
        session.read()
        # Another run created the account (but not its extension) after this session read.
        backend.client.write(
            "Account/add_account",
            {
                "account_info": {
                    "i_customer": 46170,
                    "id": "ph46170x466",
                    "i_product": 1,
                    "i_account_role": 1,
                    "billing_model": 1,
                    "assigned_addons": [],
                    "firstname": "John Doe",
                }
            },
        )
        session.execute([NEW_EXTENSION])
        assert session.done == [NEW_EXTENSION]
    assert emulator.unlinked_extensions() == []
    assert [a.id for a in emulator.dump_state().accounts].count("ph46170x466") == 1


def test_an_account_id_held_by_another_customer_is_not_adopted() -> None:
    state = pbx_state()
    other = Customer(51234, "Other", False, (("Cloud PBX service", 0),), frozenset())
    squatter = Account("ph46170x466", 51234, "Squatter", "Cloud PBX service")
    state = BillingState(state.products, state.customers + (other,), state.accounts + (squatter,))
    with EmulatorServer(state, login="api", password="pw") as server:
        backend = backend_for(server)
        with pytest.raises(BackendError, match="already belongs to customer 51234"):
            _apply(backend, NEW_EXTENSION)


def test_an_extension_account_without_a_customer_extension_reads_nameless_and_a_rename_links_it(
    emulator: EmulatorServer,
) -> None:
    backend = backend_for(emulator)
    # A half-made extension: an account with the extension's ID that no customer extension
    # points to (made by hand, or by a first-version run that stopped between its two calls).
    backend.client.write(
        "Account/add_account",
        {
            "account_info": {
                "i_customer": 46170,
                "id": "ph46170x466",
                "i_product": 1,
                "i_account_role": 1,
                "billing_model": 1,
                "assigned_addons": [],
                "firstname": "",
            }
        },
    )
    assert emulator.unlinked_extensions() == ["ph46170x466"]
    state = backend.read_customer(46170, backend.catalogue())
    assert state is not None
    assert [a.name for a in state.accounts if a.id == "ph46170x466"] == [""]
    _apply(backend, SetName("ph46170x466", from_="", to="John Doe"))
    assert emulator.unlinked_extensions() == []


def test_a_refused_extension_create_leaves_nothing_half_made(emulator: EmulatorServer) -> None:
    backend = backend_for(emulator)
    emulator.set_faults(
        FaultConfig(
            rate=1.0,
            kinds=("fault",),
            phases=("before",),
            methods=("Customer/add_customer_extension",),
        )
    )
    with pytest.raises(BackendError, match="injected fault"):
        _apply(backend, NEW_EXTENSION)
    emulator.set_faults(FaultConfig())
    assert emulator.unlinked_extensions() == []
    assert "ph46170x466" not in [a.id for a in emulator.dump_state().accounts]


def test_two_sessions_on_one_customer_exclude_each_other(emulator: EmulatorServer) -> None:
    first = backend_for(emulator)
    second = backend_for(emulator, lock_timeout=0.2)
    catalogue = first.catalogue()
    with first.customer_session(46170, catalogue):
        with (
            pytest.raises(LockTimeout, match="another apply holds the lock of customer 46170"),
            second.customer_session(46170, catalogue),
        ):
            pass
        with second.customer_session(51234, catalogue):
            pass  # another customer is free


def test_applied_changes_go_to_a_local_audit_log(emulator: EmulatorServer, tmp_path: Any) -> None:
    from reconciler.backends.base import AuditEntry

    backend = backend_for(emulator, audit_path=str(tmp_path / "audit.jsonl"))
    catalogue = backend.catalogue()
    entry = AuditEntry(
        "2024-01-01T00:00:00+00:00",
        46170,
        "block",
        "ph46170x100",
        {"op": "block", "account": "ph46170x100"},
        "sha256:x",
        None,
    )
    with backend.customer_session(46170, catalogue) as session:
        session.record([entry])
    assert backend.history() == [entry]
    assert backend.history(46170) == [entry] and backend.history(1) == []
    assert json.loads((tmp_path / "audit.jsonl").read_text())["op"] == "block"


# ---- TLS -----------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Any) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1: a server whose CA is private."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_is_verified_and_a_private_ca_is_given_by_environment(
    certificate: tuple[str, str],
) -> None:
    cert, _ = certificate
    with EmulatorServer(pbx_state(), login="api", password="pw", tls=certificate) as server:
        assert server.url.startswith("portabilling+https://127.0.0.1:")
        untrusted = PortaBillingBackend(server.url, env=server.env(), settings=FAST)
        with pytest.raises(BackendError, match="certificate verify failed.*PORTABILLING_CA_BUNDLE"):
            untrusted.catalogue()
        assert server.calls == 0  # refused at the handshake, never retried into the server
        trusted = PortaBillingBackend(
            server.url, env={**server.env(), "PORTABILLING_CA_BUNDLE": cert}
        )
        assert trusted.catalogue().by_name("Call recording") is not None


def test_a_ca_bundle_that_does_not_exist_is_a_usage_error() -> None:
    with pytest.raises(
        UsageError, match="PORTABILLING_CA_BUNDLE=/no/such.pem: no such CA bundle file"
    ):
        ClientSettings.from_env({"PORTABILLING_CA_BUNDLE": "/no/such.pem"})
    assert ClientSettings.from_env({}).verify is True
    with pytest.raises(UsageError, match="PORTABILLING_READ_TIMEOUT"):
        ClientSettings.from_env({"PORTABILLING_READ_TIMEOUT": "soon"})
    assert (
        ClientSettings.from_env(
            {"PORTABILLING_READ_TIMEOUT": "2.5", "PORTABILLING_MAX_RPS": "20"}
        ).read_timeout
        == 2.5
    )
