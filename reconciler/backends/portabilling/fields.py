"""The PortaBilling field names and shapes the reconciler assumes, with the evidence for each.

This is the one place for them: the backend reads and writes through these names and functions,
so a provider who finds a different name in their server's ``/doc/api/`` corrects it here.
The emulator declares its own shapes and does not import this module, so a wrong name here
makes the tests fail instead of agreeing with itself.

Evidence is public code written against real servers, cited as ``repository path``:

- [objects] portabilling/objects ``Test/TestData/account_2984.json``,
  ``Test/TestData/account_list_444.json`` and ``Test/TestData/customer_444.json`` (real
  ``account_info`` / ``account_list`` / ``customer_info`` dumps);
- [billing] portabilling/billing ``Porta/Billing/Components/SessionManager.php``,
  ``Porta/Billing/Components/SessionData.php`` and ``Tools/PortaToken.php``;
- [adapter] portaone/porta-phone-adapter ``app/bss/adapters/portaswitch/api/admin.py``,
  ``app/bss/adapters/portaswitch/failover.py``, ``app/bss/async_http_api.py`` and
  ``tests/test_45_portaswitch_addon_alias.py``;
- [scripts] JustJoshing19/PortaOnePyScripts ``PortaOneCustomer/SingleTaskScripts/...``;
- [n8n] digital-boss/n8n-nodes-portaone
  ``nodes/PortaOne/descriptions/CustomerExtensionDescription.ts`` and ``AccountDescription.ts``.

¹ marks what none of these show (unevidenced): an assumption to check against a server
(``reconciler doctor`` reports, for every such field, whether the server returned it; the table
in docs/portabilling.md says which check covers which assumption).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

# ---- customer_info ---------------------------------------------------------------------------

# customer_info.i_role: the customer's self-care role. [objects] customer_444.json carries
# "i_role": 5. Which roles may block extensions is not readable through public API material, so
# PORTABILLING_BLOCKING_ROLES names them (see customer_may_block).
CUSTOMER_ROLE = "i_role"

# customer_info.extension_blocking: "Y" when the customer may block/unblock its extensions.
# ¹ (the first version of the contract; [objects] customer_444.json has no such field). Used
# only when PORTABILLING_BLOCKING_ROLES is not set.
CUSTOMER_EXTENSION_BLOCKING = "extension_blocking"

# ---- agreement_info --------------------------------------------------------------------------

# Customer/get_customer_agreement_info {i_customer}: the call is [scripts]
# CustomerAPISCalls/p1_get_agreement_conditions.py. The items are evidenced
# (agreement_condition_list[]{i_product, max_offered_quantity}; 0 = unlimited), their wrapper is
# not ¹: agreement_info, customer_agreement_info, or the list at the top of the answer are all
# read; anything else is one clear error naming the keys the server sent (see agreement_of).
AGREEMENT_WRAPPERS = ("agreement_info", "customer_agreement_info")
AGREEMENT_INFO = AGREEMENT_WRAPPERS[0]
AGREEMENT_CONDITIONS = "agreement_condition_list"
CONDITION_PRODUCT = "i_product"
CONDITION_QUANTITY = "max_offered_quantity"

# ---- account_list[] / account_info -----------------------------------------------------------

# Account/get_account_list parameters: with_aliases, get_only_real_accounts and get_total are
# sent by [adapter] admin.py get_account_list; limit/offset by [scripts]
# AccountAPICalls/p1_joshua_account_listing.py ("limit": 500, "offset": 0).
ACCOUNT_LIST_PARAMS: dict[str, Any] = {"with_aliases": 1, "get_only_real_accounts": 1}

# account_info.bill_status: "O" open ([objects] account_2984.json), "I" inactive, "C" closed.
# "terminated" is still read as closed (the first version of the contract).
TERMINATED_BILL_STATUSES = frozenset({"terminated", "C"})

# account_info.billing_model: 1 for a real account ([objects] account_2984.json); an alias row
# carries i_master_account ([adapter] test_45_portaswitch_addon_alias.py) and billing_model 2 ¹.
ALIAS_BILLING_MODEL = 2
MASTER_ACCOUNT = "i_master_account"

# account_info.assigned_addons[]{i_product, addon_effective_from, addon_effective_to}:
# [objects] account_2984.json, dates as "YYYY-MM-DD HH:MM:SS". An add-on whose
# addon_effective_to is past is no longer assigned.
ASSIGNED_ADDONS = "assigned_addons"
ADDON_FROM = "addon_effective_from"
ADDON_TO = "addon_effective_to"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

# account_list[].alias_list[]{i_account, id}: the account's aliases (DIDs), each an account of its
# own with its own i_account. ¹
ALIAS_LIST = "alias_list"
ALIAS_I_ACCOUNT = "i_account"
ALIAS_ID = "id"

# account_info.blocked "Y"/"N": [objects] account_2984.json. Who blocked it, blocked_by
# "admin" | "customer", is ¹ and no real dump carries it: when a server sends it, it wins.
BLOCKED = "blocked"
BLOCKED_BY = "blocked_by"

# account_info.note: a free-text field of every account ([objects] account_2984.json and
# account_list_444.json carry "note": ""); that update_account takes it is ¹. The reconciler marks
# the blocks it makes on the customer's behalf with BLOCK_MARKER in the note, in the same
# update_account call as the block, and removes it in the call that unblocks. No spec value
# reaches the note, so a spec author cannot claim an administrator's block; the marker counts
# only while blocked is "Y". See docs/portabilling.md, "Who blocked an account".
NOTE = "note"
BLOCK_MARKER = "[pbx-reconciler: blocked on the customer's behalf]"

# ---- read-back calls ---------------------------------------------------------------------------

# Account/get_alias_list {i_master_account, limit, offset} -> alias_list[]{i_account, id}, total.
# The call is [scripts] AliasAPICalls/p1_joshua_get_alias_list.py; its paging is ¹.
ALIAS_LIST_METHOD = "Account/get_alias_list"
ALIAS_LIST_PARAM = "i_master_account"

# Customer/add_customer_extension takes "either i_account or i_product" ([n8n]
# CustomerExtensionDescription.ts): with i_product billing creates the account itself; with
# i_account it links an existing one ([scripts] ExtensionAPICalls/p1_joshua_add_extension.py).
EXTENSION_CREATE_METHOD = "Customer/add_customer_extension"

# ---- faults ------------------------------------------------------------------------------------

# "log in again": the contract; [billing] SessionManager.php tests Server.Session.auth_failed,
# [adapter] failover.py lists Server.Session.check_auth.auth_failed. The markers also cover the
# v3 codes Client.check_auth.envelope_missed, Client.Session.check_auth.failed_to_process_jwt
# and Client.Session.check_auth.failed_to_process_access_token (all carry check_auth).
AUTH_FAULT_MARKERS = ("check_auth", "auth_failed")
# The API user is locked out after repeated failed logins. ¹ (the contract names brute_force)
LOCKOUT_FAULT_MARKERS = ("brute_force",)
# A site that accepts no writes: [adapter] failover.py READ_ONLY_FAULTS; matched anywhere in the
# code, so both the bare (standalone_mode) and the namespaced (Server.Generic.standalone_mode)
# forms are read-only.
READ_ONLY_FAULT_MARKERS = ("read_only_mode", "standalone_mode", "secondary_site")
# Generic/get_session_data -> operating_mode: [adapter] failover.py (OPERATING_MODE_NORMAL ...).
SESSION_DATA_METHOD = "Generic/get_session_data"
OPERATING_MODE = "operating_mode"
NORMAL_MODE = "normal"
# The server's time zone (an IANA name), in which add-on dates and expires_at are written: the
# name time_zone_name is the one account_info uses ([objects] account_2984.json,
# "time_zone_name": "Pacific/Palau"); that get_session_data carries it is ¹. When it does not,
# PORTABILLING_TIMEZONE says it, else UTC.
SESSION_TIME_ZONE = "time_zone_name"
# "no such object" ¹: some servers answer an unknown i_customer with a fault rather than an
# empty customer_info.
NOT_FOUND_FAULT_MARKERS = ("not_found", "notfound", "no_such")

# ---- sessions --------------------------------------------------------------------------------

# Session/login answers: access_token and refresh_token ([billing] SessionManager.php);
# expires_in ([adapter] async_http_api.py); session_id, expires_at ("YYYY-MM-DD HH:MM:SS", server
# time) and an access token that is a JWT whose payload carries exp ([billing]
# Tools/PortaToken.php SESSION_TEMPLATE, Components/SessionData.php; [scripts]
# p1_joshua_update_account.py reads expires_at). A refresh answer may leave refresh_token out
# ([billing] PortaToken::createRefreshData drops session_id): the previous one is kept.
ACCESS_TOKEN = "access_token"
REFRESH_TOKEN = "refresh_token"
SESSION_ID = "session_id"
EXPIRES_IN = "expires_in"
EXPIRES_AT = "expires_at"
JWT_EXPIRY = "exp"

# ---- writes ----------------------------------------------------------------------------------

# Account/delete_alias and Account/terminate_account take release_assigned_did; a server may
# return the DID to the general pool unless it is 0 ([n8n] AccountDescription.ts: "whether the
# previously assigned DID number should be released to the pool (true by default)"). The
# reconciler keeps DIDs in the customer's pool: it always sends 0.
KEEP_DIDS = {"release_assigned_did": 0}

# Answers of writes: add_account and add_alias answer {i_account}, add_customer_extension
# {i_c_ext} ([scripts] p1_joshua_add_extension.py prints it). None is indexed unguarded: a
# missing key means the change is read back from billing.
ANSWER_I_ACCOUNT = "i_account"
ANSWER_I_C_EXT = "i_c_ext"

# ---- functions over the fields above -------------------------------------------------------------


def customer_may_block(customer_info: dict[str, Any], roles: frozenset[int] | None) -> bool:
    """May the customer block/unblock its extensions? By its role when the provider listed the
    roles that may (``roles``), else by the first version's extension_blocking, else no."""
    if roles is not None:
        role = customer_info.get(CUSTOMER_ROLE)
        try:
            return role is not None and int(role) in roles
        except (TypeError, ValueError):
            return False
    return str(customer_info.get(CUSTOMER_EXTENSION_BLOCKING, "N")).upper() == "Y"


def block_note(customer_info: dict[str, Any], roles: frozenset[int] | None) -> str | None:
    """Why blocking is refused when no source says the role allows it, for the user to act on."""
    role = customer_info.get(CUSTOMER_ROLE)
    if roles is not None:
        return f"its role (i_role {role}) is not in PORTABILLING_BLOCKING_ROLES"
    if CUSTOMER_EXTENSION_BLOCKING not in customer_info:
        return (
            "billing does not say which self-care roles may block extensions: list them "
            f"(this customer's i_role is {role}) in PORTABILLING_BLOCKING_ROLES"
        )
    return None


class AgreementShapeError(ValueError):
    """The agreement answer has none of the shapes the reconciler reads; names the keys seen."""

    def __init__(self, keys: list[str]) -> None:
        shown = ", ".join(keys) or "none"
        super().__init__(
            f"without {', '.join(AGREEMENT_WRAPPERS)} or a top-level {AGREEMENT_CONDITIONS} "
            f"(keys seen: {shown})"
        )
        self.keys = keys


def agreement_of(answer: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(the shape found, the agreement's conditions) from a get_customer_agreement_info answer:
    ``agreement_info``, ``customer_agreement_info`` (each holding ``agreement_condition_list``)
    or ``agreement_condition_list`` at the top. Anything else: AgreementShapeError."""
    for wrapper in AGREEMENT_WRAPPERS:
        inner = answer.get(wrapper)
        if isinstance(inner, dict):
            return wrapper, _conditions(inner, wrapper)
    if AGREEMENT_CONDITIONS in answer:
        return AGREEMENT_CONDITIONS, _conditions(answer, "the answer")
    raise AgreementShapeError(sorted(str(key) for key in answer))


def _conditions(holder: dict[str, Any], where: str) -> list[dict[str, Any]]:
    conditions = holder.get(AGREEMENT_CONDITIONS)
    if conditions is None:
        return []
    if not isinstance(conditions, list) or not all(isinstance(c, dict) for c in conditions):
        raise ValueError(f"{where}'s {AGREEMENT_CONDITIONS} is not a list of objects")
    return conditions


def agreement_quantities(conditions: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(i_product, quantity) for each condition of the agreement; 0 = unlimited."""
    result = []
    for condition in conditions:
        quantity = condition.get(CONDITION_QUANTITY)
        result.append((int(condition[CONDITION_PRODUCT]), int(quantity or 0)))
    return result


def aliases_of(account_info: dict[str, Any]) -> list[tuple[int | None, str]]:
    """(alias i_account, DID) for each alias of an account (None: not known yet)."""
    return [
        (None if alias.get(ALIAS_I_ACCOUNT) in (None, "") else int(alias[ALIAS_I_ACCOUNT]),
         str(alias[ALIAS_ID]))
        for alias in account_info.get(ALIAS_LIST) or []
    ]


def is_alias_entry(account_info: dict[str, Any]) -> bool:
    """An alias listed as a row of its own: never an account."""
    if account_info.get(MASTER_ACCOUNT) not in (None, "", 0):
        return True
    return str(account_info.get("billing_model", "")) == str(ALIAS_BILLING_MODEL)


def blocked_by(account_info: dict[str, Any]) -> str | None:
    """Who blocked the account, or None when it is not blocked.

    A ``blocked_by`` the server sends wins. Without it, a block whose note carries the
    reconciler's marker is the customer's (the reconciler made it on the customer's behalf);
    any other block is the administrator's: the safe reading, since the reconciler then never
    undoes it."""
    if str(account_info.get(BLOCKED, "N")).upper() != "Y":
        return None
    who = account_info.get(BLOCKED_BY)
    if who in ("admin", "customer"):
        return str(who)
    return "customer" if has_block_marker(account_info) else "admin"


def has_block_marker(account_info: dict[str, Any]) -> bool:
    return BLOCK_MARKER in str(account_info.get(NOTE) or "")


def note_with_marker(note: Any) -> str:
    """The note with the block marker added on a line of its own (what else it says is kept)."""
    text = without_marker(note)
    return f"{text}\n{BLOCK_MARKER}" if text else BLOCK_MARKER


def without_marker(note: Any) -> str:
    """The note with every block marker taken out (the administrator's own text stays)."""
    lines = [line for line in str(note or "").split("\n") if line.strip() != BLOCK_MARKER]
    return "\n".join(lines).replace(BLOCK_MARKER, "").strip("\n")


def block_params(blocked: bool, note: Any = None, *, marked: bool = True) -> dict[str, Any]:
    """The account_info fields that block or unblock an account on the customer's behalf, in one
    update_account: ``blocked``, the note with the marker added or removed (only when ``marked``:
    the server shows notes), and ``blocked_by: "customer"`` with a block (¹: for servers that
    keep who blocked)."""
    fields: dict[str, Any] = {BLOCKED: "Y", BLOCKED_BY: "customer"} if blocked else {BLOCKED: "N"}
    if marked:
        fields[NOTE] = note_with_marker(note) if blocked else without_marker(note)
    return fields


def is_terminated(account_info: dict[str, Any]) -> bool:
    return str(account_info.get("bill_status", "")) in TERMINATED_BILL_STATUSES


def _ended(addon: dict[str, Any], now: datetime, zone: tzinfo) -> bool:
    until = addon.get(ADDON_TO)
    if until in (None, ""):
        return False
    try:
        moment = datetime.strptime(str(until), DATE_FORMAT).replace(tzinfo=zone)
    except ValueError:
        return False  # an unreadable date is kept: counting it is the safe side of quantities
    return moment <= now


def active_addons(
    account_info: dict[str, Any], now: datetime | None = None, zone: tzinfo = UTC
) -> list[dict[str, Any]]:
    """The add-ons assigned now: those whose addon_effective_to is absent, null or still ahead.
    Dates are in the server's time zone ``zone``."""
    moment = now or datetime.now(UTC)
    return [a for a in account_info.get(ASSIGNED_ADDONS) or [] if not _ended(a, moment, zone)]


def has_end_dates(account_info: dict[str, Any]) -> bool:
    """Whether any add-on of the account has an end date (only then is the time zone needed)."""
    return any(a.get(ADDON_TO) not in (None, "") for a in account_info.get(ASSIGNED_ADDONS) or [])


def addon_to_send(addon: dict[str, Any]) -> dict[str, Any]:
    """An assigned add-on as update_account takes it back: i_product and its dates as read."""
    entry: dict[str, Any] = {"i_product": int(addon["i_product"])}
    for name in (ADDON_FROM, ADDON_TO):
        if addon.get(name) not in (None, ""):
            entry[name] = str(addon[name])
    return entry


def fault_matches(faultcode: str, markers: tuple[str, ...]) -> bool:
    code = faultcode.lower()
    return any(marker in code for marker in markers)
