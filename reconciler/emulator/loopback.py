"""The emulator listens on loopback only.

It is a development and test tool: its default credentials are public, it keeps no secrets, and
the client accepts plain http only for loopback hosts anyway. Listening anywhere else would
expose a billing look-alike to the network and print a URL the client then refuses.
"""

from __future__ import annotations

import ipaddress

from reconciler.errors import UsageError


class NotLoopback(UsageError):
    """A host that is not a loopback address was asked for."""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost`` (whatever case); nothing else, not 0.0.0.0."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_loopback(host: str) -> None:
    if not is_loopback(host):
        raise NotLoopback(
            f"the emulator listens on loopback only (127.0.0.0/8, ::1, localhost), not {host!r}: "
            "it is a development and test tool with public default credentials"
        )
