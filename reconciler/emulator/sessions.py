"""Logins, access and refresh tokens, the failed-login lockout and the server's operating mode.

An access token is a JWT (header.payload.signature, base64url, signed with a key of this
server) that lasts ``ttl_seconds`` (900 s by default, as servers typically give) and, when
``ttl_calls`` is set, that many calls. How a login answer tells its lifetime follows the wire
profile (``expires_at`` in the server's time zone, ``expires_in``, both, or only the JWT's
``exp``). A refresh token lasts longer and is good for one ``Session/refresh_access_token``,
which hands out a new pair (or, with ``refresh_without_token``, a new access token only, the
refresh token staying good). After ``lockout_after`` failed logins in a row a login name is
locked out (``brute_force``) until the test resets it, whatever password comes next: the reason
a client must never retry a refused login.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.emulator.db import Fault
from reconciler.emulator.profile import V3, WireProfile

DEFAULT_TTL_SECONDS = 900.0
REFRESH_TTL_SECONDS = 86400.0
LOCKOUT_AFTER = 3
_KEPT_TOKENS = 10_000
_FORGET_AFTER_S = 3600.0


# Refused tokens. The second contract used one code; real servers tell these apart.
V2_AUTH_FAULT = "Server.Session.check_auth_failed"
ENVELOPE_MISSED = "Client.check_auth.envelope_missed"  # no Authorization header
NOT_A_JWT = "Client.Session.check_auth.failed_to_process_jwt"
UNKNOWN_TOKEN = "Client.Session.check_auth.failed_to_process_access_token"
EXPIRED_TOKEN = "Server.Session.check_auth.auth_failed"


@dataclass(frozen=True)
class OperatingMode:
    """What ``Generic/get_session_data`` reports, and the fault every write gets when the server
    takes no writes (a disaster-recovery site, or one in maintenance). ``marker`` is the bare
    fault code; namespaced it is ``Server.Generic.{marker}``."""

    name: str
    marker: str | None = None
    faultstring: str = ""

    def faultcode(self, style: str) -> str | None:
        if self.marker is None:
            return None
        return self.marker if style == "bare" else f"Server.Generic.{self.marker}"


NORMAL = OperatingMode("normal")
# The keys are the marker each mode's fault code carries (the client recognises all three).
READ_ONLY_MODES = {
    "read_only_mode": OperatingMode(
        "read_only", "read_only_mode", "the server is in read-only mode"
    ),
    "standalone_mode": OperatingMode(
        "standalone", "standalone_mode", "the server runs standalone: no writes"
    ),
    "secondary_site": OperatingMode(
        "secondary", "secondary_site", "this is a secondary site: no writes"
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
        profile: WireProfile = V3,
    ) -> None:
        self.login_name = login
        self.password = password
        self.token = token
        self.ttl_seconds = DEFAULT_TTL_SECONDS if ttl_seconds is None else ttl_seconds
        self.ttl_calls = ttl_calls
        self.refresh_ttl_seconds = refresh_ttl_seconds
        self.lockout_after = lockout_after
        self.profile = profile
        self._key = secrets.token_bytes(32)  # signs this server's JWTs
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
            answer = self._issue()
            if self.profile.tokens != "expires_in":
                answer = {"session_id": secrets.token_hex(16), **answer}
            return answer

    def refresh(self, params: dict[str, Any]) -> dict[str, Any]:
        keep = self.profile.refresh_without_token
        with self._lock:
            token = params["refresh_token"]
            # Single use, unless answers carry no new one: then the old one must stay good.
            expires = self._refresh.get(token) if keep else self._refresh.pop(token, None)
            if expires is None or expires < time.time():
                raise Fault(
                    "Server.Session.refresh_failed",
                    "the refresh token is unknown, used or expired; log in",
                )
            return self._issue(refresh=not keep)

    def _issue(self, *, refresh: bool = True) -> dict[str, Any]:
        now = time.time()
        expires = now + self.ttl_seconds
        access = self._jwt(now, expires)
        calls = float("inf") if self.ttl_calls is None else float(self.ttl_calls)
        if len(self._access) > _KEPT_TOKENS:
            self._forget_old_tokens(now)
        self._access[access] = [expires, calls]
        answer: dict[str, Any] = {"access_token": access}
        if refresh:
            answer["refresh_token"] = secrets.token_hex(16)
            self._refresh[answer["refresh_token"]] = now + self.refresh_ttl_seconds
        style = self.profile.tokens
        if style in ("expires_at", "both"):
            at = datetime.fromtimestamp(math.ceil(expires), self.profile.zone)
            answer["expires_at"] = at.strftime("%Y-%m-%d %H:%M:%S")
        if style in ("expires_in", "both"):
            answer["expires_in"] = max(1, math.ceil(self.ttl_seconds))
        return answer

    def _forget_old_tokens(self, now: float) -> None:
        """Expired tokens are remembered (a call with one is told it expired, not that it is
        unknown), but not for ever: a long run that logs in often would grow without end."""
        for token, (expires, calls) in list(self._access.items()):
            if expires < now - _FORGET_AFTER_S or calls <= 0:
                del self._access[token]

    def _jwt(self, now: float, expires: float) -> str:
        """A signed JWT with the claims real servers put in theirs (``exp`` is what a client
        may read; the rest is there so a client does not depend on its absence)."""
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
        claims = {
            "exp": math.ceil(expires),
            "iat": int(now),
            "login": self.login_name,
            "realm": "admin",
            "aud": ["portabilling-api"],
            "jti": secrets.token_hex(16),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def use(self, authorization: str | None) -> None:
        """Authorise a call with this Authorization header (and count the call against its
        token), or raise the fault a server answers."""
        token = authorization[7:] if authorization and authorization.startswith("Bearer ") else None
        with self._lock:
            entry = self._access.get(token or "")
            if entry is not None and entry[0] >= time.time() and entry[1] > 0:
                entry[1] -= 1
                return
        if self.profile.auth_faults == "v2":
            raise Fault(V2_AUTH_FAULT, "the session is missing, invalid or expired; log in")
        if authorization is None:
            raise Fault(ENVELOPE_MISSED, "no Authorization header")
        if token is None or not self._is_jwt(token):
            raise Fault(NOT_A_JWT, "the access token is not a JWT")
        if entry is None:
            raise Fault(UNKNOWN_TOKEN, "the access token is not one this server issued")
        raise Fault(EXPIRED_TOKEN, "the access token has expired; refresh it or log in")

    def _is_jwt(self, token: str) -> bool:
        parts = token.split(".")
        if len(parts) != 3:
            return False
        try:
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
            _unb64(parts[2])
        except (ValueError, binascii.Error):
            return False
        return isinstance(header, dict) and isinstance(claims, dict)

    # ---- test hooks ----------------------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        """Every access token issued so far has expired (a call with one gets the expired-token
        fault, not the unknown-token one)."""
        with self._lock:
            for entry in self._access.values():
                entry[0] = 0.0

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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
