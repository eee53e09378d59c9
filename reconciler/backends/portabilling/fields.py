"""The PortaBilling field names and shapes the reconciler assumes, with the evidence for each.

This is the one place for them: the backend reads and writes through these names and functions,
so a provider who finds a different name in their server's ``/doc/api/`` corrects it here.
The emulator declares its own shapes and does not import this module, so a wrong name here
makes the tests fail instead of agreeing with itself.

Evidence is public code written against real servers, cited as ``repository path``:

- [objects] portabilling/objects ``Test/TestData/account_2984.json`` and
  ``Test/TestData/customer_444.json`` (real ``account_info`` / ``customer_info`` dumps);
- [billing] portabilling/billing ``Porta/Billing/Components/SessionManager.php``;
- [adapter] portaone/porta-phone-adapter ``app/bss/adapters/portaswitch/api/admin.py``,
  ``app/bss/adapters/portaswitch/failover.py``, ``app/bss/async_http_api.py`` and
  ``tests/test_45_portaswitch_addon_alias.py``;
- [scripts] JustJoshing19/PortaOnePyScripts ``PortaOneCustomer/SingleTaskScripts/...``;
- [n8n] digital-boss/n8n-nodes-portaone ``nodes/PortaOne/descriptions/CustomerExtensionDescription.ts``.

¹ marks what none of these show: an assumption to check against a server (``reconciler doctor``
reports, for every such field, whether the server returned it).
"""

from __future__ import annotations

from datetime import UTC, datetime
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

# Customer/get_customer_agreement_info {i_customer} -> agreement_info: the call is [scripts]
# CustomerAPISCalls/p1_get_agreement_conditions.py; the shape of its answer is ¹:
# agreement_info.agreement_condition_list[]{i_product, max_offered_quantity}; 0 = unlimited.
AGREEMENT_INFO = "agreement_info"
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
# "admin" | "customer", is ¹; absent with blocked "Y" means "admin" (the safe reading).
BLOCKED = "blocked"
BLOCKED_BY = "blocked_by"

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
# [adapter] failover.py lists Server.Session.check_auth.auth_failed.
AUTH_FAULT_MARKERS = ("check_auth", "auth_failed")
# The API user is locked out after repeated failed logins. ¹ (the contract names brute_force)
LOCKOUT_FAULT_MARKERS = ("brute_force",)
# A site that accepts no writes: [adapter] failover.py READ_ONLY_FAULTS.
READ_ONLY_FAULT_MARKERS = ("read_only_mode", "standalone_mode", "secondary_site")
# Generic/get_session_data -> operating_mode: [adapter] failover.py (OPERATING_MODE_NORMAL ...).
SESSION_DATA_METHOD = "Generic/get_session_data"
OPERATING_MODE = "operating_mode"
NORMAL_MODE = "normal"
# "no such object" ¹: some servers answer an unknown i_customer with a fault rather than an
# empty customer_info.
NOT_FOUND_FAULT_MARKERS = ("not_found", "notfound", "no_such")


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


def agreement_quantities(agreement_info: dict[str, Any]) -> list[tuple[int, int]]:
    """(i_product, quantity) for each condition of the agreement; 0 = unlimited."""
    result = []
    for condition in agreement_info.get(AGREEMENT_CONDITIONS) or []:
        quantity = condition.get(CONDITION_QUANTITY)
        result.append((int(condition[CONDITION_PRODUCT]), int(quantity or 0)))
    return result


def aliases_of(account_info: dict[str, Any]) -> list[tuple[int, str]]:
    """(alias i_account, DID) for each alias of an account."""
    return [
        (int(alias[ALIAS_I_ACCOUNT]), str(alias[ALIAS_ID]))
        for alias in account_info.get(ALIAS_LIST) or []
    ]


def is_alias_entry(account_info: dict[str, Any]) -> bool:
    """An alias listed as a row of its own: never an account."""
    if account_info.get(MASTER_ACCOUNT) not in (None, "", 0):
        return True
    return str(account_info.get("billing_model", "")) == str(ALIAS_BILLING_MODEL)


def blocked_by(account_info: dict[str, Any]) -> str | None:
    """Who blocked the account, or None. A block with no blocked_by is read as the administrator's:
    the safe reading, since the customer then cannot manage the account."""
    if str(account_info.get(BLOCKED, "N")).upper() != "Y":
        return None
    who = account_info.get(BLOCKED_BY)
    return who if who in ("admin", "customer") else "admin"


def block_params(blocked: bool) -> dict[str, Any]:
    """The account_info fields that block or unblock an account on the customer's behalf.
    ``blocked_by: "customer"`` in an update is ¹: it is how the next read says "customer"."""
    return {BLOCKED: "Y", BLOCKED_BY: "customer"} if blocked else {BLOCKED: "N"}


def is_terminated(account_info: dict[str, Any]) -> bool:
    return str(account_info.get("bill_status", "")) in TERMINATED_BILL_STATUSES


def _ended(addon: dict[str, Any], now: datetime) -> bool:
    until = addon.get(ADDON_TO)
    if until in (None, ""):
        return False
    try:
        moment = datetime.strptime(str(until), DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return False  # an unreadable date is kept: counting it is the safe side of quantities
    return moment <= now


def active_addons(
    account_info: dict[str, Any], now: datetime | None = None
) -> list[dict[str, Any]]:
    """The add-ons assigned now: those whose addon_effective_to is absent, null or still ahead."""
    moment = now or datetime.now(UTC)
    return [a for a in account_info.get(ASSIGNED_ADDONS) or [] if not _ended(a, moment)]


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
