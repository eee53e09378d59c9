"""Where the PortaBilling server is, who logs in, and how patiently: URL, credentials, settings.

Credentials come from the environment only and never appear in a ``repr``, a message or a log line.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reconciler.backends import PORTABILLING, parse_backend_url
from reconciler.errors import UsageError

ENV_LOGIN = "PORTABILLING_LOGIN"
ENV_PASSWORD = "PORTABILLING_PASSWORD"
ENV_TOKEN = "PORTABILLING_TOKEN"
ENV_CA_BUNDLE = "PORTABILLING_CA_BUNDLE"
ENV_MAX_RPS = "PORTABILLING_MAX_RPS"
ENV_CONNECT_TIMEOUT = "PORTABILLING_CONNECT_TIMEOUT"
ENV_READ_TIMEOUT = "PORTABILLING_READ_TIMEOUT"
ENV_PAGE_SIZE = "PORTABILLING_PAGE_SIZE"
ENV_BLOCKING_ROLES = "PORTABILLING_BLOCKING_ROLES"
ENV_TOTAL_TIMEOUT = "PORTABILLING_TOTAL_TIMEOUT"
ENV_TIMEZONE = "PORTABILLING_TIMEZONE"


# ---- where and who -------------------------------------------------------------------------------


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


def endpoint_of(url: str) -> Endpoint:
    """``portabilling+https://HOST[:PORT][/PREFIX]`` -> the API's base URL.

    The URL is parsed where every backend URL is (``reconciler.backends``); here its parts are
    checked against what a PortaBilling server needs. Plain ``portabilling+http://`` is accepted
    for loopback hosts only: anywhere else the password would cross the network in clear text.
    """
    where = parse_backend_url(url)
    if where.kind is not PORTABILLING:
        raise UsageError("a PortaBilling backend URL starts with portabilling+https://")
    parts = where.parts
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
    http = parts.scheme == "portabilling+http"
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


# ---- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientSettings:
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # The whole of one request, answer included: a server that trickles bytes resets the read
    # timeout with each one, so this deadline is what bounds it.
    total_timeout: float = 120.0
    read_attempts: int = 4  # reads: 1 try + 3 retries, waiting backoff, 2x, 4x
    backoff: float = 0.05
    page_size: int = 500
    max_rps: float = 0.0  # 0 = no client-side limit
    verify: bool | str = True  # False never comes from the environment; True or a CA bundle path
    # The server's time zone when Generic/get_session_data does not say (PORTABILLING_TIMEZONE).
    time_zone: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ClientSettings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, attr, kind in (
            (ENV_CONNECT_TIMEOUT, "connect_timeout", float),
            (ENV_READ_TIMEOUT, "read_timeout", float),
            (ENV_TOTAL_TIMEOUT, "total_timeout", float),
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
        zone_name = (env.get(ENV_TIMEZONE) or "").strip()
        if zone_name:
            zone_named(zone_name, ENV_TIMEZONE)
            values["time_zone"] = zone_name
        values.update(overrides)
        return replace(cls(), **values)


def zone_named(name: str, where: str) -> tzinfo:
    """The time zone of an IANA name such as ``Europe/Prague`` (``UTC`` always works)."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"{where}={name!r} is not a time zone name (an IANA name such as Europe/Prague)"
        ) from None


def _positive(name: str, text: str, kind: Callable[[str], Any], *, allow_zero: bool) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{name}={text!r} must be {'zero or ' if allow_zero else ''}positive")
    return value


class RateLimiter:
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


def blocking_roles_from_env(env: Mapping[str, str] | None = None) -> frozenset[int] | None:
    """The self-care roles (``customer_info.i_role``) that may block/unblock extensions, from
    ``PORTABILLING_BLOCKING_ROLES`` (comma-separated integers), or None when it is not set."""
    env = os.environ if env is None else env
    text = (env.get(ENV_BLOCKING_ROLES) or "").strip()
    if not text:
        return None
    roles = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            roles.add(int(part))
        except ValueError:
            raise UsageError(
                f"{ENV_BLOCKING_ROLES}={text!r}: expected comma-separated i_role numbers, "
                "such as 2 or 2,7"
            ) from None
    return frozenset(roles)
