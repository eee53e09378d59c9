"""A client for PortaBilling's JSON API: transport, retries, faults, paging, rate limit.

Every call is ``POST {base}/rest/{Service}/{method}`` with the body ``{"params": {...}}``.
Reads are retried with exponential backoff when the server cannot be reached or a gateway
answers 502/503/504. Writes are sent once: when their outcome is unknown (no answer, or an answer
that cannot be read) the client raises ``OutcomeUnknown`` and the caller reads billing back to
decide (see ``reconciler.backends.portabilling.writes``). The session (login once, refresh
after) lives in ``reconciler.backends.portabilling.session``; the endpoint, credentials and
settings in ``config``.

Credentials come from the environment only, and never appear in a message, an exception or a
log line: errors name the method, never the parameters, and fault strings are scrubbed of the
secrets before they are shown.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, tzinfo
from typing import Any

import requests
import requests.auth

from reconciler.backends.portabilling import fields as wire
from reconciler.backends.portabilling.answers import (
    NOT_JSON,
    object_in,
    objects_in,
    shape,
    total_of,
)
from reconciler.backends.portabilling.config import (
    ENV_CA_BUNDLE,
    ENV_LOGIN,
    ENV_PASSWORD,
    ENV_TIMEZONE,
    ENV_TOKEN,
    ClientSettings,
    Credentials,
    Endpoint,
    RateLimiter,
    endpoint_of,
    is_loopback,
    scrub,
    zone_named,
)
from reconciler.backends.portabilling.deadline import DeadlineExceeded, deadline, watched_adapter
from reconciler.backends.portabilling.errors import (
    BillingReadOnly,
    LoginLockedOut,
    LoginRefused,
    MalformedAnswer,
    OutcomeUnknown,
    PortaBillingAuthError,
    PortaBillingFault,
    RedirectRefused,
    Transient,
    TransportError,
)
from reconciler.backends.portabilling.session import LOGIN_METHOD, REFRESH_METHOD, TokenSession
from reconciler.errors import BackendError, ReconcilerError

__all__ = [
    "BillingReadOnly",
    "ClientSettings",
    "Credentials",
    "Endpoint",
    "LoginLockedOut",
    "LoginRefused",
    "MalformedAnswer",
    "OutcomeUnknown",
    "PortaBillingAuthError",
    "PortaBillingClient",
    "PortaBillingFault",
    "RedirectRefused",
    "TransportError",
    "object_in",
    "objects_in",
    "endpoint_of",
]

log = logging.getLogger(__name__)

# Sends of one call with a refused session: the first, and after each of two renewals.
AUTH_ATTEMPTS = 3

TRANSIENT_STATUSES = frozenset({502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 305, 307, 308})

Send = Callable[[str, dict[str, Any], "str | None"], dict[str, Any]]


def _describe(exc: BaseException) -> str:
    """A short reason for a failed request, free of URLs and parameters."""
    if isinstance(exc, Transient):
        return str(exc)
    if isinstance(exc, DeadlineExceeded):
        return f"deadline passed: {exc}"
    if isinstance(exc, requests.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if _not_sent(exc):
        return "connection refused"
    if isinstance(exc, requests.ConnectionError):
        return "connection dropped"
    return type(exc).__name__


def _not_sent(exc: BaseException) -> bool:
    """True when the request certainly never reached the server (so even a write may be resent)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    reason = exc.args[0] if exc.args else None
    inner = getattr(reason, "reason", reason)
    return type(inner).__name__ in ("NewConnectionError", "NameResolutionError")


class _Bearer(requests.auth.AuthBase):
    """The session token as an auth object, so a ~/.netrc entry can never replace it."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class PortaBillingClient:
    """Thread-safe: a requests.Session per thread, one shared API session (token)."""

    def __init__(
        self, endpoint: Endpoint, credentials: Credentials, settings: ClientSettings | None = None
    ):
        self.endpoint = endpoint
        self.credentials = credentials
        self.settings = settings or ClientSettings()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()  # guards the sessions list and the counts
        self._counts: Counter[str] = Counter()
        self._rate = RateLimiter(self.settings.max_rps)
        self.session = TokenSession(self._login, self._refresh, zone=self._zone_hint)
        # Set by the first read-only fault: from then on no write leaves this client.
        self.read_only: BillingReadOnly | None = None
        self._zone: tuple[tzinfo, str] | None = None
        self._zone_lock = threading.Lock()  # one thread asks the server; the others wait for it

    # -- the server's time zone --

    def _zone_hint(self) -> tzinfo:
        """The zone to read a login's expires_at in: the one learned, else the setting, else UTC
        (a wrong guess only makes the token renew when refused; see session.py)."""
        if self._zone is not None:
            return self._zone[0]
        name = self.settings.time_zone
        return zone_named(name, ENV_TIMEZONE) if name else UTC

    def server_zone(self) -> tuple[tzinfo, str]:
        """The server's time zone, in which add-on dates are written, and where that came from:
        ``Generic/get_session_data``'s time_zone_name when it says (asked once per client),
        else PORTABILLING_TIMEZONE, else UTC."""
        with self._zone_lock:
            if self._zone is None:
                self._zone = self._ask_zone()
            return self._zone

    def _ask_zone(self) -> tuple[tzinfo, str]:
        said = None
        try:
            said = self.read(wire.SESSION_DATA_METHOD).get(wire.SESSION_TIME_ZONE)
        except (PortaBillingFault, MalformedAnswer) as exc:
            if isinstance(exc, BillingReadOnly | PortaBillingAuthError):
                raise
            log.info("PortaBilling %s: %s", wire.SESSION_DATA_METHOD, exc)
        found: tuple[tzinfo, str] | None = None
        if isinstance(said, str) and said.strip():
            try:
                zone = zone_named(said.strip(), wire.SESSION_TIME_ZONE)
                found = (zone, f"{wire.SESSION_DATA_METHOD} says {said.strip()}")
            except ReconcilerError:
                log.info("PortaBilling named a time zone this machine does not know: %r", said)
        if found is None and self.settings.time_zone:
            zone = zone_named(self.settings.time_zone, ENV_TIMEZONE)
            found = (zone, f"{ENV_TIMEZONE}={self.settings.time_zone}")
        if found is None:
            found = (UTC, f"UTC (neither {wire.SESSION_DATA_METHOD} nor {ENV_TIMEZONE} says)")
        return found

    # -- bookkeeping --

    @property
    def call_counts(self) -> dict[str, int]:
        """HTTP requests sent, per method (retries included)."""
        with self._lock:
            return dict(self._counts)

    @property
    def calls(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    # -- public calls --

    def read(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A call that changes nothing: retried on transport errors and 502/503/504."""
        return self._authorised(method, params or {}, self._send_read)

    def write(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """A call that changes billing: sent once. Raises OutcomeUnknown when the answer is lost,
        and BillingReadOnly (without sending) once the server said it accepts no writes."""
        if self.read_only is not None:
            raise self.read_only
        return self._authorised(method, params, self._send_write)

    def read_list(
        self, method: str, params: dict[str, Any], key: str, *, with_total: bool = False
    ) -> list[dict[str, Any]]:
        """Every item of a paged list; ``limit`` goes with every ``offset``.

        A server may cap the page size below ``limit``: reading goes on until ``total`` items
        arrived (when the answer carries it) or a page comes back empty. ``with_total`` also asks
        for the total (``get_total: 1``), for the calls whose contract takes that parameter.
        """
        return list(self.iter_list(method, params, key, with_total=with_total))

    def iter_list(
        self, method: str, params: dict[str, Any], key: str, *, with_total: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The items of a paged list as they arrive: a caller that stops early reads no more
        pages than it needed."""
        count = 0
        previous: list[dict[str, Any]] | None = None
        while True:
            page_params = {**params, "limit": self.settings.page_size, "offset": count}
            if with_total:
                page_params["get_total"] = 1
            answer = self.read(method, page_params)
            page = objects_in(answer, key, method)
            if page and page == previous:
                raise MalformedAnswer(method, f"the same {key} page again for a later offset")
            yield from page
            count += len(page)
            total = total_of(answer, method)
            if not page or (total is not None and count >= total):
                return
            previous = page

    # -- the session --

    def _authorised(self, method: str, params: dict[str, Any], send: Send) -> dict[str, Any]:
        token = self.session.token()
        for attempt in range(AUTH_ATTEMPTS):
            try:
                return send(method, params, token)
            except PortaBillingFault as fault:
                if not fault.is_auth:
                    raise
                refused = fault
            log.info(
                "PortaBilling refused the session on %s (%s); renewing it",
                method,
                refused.faultcode,
            )
            # An auth fault means the call was refused before anything happened: resending is
            # safe. A renewed token refused again is usually a missing permission; but another
            # thread may have used it up or replaced it meanwhile (a server may limit a token's
            # calls), so it is renewed once more when that costs no login.
            if attempt + 1 == AUTH_ATTEMPTS or (attempt and not self.session.renews_cheaply(token)):
                break
            token = self.session.renew(stale=token)
        raise PortaBillingAuthError(
            method,
            refused.faultcode,
            refused.faultstring,
            f"PortaBilling refused {method} again right after a fresh session "
            f"[{refused.faultcode}]: does the API user ({ENV_LOGIN}) have the permission?",
        ) from None

    def _login(self) -> dict[str, Any]:
        # Sent like a write: a login that may have reached the server is never repeated, since
        # each failed attempt counts towards the server's lockout.
        try:
            return self._send_write(LOGIN_METHOD, self.credentials.login_params(), None)
        except PortaBillingFault as fault:
            if wire.fault_matches(fault.faultcode, wire.LOCKOUT_FAULT_MARKERS):
                raise LoginLockedOut(
                    LOGIN_METHOD,
                    fault.faultcode,
                    fault.faultstring,
                    f"the server at {self.endpoint.host} has locked the login out after repeated "
                    f"failed logins [{fault.faultcode}]; nothing was retried. Ask the billing "
                    f"administrator to unlock it, then check {ENV_LOGIN} and {ENV_PASSWORD} "
                    f"(or {ENV_TOKEN})",
                ) from None
            raise LoginRefused(
                LOGIN_METHOD,
                fault.faultcode,
                fault.faultstring,
                "PortaBilling refused the login: login failed for user "
                f"{self.credentials.login} at {self.endpoint.host} [{fault.faultcode}] "
                f"(check {ENV_LOGIN} and {ENV_PASSWORD}/{ENV_TOKEN}); not retried, so the server "
                "does not lock it out",
            ) from None
        except OutcomeUnknown as lost:
            raise TransportError(
                f"PortaBilling {LOGIN_METHOD} at {self.endpoint.base}: no usable answer "
                f"({lost.reason}); not retried, so the server does not count it twice"
            ) from None

    def _refresh(self, refresh_token: str) -> dict[str, Any]:
        return self._send_write(REFRESH_METHOD, {"refresh_token": refresh_token}, None)

    # -- sending --

    def _send_read(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        attempts = max(1, self.settings.read_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return self._exchange(method, params, token)
            except requests.exceptions.SSLError as exc:
                raise self._tls_error(exc) from None
            except (Transient, requests.ConnectionError, requests.Timeout) as exc:
                if attempt == attempts:
                    raise TransportError(
                        f"PortaBilling {method} at {self.endpoint.base}: no usable answer after "
                        f"{attempts} attempt(s) ({_describe(exc)})"
                    ) from None
                log.info("PortaBilling %s: %s; retrying", method, _describe(exc))
                self._back_off(attempt)
        raise AssertionError("unreachable")

    def _send_write(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        attempts = max(1, self.settings.read_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return self._exchange(method, params, token)
            except requests.exceptions.SSLError as exc:
                # The handshake comes before the request: nothing was sent.
                raise self._tls_error(exc) from None
            except MalformedAnswer as garbled:
                # A 200 or a 5xx that cannot be read: the server got the request and may have
                # acted on it. A 4xx is a refusal.
                if garbled.status == 200 or garbled.status >= 500:
                    raise OutcomeUnknown(method, f"unreadable answer: {garbled.what}") from None
                raise
            except (Transient, requests.ConnectionError, requests.Timeout) as exc:
                # Only a request that never left may be sent again blindly.
                if not _not_sent(exc):
                    raise OutcomeUnknown(method, _describe(exc)) from None
                if attempt == attempts:
                    raise TransportError(
                        f"PortaBilling {method} at {self.endpoint.base}: cannot connect "
                        f"({_describe(exc)}); nothing was sent"
                    ) from None
                self._back_off(attempt)
        raise AssertionError("unreachable")

    def _tls_error(self, exc: requests.exceptions.SSLError) -> BackendError:
        # Retrying cannot help a certificate that does not verify; say what would.
        text = str(exc)
        reason = (
            "certificate verify failed"
            if "CERTIFICATE_VERIFY_FAILED" in text
            else "TLS handshake failed"
        )
        return BackendError(
            f"PortaBilling at {self.endpoint.base}: {reason}. If the server's certificate comes "
            f"from a private CA, set {ENV_CA_BUNDLE} to a file holding that CA's certificate"
        )

    def _back_off(self, attempt: int) -> None:
        delay = self.settings.backoff * (2 ** (attempt - 1))
        time.sleep(delay * (0.5 + random.random()))

    def _exchange(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        self._rate.wait()
        with self._lock:
            self._counts[method] += 1
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        with deadline(self.settings.total_timeout):
            response = self._http().post(
                f"{self.endpoint.base}/rest/{method}",
                data=json.dumps({"params": params}),
                headers=headers,
                auth=_Bearer(token) if token is not None else None,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                verify=self.settings.verify,
                # A redirect would carry the credentials (or a write) somewhere else.
                allow_redirects=False,
            )
        return self._interpret(method, response)

    def _interpret(self, method: str, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        if status in TRANSIENT_STATUSES:
            raise Transient(status)
        if status in REDIRECT_STATUSES or 300 <= status < 400:
            raise RedirectRefused(method, status, self.endpoint.base)
        try:
            body = response.json()
        except ValueError:  # HTML, plain text, truncated JSON
            body = NOT_JSON
        if status == 200 and isinstance(body, dict):
            return body
        if isinstance(body, dict) and "faultcode" in body:
            raise self._fault(method, body)
        if status in (401, 403):
            raise PortaBillingFault(method, f"HTTP {status} auth_failed", "not authorised")
        raise MalformedAnswer(method, shape(status, body, response), status=status)

    def _fault(self, method: str, body: dict[str, Any]) -> PortaBillingFault:
        secrets = self.secrets()
        code = scrub(str(body["faultcode"]), secrets)
        text = scrub(str(body.get("faultstring", "")), secrets)
        if wire.fault_matches(code, wire.READ_ONLY_FAULT_MARKERS):
            read_only = BillingReadOnly(method, code, text, self.endpoint.host)
            self.read_only = read_only
            return read_only
        return PortaBillingFault(method, code, text)

    def secrets(self) -> list[str]:
        """What no message may show: the password or API token, and every session token."""
        # Longest first: a short password inside a token must not leave the rest of it shown.
        found = [*self.credentials.secrets(), *self.session.secrets()]
        return sorted(found, key=len, reverse=True)

    def _http(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # Retries are ours (reads only); urllib3 must never resend a write on its own.
            adapter = watched_adapter(pool_connections=1, pool_maxsize=2, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            # Proxies from the environment serve real servers; a loopback emulator needs none.
            session.trust_env = not is_loopback(self.endpoint.host)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session
