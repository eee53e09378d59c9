"""The API session: one login per run, then refreshed tokens (wire contract v3).

``Session/login`` answers ``access_token`` and usually ``refresh_token``, with the token's
lifetime told in any of three ways: ``expires_in`` (seconds), ``expires_at`` (``"YYYY-MM-DD
HH:MM:SS"`` in the server's time zone) or the access token itself, a JWT whose payload carries
``exp`` (read without verifying: the client only wants to know when to renew). The earliest
expiry any of them gives counts. The token is renewed with ``Session/refresh_access_token
{refresh_token}`` shortly before it expires, or when a call is refused with an auth fault; a
refresh answer without a ``refresh_token`` keeps the previous one. Logging in again happens only
when refreshing fails. A failed login is never sent again: servers lock an API user out after
repeated failures, so the first refusal is remembered and re-raised to every thread that asks.

Evidence: portabilling/billing ``Porta/Billing/Components/SessionManager.php`` (``refreshToken``
posts ``/Session/refresh_access_token`` with the refresh token, and logs in again only when that
fails), ``Tools/PortaToken.php`` and ``Components/SessionData.php`` (``session_id``,
``expires_at``, a JWT access token with ``exp``; a refresh answer without ``session_id``);
portaone/porta-phone-adapter ``app/bss/async_http_api.py`` (``expires_in`` read from the login
answer, proactive refresh before expiry).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from reconciler.backends.portabilling import fields as wire
from reconciler.backends.portabilling.errors import (
    LoginRefused,
    MalformedAnswer,
    OutcomeUnknown,
    PortaBillingFault,
    TransportError,
)

log = logging.getLogger(__name__)

LOGIN_METHOD = "Session/login"
REFRESH_METHOD = "Session/refresh_access_token"

# Renew when less than this share of the token's lifetime remains, but never earlier than
# RENEW_MARGIN_MAX seconds before it expires.
RENEW_SHARE = 0.1
RENEW_MARGIN_MAX = 30.0
# An expiry further ahead than this (or already past) on a fresh token is not believed: most
# likely expires_at read in the wrong time zone. The token is then renewed when refused.
MAX_BELIEVED_LIFETIME = 7 * 86400.0


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (seconds since the epoch) of a JWT, read without verifying; None when
    the token is no JWT or carries no usable ``exp``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = payload.get(wire.JWT_EXPIRY) if isinstance(payload, dict) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return float(exp)
    return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number > 0 else None
    return None


def _until(expires_at: Any, wall: float, zone: tzinfo) -> float | None:
    if not isinstance(expires_at, str):
        return None
    try:
        moment = datetime.strptime(expires_at.strip(), wire.DATE_FORMAT).replace(tzinfo=zone)
    except ValueError:
        return None
    return moment.timestamp() - wall


@dataclass(frozen=True)
class Grant:
    """What a login or a refresh answered."""

    access_token: str
    refresh_token: str | None
    expires_at: float | None  # when to renew, on the session's clock; None: nobody said
    lifetime: float | None = None  # seconds the token was good for when it came
    told_by: tuple[str, ...] = ()  # which of expires_in, expires_at, exp said so
    session_id: str | None = None

    @classmethod
    def from_answer(
        cls,
        method: str,
        answer: dict[str, Any],
        now: float,
        *,
        previous: Grant | None = None,
        wall: float | None = None,
        zone: tzinfo = UTC,
    ) -> Grant:
        token = answer.get(wire.ACCESS_TOKEN)
        if not isinstance(token, str) or not token:
            raise MalformedAnswer(method, "without an access_token")
        wall = time.time() if wall is None else wall
        refresh = answer.get(wire.REFRESH_TOKEN)
        if not isinstance(refresh, str) or not refresh:
            # A refresh answer may leave it out: the one just used is still the one to use.
            refresh = (
                previous.refresh_token
                if previous is not None and method == REFRESH_METHOD
                else None
            )
        told: dict[str, float | None] = {
            wire.EXPIRES_IN: _seconds(answer.get(wire.EXPIRES_IN)),
            wire.EXPIRES_AT: _until(answer.get(wire.EXPIRES_AT), wall, zone),
            wire.JWT_EXPIRY: (lambda exp: None if exp is None else exp - wall)(jwt_expiry(token)),
        }
        believed = {
            name: left
            for name, left in told.items()
            if left is not None and 0 < left <= MAX_BELIEVED_LIFETIME
        }
        seconds = min(believed.values()) if believed else None
        expires_at = (
            None if seconds is None
            else now + seconds - min(RENEW_MARGIN_MAX, RENEW_SHARE * seconds)
        )
        session_id = answer.get(wire.SESSION_ID)
        return cls(
            token,
            refresh,
            expires_at,
            seconds,
            tuple(sorted(believed)),
            session_id if isinstance(session_id, str) and session_id else None,
        )

    def secrets(self) -> list[str]:
        return [s for s in (self.access_token, self.refresh_token, self.session_id) if s]


class TokenSession:
    """The access token of one client, shared by its threads.

    ``login()`` and ``refresh(refresh_token)`` send the two session calls and return the answer
    (or raise); the session decides when to call which. Renewal is single-flight: while one
    thread renews, the others wait for its token.
    """

    def __init__(
        self,
        login: Callable[[], dict[str, Any]],
        refresh: Callable[[str], dict[str, Any]],
        clock: Callable[[], float] = time.monotonic,
        zone: Callable[[], tzinfo] = lambda: UTC,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._login = login
        self._refresh = refresh
        self._clock = clock
        self._zone = zone
        self._wall = wall
        self._lock = threading.Lock()
        self._grant: Grant | None = None
        self._refused: LoginRefused | None = None
        # Replaced, never changed in place: a reader on another thread sees one whole tuple.
        self._seen: tuple[str, ...] = ()
        self.logins = 0
        self.refreshes = 0

    def secrets(self) -> list[str]:
        """Every token and session id this session was given: scrubbed from every message.
        Read without the lock: a fault raised while another thread renews must not wait."""
        return sorted(self._seen, key=len, reverse=True)  # longest first: no partial scrub

    def _granted(self, method: str, answer: dict[str, Any], previous: Grant | None) -> Grant:
        for key in (wire.ACCESS_TOKEN, wire.REFRESH_TOKEN, wire.SESSION_ID):
            value = answer.get(key)
            if isinstance(value, str) and value and value not in self._seen:
                self._seen = (*self._seen, value)
        grant = Grant.from_answer(
            method, answer, self._clock(), previous=previous, wall=self._wall(), zone=self._zone()
        )
        self._grant = grant
        return grant

    @property
    def grant(self) -> Grant | None:
        """What the last login or refresh answered (for ``reconciler doctor``)."""
        with self._lock:
            return self._grant

    def token(self) -> str:
        """A token to send now: the current one, or a renewed one when it is (nearly) expired."""
        with self._lock:
            grant = self._grant
            if grant is not None and (grant.expires_at is None or self._clock() < grant.expires_at):
                return grant.access_token
            return self._renew(grant).access_token

    def renew(self, stale: str) -> str:
        """The server refused ``stale``: a renewed token (another thread's, if it renewed first)."""
        with self._lock:
            grant = self._grant
            if grant is not None and grant.access_token != stale:
                return grant.access_token
            return self._renew(grant).access_token

    def renews_cheaply(self, stale: str) -> bool:
        """Can ``stale`` be replaced without a login (another thread's token, or a refresh)?"""
        with self._lock:
            grant = self._grant
            return grant is not None and (
                grant.access_token != stale or grant.refresh_token is not None
            )

    def _renew(self, grant: Grant | None) -> Grant:
        if self._refused is not None:
            raise self._refused
        if grant is not None and grant.refresh_token:
            try:
                self.refreshes += 1
                return self._granted(REFRESH_METHOD, self._refresh(grant.refresh_token), grant)
            except (PortaBillingFault, OutcomeUnknown, MalformedAnswer, TransportError) as exc:
                # Whatever happened to the refresh token, only a login can help now.
                log.info("PortaBilling could not refresh the session (%s); logging in again", exc)
        self._grant = None
        try:
            self.logins += 1
            answer = self._login()
        except LoginRefused as refused:
            self._refused = refused
            raise
        return self._granted(LOGIN_METHOD, answer, None)
