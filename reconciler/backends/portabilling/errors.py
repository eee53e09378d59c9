"""What can go wrong talking to PortaBilling, one class per thing a person does about it.

Every class is a ``BackendError`` (so a ``ReconcilerError``): the command line turns each into one
message and exit 1. Messages name the method and the server, never the parameters, so no secret
can reach them.
"""

from __future__ import annotations

from reconciler.backends.portabilling import fields as wire
from reconciler.errors import BackendError


class PortaBillingFault(BackendError):
    """The server answered a call with a fault (HTTP 500 ``{"faultcode", "faultstring"}``)."""

    def __init__(self, method: str, faultcode: str, faultstring: str) -> None:
        super().__init__(f"PortaBilling {method} failed: {faultstring} [{faultcode}]")
        self.method = method
        self.faultcode = faultcode
        self.faultstring = faultstring

    @property
    def is_auth(self) -> bool:
        return wire.fault_matches(self.faultcode, wire.AUTH_FAULT_MARKERS)

    @property
    def is_not_found(self) -> bool:
        return wire.fault_matches(self.faultcode, wire.NOT_FOUND_FAULT_MARKERS)


class PortaBillingAuthError(PortaBillingFault):
    """Logging in failed, or the server refused a call even with a renewed session."""

    def __init__(self, method: str, faultcode: str, faultstring: str, message: str) -> None:
        super().__init__(method, faultcode, faultstring)
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


class LoginRefused(PortaBillingAuthError):
    """``Session/login`` answered a fault. It is never sent again in the same run."""


class LoginLockedOut(LoginRefused):
    """The server locked the API user out after repeated failed logins (``brute_force``)."""


class BillingReadOnly(PortaBillingFault):
    """The server accepts no writes: a disaster-recovery site (standalone, secondary) or
    maintenance (read-only). Apply stops for every customer once this is seen."""

    def __init__(self, method: str, faultcode: str, faultstring: str, host: str) -> None:
        super().__init__(method, faultcode, faultstring)
        self.host = host
        message = (
            f"billing at {host} is read-only (disaster-recovery site or maintenance): nothing more "
            f"was written [{faultcode} on {method}]"
        )
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


class TransportError(BackendError):
    """No usable answer: the server could not be reached, timed out, or a gateway failed."""


class MalformedAnswer(BackendError):
    """The server answered, but not with what the wire contract describes (HTML, truncated
    JSON, a list where an object belongs, a field of the wrong type)."""

    def __init__(self, method: str, what: str, *, status: int = 200) -> None:
        super().__init__(f"PortaBilling {method} answered {what}")
        self.method = method
        self.what = what
        self.status = status


class OutcomeUnknown(BackendError):
    """A write was sent, but whether billing made the change is unknown (no usable answer)."""

    def __init__(self, method: str, reason: str) -> None:
        super().__init__(
            f"PortaBilling {method}: no answer ({reason}); the change may or may not have been made"
        )
        self.method = method
        self.reason = reason


class Transient(Exception):
    """A gateway answered 502/503/504: the request may not have reached PortaBilling."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class RedirectRefused(BackendError):
    """The server answered a redirect. It is never followed: a redirect to another host would
    carry the credentials (or the request body) there. Nothing was resent."""

    def __init__(self, method: str, status: int, base: str) -> None:
        super().__init__(
            f"PortaBilling {method} at {base} answered a redirect (HTTP {status}); redirects are "
            "never followed, so nothing was sent anywhere else. Set the backend URL to the "
            "server's own API address"
        )
        self.method = method
        self.status = status
