"""``EmulatorServer``: PortaBilling's JSON API on a loopback port, for tests and demos.

One call goes: bearer token (sessions.py) -> params against the method's declared shape
(validation.py) -> the server's operating mode (a read-only site refuses writes) -> the method in
one transaction (store.py). Injected failures (faults.py) and added latency make a client's
retries, read-backs and re-logins happen on purpose; test hooks expire tokens and add-ons. The
wire profile (profile.py) says how answers look where servers differ.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections import Counter
from typing import Any, Self

from reconciler.emulator.db import Fault
from reconciler.emulator.faults import FaultConfig, FaultInjector, Injection
from reconciler.emulator.loopback import require_loopback
from reconciler.emulator.profile import WireProfile, wire_profile
from reconciler.emulator.sessions import (
    DEFAULT_TTL_SECONDS,
    LOCKOUT_AFTER,
    Sessions,
    operating_mode,
)
from reconciler.emulator.shapes import WRITE_METHODS
from reconciler.emulator.store import Store
from reconciler.emulator.validation import Shapes
from reconciler.emulator.wire import Handler, HTTPServer, internal_fault
from reconciler.statefile import BillingState

LOGIN_METHOD = "Session/login"
REFRESH_METHOD = "Session/refresh_access_token"
SESSION_DATA_METHOD = "Generic/get_session_data"

# Compiled once for every server of the process: compiling is the expensive part.
_SHAPES = Shapes()


class EmulatorServer:
    """A PortaBilling emulator on ``host:port`` (port 0 picks a free one); ``host`` must be a
    loopback address (``NotLoopback`` otherwise).

    Use as a context manager, or ``start()`` / ``stop()``. ``url`` is the backend URL to give
    the reconciler; ``env()`` the credentials environment it expects. ``read_only`` (True, or
    ``"read_only_mode"``, ``"standalone_mode"``, ``"secondary_site"``) makes every write a fault;
    ``legacy_blocking_field=False`` drops ``customer_info.extension_blocking``.

    ``wire`` ("v3", the realistic default; "v2"; or a ``WireProfile``) with ``variants``
    (keywords named after WireProfile's fields: ``blocked_by``, ``tokens``,
    ``refresh_without_token``, ``auth_faults``, ``read_only_faults``, ``agreement_shape``,
    ``account_id_format``, ``new_account_status``, ``add_alias_answer``, ``release_dids``,
    ``time_zone``, ``session_time_zone``) says how it answers where servers differ.
    """

    def __init__(
        self,
        state: BillingState | None = None,
        *,
        db_path: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        page_cap: int = 100,
        token_ttl_calls: int | None = None,
        token_ttl_seconds: float | None = DEFAULT_TTL_SECONDS,
        refresh_ttl_seconds: float = 86400.0,
        lockout_after: int = LOCKOUT_AFTER,
        latency_ms: float = 0.0,
        faults: FaultConfig | None = None,
        login: str = "emulator",
        password: str | None = "emulator",
        token: str | None = None,
        tls: tuple[str, str] | None = None,
        read_only: bool | str | None = None,
        legacy_blocking_field: bool = True,
        wire: str | WireProfile | None = None,
        **variants: Any,
    ) -> None:
        require_loopback(host)
        self.profile = wire_profile(wire, **variants)
        self.mode = operating_mode(read_only)
        self.store = Store(
            db_path or ":memory:",
            page_cap=page_cap,
            legacy_blocking_field=legacy_blocking_field,
            profile=self.profile,
        )
        self.lock = threading.Lock()  # one call at a time touches the database
        if state is not None:
            self.store.load_state(state)
        self.host = host
        self.port = port
        self.login = login
        self.password = password
        self.token = token
        self.latency_ms = latency_ms
        self.sessions = Sessions(
            login=login,
            password=password,
            token=token,
            ttl_seconds=token_ttl_seconds,
            ttl_calls=token_ttl_calls,
            refresh_ttl_seconds=refresh_ttl_seconds,
            lockout_after=lockout_after,
            profile=self.profile,
        )
        self._injector = FaultInjector(faults or FaultConfig())
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self.tls = tls  # (certificate file, key file): serve https, for TLS verification tests
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- life cycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        httpd = HTTPServer((self.host.strip("[]"), self.port), Handler, family=family)
        httpd.emulator = self
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="pb-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.store.close()

    @property
    def url(self) -> str:
        host = self.host.strip("[]")
        host = f"[{host}]" if ":" in host else host
        scheme = "portabilling+https" if self.tls is not None else "portabilling+http"
        return f"{scheme}://{host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The credentials environment the emulator accepts (no PORTABILLING_BLOCKING_ROLES: a
        client must manage with what the server tells)."""
        env = {"PORTABILLING_LOGIN": self.login}
        if self.password is not None:
            env["PORTABILLING_PASSWORD"] = self.password
        elif self.token is not None:
            env["PORTABILLING_TOKEN"] = self.token
        return env

    # ---- state ---------------------------------------------------------------------------------

    def load_state(self, state: BillingState) -> None:
        with self.lock:
            self.store.load_state(state)

    def dump_state(self) -> BillingState:
        with self.lock:
            return self.store.dump_state()

    def invariant_problems(self) -> list[str]:
        with self.lock:
            return self.store.invariant_problems()

    def unlinked_extensions(self) -> list[str]:
        with self.lock:
            return self.store.unlinked_extensions()

    def expire_addon(self, account_id: str, product_name: str) -> None:
        """End an add-on's assignment a day ago: billing still lists it, with its past
        ``addon_effective_to``, but it is no longer assigned (KeyError when there is none)."""
        with self.lock:
            self.store.expire_addon(account_id, product_name)

    def set_read_only(self, read_only: bool | str | None) -> None:
        """Switch the operating mode while running (e.g. a site that fails over mid-apply)."""
        self.mode = operating_mode(read_only)

    # ---- counts, faults, sessions --------------------------------------------------------------

    @property
    def call_counts(self) -> dict[str, int]:
        """Calls received, by method (every call, answered or refused)."""
        with self._counts_lock:
            return dict(self._counts)

    @property
    def calls(self) -> int:
        with self._counts_lock:
            return sum(self._counts.values())

    @property
    def logins(self) -> int:
        return self.call_counts.get(LOGIN_METHOD, 0)

    @property
    def refreshes(self) -> int:
        return self.call_counts.get(REFRESH_METHOD, 0)

    @property
    def write_counts(self) -> dict[str, int]:
        """Write calls received, by method."""
        return {m: n for m, n in self.call_counts.items() if m in WRITE_METHODS}

    @property
    def failed_logins(self) -> dict[str, int]:
        return self.sessions.failed_logins

    def reset_counts(self) -> None:
        with self._counts_lock:
            self._counts.clear()

    def set_faults(self, faults: FaultConfig) -> None:
        self._injector = FaultInjector(faults)

    @property
    def injected(self) -> dict[tuple[str, str], int]:
        """Failures injected so far under the current FaultConfig: (kind, phase) -> count."""
        return dict(self._injector.injected)

    def set_latency(self, latency_ms: float) -> None:
        self.latency_ms = latency_ms

    def expire_tokens(self) -> None:
        """Make every access token invalid: a client's next call gets an auth fault (refresh
        tokens stay good, so the client can renew without logging in)."""
        self.sessions.expire_access_tokens()

    def expire_refresh_tokens(self) -> None:
        self.sessions.expire_refresh_tokens()

    def reset_lockout(self) -> None:
        self.sessions.reset_lockout()

    # ---- one call ------------------------------------------------------------------------------

    def count_call(self, method: str) -> None:
        with self._counts_lock:
            self._counts[method] += 1

    @property
    def injected_timeout_s(self) -> float:
        return self._injector.config.timeout_s

    def decide(self, method: str) -> Injection | None:
        return self._injector.decide(method, method in WRITE_METHODS)

    def answer(
        self, method: str, params: dict[str, Any], authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of one call; never raises."""
        try:
            if method == LOGIN_METHOD:
                return self._login(params)
            return 200, self._answer(method, params, authorization)
        except Fault as fault:
            return 500, {"faultcode": fault.faultcode, "faultstring": fault.faultstring}
        except Exception as exc:  # noqa: BLE001 - a bug here is a server fault, not a dropped call
            return 500, internal_fault(method, exc)

    def _login(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            _SHAPES.check(LOGIN_METHOD, params)
            return 200, self.sessions.login(params)
        except Fault as fault:
            return 500, {"faultcode": fault.faultcode, "faultstring": fault.faultstring}

    def _answer(
        self, method: str, params: dict[str, Any], authorization: str | None
    ) -> dict[str, Any]:
        if method == REFRESH_METHOD:
            _SHAPES.check(method, params)
            return self.sessions.refresh(params)
        self.sessions.use(authorization)
        _SHAPES.check(method, params)
        mode = self.mode
        if method == SESSION_DATA_METHOD:
            return self._session_data()
        faultcode = mode.faultcode(self.profile.read_only_faults)
        if faultcode is not None and method in WRITE_METHODS:
            raise Fault(faultcode, mode.faultstring)
        with self.lock:
            return self.store.call(method, params)

    def _session_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"operating_mode": self.mode.name}
        if self.profile.session_time_zone:
            # Unevidenced name: public dumps show only customer_info.i_time_zone, a number
            # whose names table is not public. See docs/emulator.md.
            data["time_zone_name"] = self.profile.time_zone
        return data
