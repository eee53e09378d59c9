"""A client for PortaBilling's JSON API: login, faults, retries, paging, rate limit.

Every call is ``POST {base}/rest/{Service}/{method}`` with the body ``{"params": {...}}``.
Reads are retried with exponential backoff when the server cannot be reached or a gateway
answers 502/503/504. Writes are sent once: when their outcome is unknown the client raises
``OutcomeUnknown`` and the caller reads billing back to decide (see the PortaBilling backend).

Credentials come from the environment only, and never appear in a message, an exception or a
log line: errors name the method, never the parameters, and fault strings are scrubbed of the
secrets before they are shown.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.auth
from requests.adapters import HTTPAdapter

from reconciler.backends import pb_fields
from reconciler.errors import BackendError, UsageError

log = logging.getLogger(__name__)

ENV_LOGIN = "PORTABILLING_LOGIN"
ENV_PASSWORD = "PORTABILLING_PASSWORD"
ENV_TOKEN = "PORTABILLING_TOKEN"
ENV_CA_BUNDLE = "PORTABILLING_CA_BUNDLE"
ENV_MAX_RPS = "PORTABILLING_MAX_RPS"
ENV_CONNECT_TIMEOUT = "PORTABILLING_CONNECT_TIMEOUT"
ENV_READ_TIMEOUT = "PORTABILLING_READ_TIMEOUT"
ENV_PAGE_SIZE = "PORTABILLING_PAGE_SIZE"

LOGIN_METHOD = "Session/login"
TRANSIENT_STATUSES = frozenset({502, 503, 504})


# ---- errors ---------------------------------------------------------------------------------------


class PortaBillingFault(BackendError):
    """The server answered a call with a fault (HTTP 500 ``{"faultcode", "faultstring"}``)."""

    def __init__(self, method: str, faultcode: str, faultstring: str) -> None:
        super().__init__(f"PortaBilling {method} failed: {faultstring} [{faultcode}]")
        self.method = method
        self.faultcode = faultcode
        self.faultstring = faultstring

    @property
    def is_auth(self) -> bool:
        return pb_fields.fault_matches(self.faultcode, pb_fields.AUTH_FAULT_MARKERS)

    @property
    def is_not_found(self) -> bool:
        return pb_fields.fault_matches(self.faultcode, pb_fields.NOT_FOUND_FAULT_MARKERS)


class PortaBillingAuthError(PortaBillingFault):
    """Logging in failed, or the server refused a call even with a fresh session."""

    def __init__(self, method: str, faultcode: str, faultstring: str, message: str) -> None:
        super().__init__(method, faultcode, faultstring)
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


class TransportError(BackendError):
    """No usable answer: the server could not be reached, timed out, or a gateway failed."""


class OutcomeUnknown(BackendError):
    """A write was sent, but whether billing made the change is unknown (no usable answer)."""

    def __init__(self, method: str, reason: str) -> None:
        super().__init__(
            f"PortaBilling {method}: no answer ({reason}); the change may or may not have been made"
        )
        self.method = method
        self.reason = reason


class _Transient(Exception):
    """A gateway answered 502/503/504: the request may not have reached PortaBilling."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


# ---- where and who ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A PortaBilling server: the base URL of its API and a name fit for local file names."""

    base: str
    host: str
    port: int

    @property
    def key(self) -> str:
        safe = "".join(ch if ch.isalnum() or ch in ".-" else "_" for ch in self.host)
        return f"{safe}_{self.port}"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_backend_url(url: str) -> Endpoint:
    """``portabilling+https://HOST[:PORT][/PREFIX]`` -> the API's base URL.

    Plain ``portabilling+http://`` is accepted for loopback hosts only: anywhere else the
    password would cross the network in clear text.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("portabilling+https", "portabilling+http"):
        raise UsageError("a PortaBilling backend URL starts with portabilling+https://")
    if "@" in parts.netloc:
        # The URL is not repeated here: it carries what looks like credentials.
        raise UsageError(
            "the PortaBilling backend URL must not carry credentials; set "
            f"{ENV_LOGIN} and {ENV_PASSWORD} (or {ENV_TOKEN}) in the environment instead"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"{url}: a PortaBilling backend URL takes no query or fragment")
    host = parts.hostname
    if not host:
        raise UsageError(f"{url}: the URL names no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{url}: not a valid port ({exc})") from None
    http = scheme == "portabilling+http"
    if http and not is_loopback(host):
        raise UsageError(
            f"{url}: plain http is accepted only for loopback hosts (127.0.0.0/8, ::1, localhost); "
            "use portabilling+https:// for a real server"
        )
    port = port or (80 if http else 443)
    netloc = f"[{host}]" if ":" in host else host
    base = f"{'http' if http else 'https'}://{netloc}:{port}{parts.path.rstrip('/')}"
    return Endpoint(base=base, host=host, port=port)


@dataclass(frozen=True)
class Credentials:
    """The API user: a login with a password or an API token. The secret is never shown."""

    login: str = field(repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if env is None else env
        login = env.get(ENV_LOGIN, "")
        password = env.get(ENV_PASSWORD) or None
        token = env.get(ENV_TOKEN) or None
        if not login or not (password or token):
            missing = ENV_LOGIN if not login else f"{ENV_PASSWORD} or {ENV_TOKEN}"
            raise UsageError(
                f"PortaBilling credentials are missing ({missing} is not set): set {ENV_LOGIN} "
                f"and {ENV_PASSWORD} (or {ENV_TOKEN}) in the environment"
            )
        return cls(login, password, token)

    def login_params(self) -> dict[str, str]:
        if self.password is not None:
            return {"login": self.login, "password": self.password}
        return {"login": self.login, "token": self.token or ""}

    def secrets(self) -> list[str]:
        return [s for s in (self.password, self.token) if s]


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


# ---- settings -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientSettings:
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    read_attempts: int = 4  # reads: 1 try + 3 retries, waiting backoff, 2x, 4x
    backoff: float = 0.05
    page_size: int = 500
    max_rps: float = 0.0  # 0 = no client-side limit
    verify: bool | str = True  # False never comes from the environment; True or a CA bundle path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ClientSettings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, attr, kind in (
            (ENV_CONNECT_TIMEOUT, "connect_timeout", float),
            (ENV_READ_TIMEOUT, "read_timeout", float),
            (ENV_MAX_RPS, "max_rps", float),
            (ENV_PAGE_SIZE, "page_size", int),
        ):
            if env.get(name):
                values[attr] = _positive(name, env[name], kind, allow_zero=attr == "max_rps")
        bundle = env.get(ENV_CA_BUNDLE)
        if bundle:
            if not os.path.isfile(bundle):
                raise UsageError(f"{ENV_CA_BUNDLE}={bundle}: no such CA bundle file")
            values["verify"] = bundle
        values.update(overrides)
        return replace(cls(), **values)


def _positive(name: str, text: str, kind: Callable[[str], Any], *, allow_zero: bool) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{name}={text!r} must be {'zero or ' if allow_zero else ''}positive")
    return value


class _RateLimiter:
    """Spaces request starts at least 1/max_rps apart, across all threads."""

    def __init__(self, max_rps: float) -> None:
        self.interval = 1.0 / max_rps if max_rps > 0 else 0.0
        self.lock = threading.Lock()
        self.next_slot = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


# ---- the client -----------------------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    """A short reason for a failed request, free of URLs and parameters."""
    if isinstance(exc, _Transient):
        return str(exc)
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
    """Thread-safe: a requests.Session per thread, one shared access token."""

    def __init__(
        self, endpoint: Endpoint, credentials: Credentials, settings: ClientSettings | None = None
    ):
        self.endpoint = endpoint
        self.credentials = credentials
        self.settings = settings or ClientSettings()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()  # guards the token, the sessions list and the counts
        self._login_lock = threading.Lock()
        self._access_token: str | None = None
        self._counts: Counter[str] = Counter()
        self._rate = _RateLimiter(self.settings.max_rps)

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
        """A call that changes billing: sent once. Raises OutcomeUnknown when the answer is lost."""
        return self._authorised(method, params, self._send_write)

    def read_list(
        self, method: str, params: dict[str, Any], key: str, *, with_total: bool = False
    ) -> list[dict[str, Any]]:
        """Every item of a paged list. A server may cap the page size below ``limit``: reading
        goes on until ``total`` items arrived (when asked for) or a page comes back empty."""
        items: list[dict[str, Any]] = []
        while True:
            page_params = {**params, "limit": self.settings.page_size, "offset": len(items)}
            if with_total:
                page_params["get_total"] = 1
            answer = self.read(method, page_params)
            page = answer.get(key) or []
            items.extend(page)
            total = answer.get("total") if with_total else None
            if not page or (total is not None and len(items) >= int(total)):
                return items

    # -- authorisation --

    def _authorised(
        self,
        method: str,
        params: dict[str, Any],
        send: Callable[[str, dict[str, Any], str | None], dict[str, Any]],
    ) -> dict[str, Any]:
        token = self._token()
        try:
            return send(method, params, token)
        except PortaBillingFault as fault:
            if not fault.is_auth:
                raise
            log.info(
                "PortaBilling refused the session on %s (%s); logging in again",
                method,
                fault.faultcode,
            )
        # An auth fault means the call was refused before anything happened: resending is safe.
        token = self._relogin(stale=token)
        try:
            return send(method, params, token)
        except PortaBillingFault as fault:
            if not fault.is_auth:
                raise
            raise PortaBillingAuthError(
                method,
                fault.faultcode,
                fault.faultstring,
                f"PortaBilling refused {method} again right after a fresh login "
                f"[{fault.faultcode}]: does the API user ({ENV_LOGIN}) have the permission?",
            ) from None

    def _token(self) -> str:
        with self._lock:
            token = self._access_token
        return token if token is not None else self._relogin(stale=None)

    def _relogin(self, stale: str | None) -> str:
        with self._login_lock:
            with self._lock:
                current = self._access_token
            # Another thread may have logged in while this one waited: use its token.
            if current is not None and current != stale:
                return current
            token = self._login()
            with self._lock:
                self._access_token = token
            return token

    def _login(self) -> str:
        try:
            answer = self._send_read(LOGIN_METHOD, self.credentials.login_params(), None)
        except PortaBillingFault as fault:
            raise PortaBillingAuthError(
                LOGIN_METHOD,
                fault.faultcode,
                fault.faultstring,
                f"PortaBilling refused the login [{fault.faultcode}]: check {ENV_LOGIN} and "
                f"{ENV_PASSWORD} (or {ENV_TOKEN})",
            ) from None
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise BackendError(f"PortaBilling {LOGIN_METHOD} answered without an access_token")
        return token

    # -- sending --

    def _send_read(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        attempts = max(1, self.settings.read_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return self._exchange(method, params, token)
            except requests.exceptions.SSLError as exc:
                raise self._tls_error(exc) from None
            except (_Transient, requests.ConnectionError, requests.Timeout) as exc:
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
            except (_Transient, requests.ConnectionError, requests.Timeout) as exc:
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
            f"PortaBilling at {self.endpoint.base}: {reason}. If the server's certificate comes from a "
            f"private CA, set {ENV_CA_BUNDLE} to a file holding that CA's certificate"
        )

    def _back_off(self, attempt: int) -> None:
        delay = self.settings.backoff * (2 ** (attempt - 1))
        time.sleep(delay * (0.5 + random.random()))

    def _exchange(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        self._rate.wait()
        with self._lock:
            self._counts[method] += 1
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        response = self._http().post(
            f"{self.endpoint.base}/rest/{method}",
            data=json.dumps({"params": params}),
            headers=headers,
            auth=_Bearer(token) if token is not None else None,
            timeout=(self.settings.connect_timeout, self.settings.read_timeout),
            verify=self.settings.verify,
        )
        return self._interpret(method, response)

    def _interpret(self, method: str, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        if status in TRANSIENT_STATUSES:
            raise _Transient(status)
        try:
            body = response.json()
        except ValueError:
            body = None
        if status == 200 and isinstance(body, dict):
            return body
        if isinstance(body, dict) and "faultcode" in body:
            secrets = self.credentials.secrets()
            raise PortaBillingFault(
                method,
                scrub(str(body["faultcode"]), secrets),
                scrub(str(body.get("faultstring", "")), secrets),
            )
        if status in (401, 403):
            raise PortaBillingFault(method, f"HTTP {status} auth_failed", "not authorised")
        what = "an answer that is not a JSON object" if status == 200 else f"HTTP {status}"
        raise BackendError(f"PortaBilling {method} answered {what}")

    def _http(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # Retries are ours (reads only); urllib3 must never resend a write on its own.
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            # Proxies from the environment serve real servers; a loopback emulator needs none.
            session.trust_env = not is_loopback(self.endpoint.host)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session
