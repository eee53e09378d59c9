"""Which version of the wire contract the emulator speaks, and each variant a server may show.

``V3`` is the default: the most realistic reading of the public evidence (shared/SPEC.md, "Third
version"). ``V2`` is the second contract, as the emulator spoke it before. Every behaviour that
differs is a field of ``WireProfile``, so a test can take a profile and change one thing
(``wire_profile("v3", agreement_shape="customer_agreement_info")``).
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TOKEN_STYLES = ("expires_at", "expires_in", "both", "jwt")
AUTH_FAULT_STYLES = ("v2", "v3")
READ_ONLY_FAULT_STYLES = ("bare", "namespaced")
AGREEMENT_SHAPES = (
    "agreement_info",
    "customer_agreement_info",
    "agreement_condition_list",
    "unknown",
)
ADD_ALIAS_ANSWERS = ("i_account", "empty")
NEW_ACCOUNT_STATUSES = ("O", "I")
ACCOUNT_ID_FIELDS = frozenset({"i_customer", "id"})
DEFAULT_ACCOUNT_ID_FORMAT = "ph{i_customer}x{id}"


def check_account_id_format(template: str) -> None:
    """A template with ``{id}`` (else every extension would get one ID) and only the fields
    ``{i_customer}`` and ``{id}``."""
    try:
        fields = {f for _text, f, _spec, _conv in string.Formatter().parse(template)
                  if f is not None}
    except ValueError as exc:
        raise ValueError(f"account_id_format {template!r}: {exc}") from None
    if not fields <= ACCOUNT_ID_FIELDS or "id" not in fields:
        raise ValueError(
            f"account_id_format {template!r} must contain {{id}} and may contain {{i_customer}}, "
            "nothing else in braces"
        )


def zone(name: str) -> tzinfo:
    """The time zone of an IANA name ("UTC" needs no time zone database)."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"time_zone {name!r} is not a time zone name (e.g. Europe/Prague)"
        ) from None


@dataclass(frozen=True)
class WireProfile:
    """How the emulator answers where servers (or contract versions) differ.

    - ``blocked_by``: answers show who blocked an account (v2); without it (v3, as real
      servers) a ``blocked_by`` sent on a write is accepted and not shown.
    - ``notes``: answers show each account's free-text ``note`` (as real servers do); without
      it a ``note`` sent on a write is still kept, never shown (a server that hides notes).
    - ``tokens``: what a login or refresh answer says about the access token's lifetime:
      ``expires_at`` (v3: ``session_id``, ``expires_at``, no ``expires_in``), ``expires_in``
      (v2), ``both``, or ``jwt`` (only the access token's own ``exp``).
    - ``refresh_without_token``: a refresh answer carries no ``refresh_token``; the one used
      stays valid.
    - ``auth_faults``: ``v2`` answers every refused token ``Server.Session.check_auth_failed``;
      ``v3`` tells a missing header, a token that is no JWT, an unknown token and an expired one
      apart, with the codes real servers use.
    - ``read_only_faults``: ``bare`` (``standalone_mode``) or ``namespaced``
      (``Server.Generic.standalone_mode``).
    - ``agreement_shape``: the key that wraps ``agreement_condition_list`` in the agreement
      answer, the list itself at the top (``agreement_condition_list``) or a wrapper no client
      knows (``unknown``: ``agreement``).
    - ``account_id_format``: the account ID billing generates for a new extension, with
      ``{i_customer}`` and ``{id}`` (the extension number).
    - ``new_account_status``: ``bill_status`` of a new account, ``O`` or ``I`` (inactive until
      first used).
    - ``add_alias_answer``: ``i_account`` or ``empty`` (``{}``).
    - ``release_dids``: ``delete_alias`` and ``terminate_account`` return the DID to nobody
      (out of the customer's pool) unless ``release_assigned_did: 0`` is sent.
    - ``time_zone``: the server's time zone (IANA name): add-on dates and ``expires_at`` are
      in it. ``session_time_zone``: ``Generic/get_session_data`` reports it as
      ``time_zone_name``.
    """

    name: str = "v3"
    blocked_by: bool = False
    notes: bool = True
    tokens: str = "expires_at"
    refresh_without_token: bool = False
    auth_faults: str = "v3"
    read_only_faults: str = "bare"
    agreement_shape: str = "agreement_info"
    account_id_format: str = DEFAULT_ACCOUNT_ID_FORMAT
    new_account_status: str = "O"
    add_alias_answer: str = "i_account"
    release_dids: bool = False
    time_zone: str = "UTC"
    session_time_zone: bool = True

    def __post_init__(self) -> None:
        for field, allowed in (
            ("tokens", TOKEN_STYLES),
            ("auth_faults", AUTH_FAULT_STYLES),
            ("read_only_faults", READ_ONLY_FAULT_STYLES),
            ("agreement_shape", AGREEMENT_SHAPES),
            ("new_account_status", NEW_ACCOUNT_STATUSES),
            ("add_alias_answer", ADD_ALIAS_ANSWERS),
        ):
            if getattr(self, field) not in allowed:
                raise ValueError(
                    f"{field} must be one of {', '.join(allowed)}, not {getattr(self, field)!r}"
                )
        check_account_id_format(self.account_id_format)
        zone(self.time_zone)

    @property
    def zone(self) -> tzinfo:
        return zone(self.time_zone)

    def extension_account_id(self, i_customer: int, ext_id: str) -> str:
        return self.account_id_format.format(i_customer=i_customer, id=ext_id)


V3 = WireProfile()
V2 = WireProfile(
    name="v2",
    blocked_by=True,
    tokens="expires_in",
    auth_faults="v2",
    read_only_faults="namespaced",
    session_time_zone=False,
)
PROFILES = {"v2": V2, "v3": V3}

# The profile an emulator speaks when it is not told: the realistic one. A test suite whose
# client still speaks an older contract may set this once (before starting any emulator).
DEFAULT_WIRE = "v3"

VARIANTS = tuple(f.name for f in dataclasses.fields(WireProfile) if f.name != "name")


def wire_profile(wire: str | WireProfile | None = None, **variants: Any) -> WireProfile:
    """``wire`` ("v2", "v3", a profile, or None for ``DEFAULT_WIRE``) with ``variants`` (fields
    of WireProfile; None leaves the profile's value). ValueError names what is wrong."""
    if isinstance(wire, WireProfile):
        base = wire
    else:
        name = DEFAULT_WIRE if wire is None else wire
        try:
            base = PROFILES[name]
        except KeyError:
            raise ValueError(f"wire must be one of {', '.join(PROFILES)}, not {name!r}") from None
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"not a wire variant: {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    chosen = {key: value for key, value in variants.items() if value is not None}
    return dataclasses.replace(base, **chosen) if chosen else base
