"""How the emulator shows an account: the ``account_info`` of the account list and the read-back.

The field names here are the emulator's own declaration of the wire contract (see
docs/emulator.md), deliberately not shared with the client's
``fields`` module: a misspelt name on either side then fails a test instead of being mirrored.
"""

from __future__ import annotations

from typing import Any

from reconciler.emulator.db import Database
from reconciler.emulator.profile import WireProfile

# Columns of a real account or an alias row, with its customer extension when it has one.
ACCOUNT_COLUMNS = (
    "a.i_account, a.id, a.i_customer, a.i_product, a.billing_model, a.firstname, a.blocked, "
    "a.blocked_by, a.bill_status, a.i_master_account, e.id, e.name, a.note "
    "FROM accounts a LEFT JOIN extensions e ON e.i_account = a.i_account"
)

# The line the reconciler adds to an account's note when it blocks on the customer's behalf
# (docs/portabilling.md, "Who blocked an account"). Written out here, not imported from the
# client: a state file's customer block is served with it, so that a client reading v3 answers
# tells it from an administrator's block, and a client that changed its marker fails its tests.
CUSTOMER_BLOCK_NOTE = "[pbx-reconciler: blocked on the customer's behalf]"

# Aliases are accounts with billing model 2 on a real server; the client must skip such rows.
ALIAS_BILLING_MODEL = 2


def account_infos(
    store: Database, rows: list[tuple[Any, ...]], *, with_aliases: bool
) -> list[dict[str, Any]]:
    """The rows (ACCOUNT_COLUMNS) as the API shows them. Add-ons and aliases are read for the
    whole page at once: two queries a page, not two an account."""
    ids = [row[0] for row in rows if row[9] is None]
    addons = store.grouped(
        "SELECT i_account, i_product, addon_effective_from, addon_effective_to FROM addons",
        "i_account",
        ids,
    )
    aliases = (
        store.grouped("SELECT i_master_account, i_account, id FROM accounts", "i_master_account",
                      ids)
        if with_aliases
        else {}
    )
    infos = []
    for row in rows:
        if row[9] is not None:
            infos.append(alias_info(row, store.profile))
            continue
        info = real_account_info(row, addons.get(row[0], ()), store.profile)
        if with_aliases:
            info["alias_list"] = [
                {"i_account": i_alias, "id": did} for i_alias, did in aliases.get(row[0], ())
            ]
        infos.append(info)
    return infos


def real_account_info(row: tuple[Any, ...], addons: Any, profile: WireProfile) -> dict[str, Any]:
    (i_account, account_id, i_customer, i_product, billing_model, firstname, blocked, blocked_by,
     bill_status, _master, ext_id, ext_name, note) = row  # fmt: skip
    info: dict[str, Any] = {
        "i_account": i_account,
        "id": account_id,
        "i_customer": i_customer,
        "i_product": i_product,
        "billing_model": billing_model,
        "assigned_addons": [
            {"i_product": pid, "addon_effective_from": start, "addon_effective_to": end}
            for pid, start, end in addons
        ],
        "blocked": blocked,
        "bill_status": bill_status,
        "firstname": firstname,
        "extension_id": ext_id,
        "extension_name": ext_name,
    }
    # Who blocked is shown only by a v2 server, and only when it knows: a block sent without
    # blocked_by (or one an administrator made) has none. Real (v3) servers never show it.
    if profile.blocked_by and blocked == "Y" and blocked_by:
        info["blocked_by"] = blocked_by
    if profile.notes:
        info["note"] = note
    return info


def alias_info(row: tuple[Any, ...], profile: WireProfile) -> dict[str, Any]:
    """An alias as its own row of the account list, the way servers list it when the client
    does not ask for ``get_only_real_accounts``."""
    i_account, account_id, i_customer, *_rest = row
    return {
        "i_account": i_account,
        "id": account_id,
        "i_customer": i_customer,
        "i_product": None,
        "billing_model": ALIAS_BILLING_MODEL,
        "i_master_account": row[9],
        "assigned_addons": [],
        "blocked": "N",
        "bill_status": "O",
        "firstname": "",
        **({"note": row[12]} if profile.notes else {}),
    }
