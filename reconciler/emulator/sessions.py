"""Logins, access and refresh tokens, the failed-login lockout and the server's operating mode.

An access token lasts ``ttl_seconds`` (``expires_in``, 900 s by default, as servers typically
give) and, when ``ttl_calls`` is set, that many calls. A refresh token lasts longer and is good
for one ``Session/refresh_access_token``, which hands out a new pair. After ``lockout_after``
failed logins in a row a login name is locked out (``brute_force``) until the test resets it,
whatever password comes next: the reason a client must never retry a refused login.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from reconciler.emulator.db import Fault

DEFAULT_TTL_SECONDS = 900.0
REFRESH_TTL_SECONDS = 86400.0
LOCKOUT_AFTER = 3


@dataclass(frozen=True)
class OperatingMode:
    """What ``Generic/get_session_data`` reports, and the fault every write gets when the server
    takes no writes (a disaster-recovery site, or one in maintenance)."""

    name: str
    faultcode: str | None = None
    faultstring: str = ""


NORMAL = OperatingMode("normal")
# The keys are the marker each mode's fault code carries (the client recognises all three).
READ_ONLY_MODES = {
    "read_only_mode": OperatingMode(
        "read_only", "Server.Generic.read_only_mode", "the server is in read-only mode"
    ),
    "standalone_mode": OperatingMode(
        "standalone", "Server.Generic.standalone_mode", "the server runs standalone: no writes"
    ),
    "secondary_site": OperatingMode(
        "secondary", "Server.Generic.secondary_site", "this is a secondary site: no writes"
    ),
}


def operating_mode(read_only: bool | str | None) -> OperatingMode:
    """``False``/``None``: normal; ``True``: read-only; or one of READ_ONLY_MODES by name."""
    if not read_only:
        return NORMAL
    if read_only is True:
        return READ_ONLY_MODES["read_only_mode"]
    try:
        return READ_ONLY_MODES[read_only]
    except KeyError:
        raise ValueError(
            f"read_only must be True or one of {', '.join(READ_ONLY_MODES)}, not {read_only!r}"
        ) from None


class Sessions:
    """The API user's credentials and the tokens handed out to it."""

    def __init__(
        self,
        *,
        login: str,
        password: str | None,
        token: str | None,
        ttl_seconds: float | None = DEFAULT_TTL_SECONDS,
        ttl_calls: int | None = None,
        refresh_ttl_seconds: float = REFRESH_TTL_SECONDS,
        lockout_after: int = LOCKOUT_AFTER,
    ) -> None:
        self.login_name = login
        self.password = password
        self.token = token
        self.ttl_seconds = DEFAULT_TTL_SECONDS if ttl_seconds is None else ttl_seconds
        self.ttl_calls = ttl_calls
        self.refresh_ttl_seconds = refresh_ttl_seconds
        self.lockout_after = lockout_after
        self._access: dict[str, list[float]] = {}  # token -> [expires at, calls left]
        self._refresh: dict[str, float] = {}  # token -> expires at
        self._failures: Counter[str] = Counter()
        self._lock = threading.Lock()

    # ---- the calls -----------------------------------------------------------------------------

    def login(self, params: dict[str, Any]) -> dict[str, Any]:
        if ("password" in params) == ("token" in params):
            raise Fault(
                "Client.Validation.missing_parameter",
                "Session/login needs exactly one of password and token",
            )
        name = params["login"]
        with self._lock:
            if self._failures[name] >= self.lockout_after:
                raise Fault(
                    "Server.Session.brute_force", "user locked out after repeated failed logins"
                )
            good = name == self.login_name and (
                (self.password is not None and params.get("password") == self.password)
                or (self.token is not None and params.get("token") == self.token)
            )
            if not good:
                self._failures[name] += 1
                # Like a real server, say nothing about which part was wrong.
                raise Fault("Server.Session.auth_failed", "login failed")
            self._failures[name] = 0
            return self._issue()

    def refresh(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            expires = self._refresh.pop(params["refresh_token"], None)  # single use
            if expires is None or expires < time.time():
                raise Fault(
                    "Server.Session.refresh_failed",
                    "the refresh token is unknown, used or expired; log in",
                )
            return self._issue()

    def _issue(self) -> dict[str, Any]:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        now = time.time()
        calls = float("inf") if self.ttl_calls is None else float(self.ttl_calls)
        self._access[access] = [now + self.ttl_seconds, calls]
        self._refresh[refresh] = now + self.refresh_ttl_seconds
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": max(1, math.ceil(self.ttl_seconds)),
        }

    def use(self, access_token: str | None) -> bool:
        """Whether a call with this bearer token is authorised (and count the call against it)."""
        with self._lock:
            entry = self._access.get(access_token or "")
            if entry is None or entry[0] < time.time() or entry[1] <= 0:
                self._access.pop(access_token or "", None)
                return False
            entry[1] -= 1
            return True

    # ---- test hooks ----------------------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access.clear()

    def expire_refresh_tokens(self) -> None:
        with self._lock:
            self._refresh.clear()

    def reset_lockout(self) -> None:
        with self._lock:
            self._failures.clear()

    @property
    def failed_logins(self) -> dict[str, int]:
        """Failed logins in a row, per login name (the lockout counts these)."""
        with self._lock:
            return {name: count for name, count in self._failures.items() if count}
