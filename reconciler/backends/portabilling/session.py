"""The API session: one login per run, then refreshed tokens (wire contract v2).

``Session/login`` answers ``access_token``, ``refresh_token`` and ``expires_in`` (seconds). The
token is renewed with ``Session/refresh_access_token {refresh_token}`` shortly before it expires,
or when a call is refused with an auth fault; logging in again happens only when refreshing fails.
A failed login is never sent again: servers lock an API user out after repeated failures, so the
first refusal is remembered and re-raised to every thread that asks.

Evidence: portabilling/billing ``Porta/Billing/Components/SessionManager.php`` (``refreshToken``
posts ``/Session/refresh_access_token`` with the refresh token, and logs in again only when that
fails); portaone/porta-phone-adapter ``app/bss/async_http_api.py`` (``expires_in`` read from the
login answer, proactive refresh before expiry).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Grant:
    """What a login or a refresh answered."""

    access_token: str
    refresh_token: str | None
    expires_at: float | None  # on the session's clock; None: the server did not say
    lifetime: float | None = None  # expires_in as answered

    @classmethod
    def from_answer(cls, method: str, answer: dict[str, Any], now: float) -> Grant:
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise MalformedAnswer(method, "without an access_token")
        refresh = answer.get("refresh_token")
        lifetime = answer.get("expires_in")
        seconds: float | None = None
        expires_at: float | None = None
        if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > 0:
            seconds = float(lifetime)
            expires_at = now + seconds - min(RENEW_MARGIN_MAX, RENEW_SHARE * seconds)
        return cls(
            token, refresh if isinstance(refresh, str) and refresh else None, expires_at, seconds
        )


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
    ) -> None:
        self._login = login
        self._refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._grant: Grant | None = None
        self._refused: LoginRefused | None = None
        self.logins = 0
        self.refreshes = 0

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
                self._grant = Grant.from_answer(
                    REFRESH_METHOD, self._refresh(grant.refresh_token), self._clock()
                )
                return self._grant
            except (PortaBillingFault, OutcomeUnknown, MalformedAnswer, TransportError) as exc:
                # A refresh token is single-use: whatever happened to it, only a login can help.
                log.info("PortaBilling could not refresh the session (%s); logging in again", exc)
        self._grant = None
        try:
            self.logins += 1
            answer = self._login()
        except LoginRefused as refused:
            self._refused = refused
            raise
        self._grant = Grant.from_answer(LOGIN_METHOD, answer, self._clock())
        return self._grant
