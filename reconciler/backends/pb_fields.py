"""The PortaBilling field names and shapes the wire contract marks as assumptions (¹).

The public API material we could read does not show these fields. They are kept here, and only
here, so a provider who finds a different name in their server's ``/doc/api/`` corrects it in one
place: the backend reads and writes through these names and functions, and so does the emulator,
which keeps the two consistent with each other (but not, of course, with a real server: that is
what checking ``/doc/api/`` is for).
"""

from __future__ import annotations

from typing import Any

# ---- customer_info ---------------------------------------------------------------------------

# customer_info.extension_blocking: "Y" when the customer's self-care role may block/unblock
# its extensions. ¹
CUSTOMER_EXTENSION_BLOCKING = "extension_blocking"

# ---- agreement_info --------------------------------------------------------------------------

# agreement_info.agreement_condition_list[]{i_product, max_offered_quantity}; 0 = unlimited. ¹
AGREEMENT_CONDITIONS = "agreement_condition_list"
CONDITION_PRODUCT = "i_product"
CONDITION_QUANTITY = "max_offered_quantity"

# ---- account_list[] ----------------------------------------------------------------------------

# account_list[].alias_list[]{i_account, id}: the account's aliases (DIDs), each an account of its
# own with its own i_account. ¹
ALIAS_LIST = "alias_list"
ALIAS_I_ACCOUNT = "i_account"
ALIAS_ID = "id"

# account_list[].blocked_by: "admin" | "customer". ¹ Absent with blocked "Y" means "admin".
BLOCKED_BY = "blocked_by"

# An entry of account_list that is itself an alias (some servers list aliases as accounts):
# it carries the i_account of its master. ¹ Such entries are skipped when reading accounts.
MASTER_ACCOUNT = "i_master_account"

# ---- read-back calls (used only to decide whether a write whose outcome is unknown happened) --

# Account/get_alias_list {i_master_account} -> alias_list[]{i_account, id}. ¹
ALIAS_LIST_METHOD = "Account/get_alias_list"
ALIAS_LIST_PARAM = "i_master_account"

# ---- faults ------------------------------------------------------------------------------------

# Fault codes that mean "log in again" (contract) and "no such object" (¹: some servers answer an
# unknown i_customer with a fault rather than an empty customer_info).
AUTH_FAULT_MARKERS = ("check_auth", "auth_failed")
NOT_FOUND_FAULT_MARKERS = ("not_found", "notfound", "no_such")

# bill_status values of a terminated account (contract).
TERMINATED_BILL_STATUSES = frozenset({"terminated", "C"})


# ---- functions over the fields above -------------------------------------------------------------


def customer_may_block(customer_info: dict[str, Any]) -> bool:
    return str(customer_info.get(CUSTOMER_EXTENSION_BLOCKING, "N")).upper() == "Y"


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
    return account_info.get(MASTER_ACCOUNT) not in (None, "", 0)


def blocked_by(account_info: dict[str, Any]) -> str | None:
    """Who blocked the account, or None. A block with no blocked_by is read as the administrator's:
    the safe reading, since the customer then cannot manage the account."""
    if str(account_info.get("blocked", "N")).upper() != "Y":
        return None
    who = account_info.get(BLOCKED_BY)
    return who if who in ("admin", "customer") else "admin"


def block_params(blocked: bool) -> dict[str, Any]:
    """The account_info fields that block or unblock an account on the customer's behalf.

    A server that records who blocked an account may need more here (for example a
    ``blocked_by: "customer"`` or a self-care flag) for the next read to say "customer".
    """
    return {"blocked": "Y" if blocked else "N"}


def is_terminated(account_info: dict[str, Any]) -> bool:
    return str(account_info.get("bill_status", "")) in TERMINATED_BILL_STATUSES


def fault_matches(faultcode: str, markers: tuple[str, ...]) -> bool:
    code = faultcode.lower()
    return any(marker in code for marker in markers)
