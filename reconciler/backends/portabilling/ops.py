"""Each plan op as PortaBilling calls (wire contract v2), with the read-back that confirms it.

Creating an extension is ``Customer/add_customer_extension {i_customer, id, name, i_product}``:
billing generates the account ``ph{i_customer}x{id}``; it is read back for its ``i_account``
(``Account/get_account_info {id}``), then add-ons and a block go in one ``Account/update_account``.
Auto attendants are created with ``Account/add_account``. The first version's linking call
(``add_customer_extension`` with ``i_account``) is used only to repair an extension account that
no customer extension points to.
"""

from __future__ import annotations

from typing import Any

from reconciler.backends.portabilling import fields as wire
from reconciler.backends.portabilling.writes import Landed, Op, PortaBillingSession, Write
from reconciler.errors import BackendError
from reconciler.model import Change, managed_key, managed_kind

# ---- creating ---------------------------------------------------------------------------------


def create_account(s: PortaBillingSession, item: Change, landed: Landed) -> None:
    if item.get("kind") == "extension":
        _create_extension(s, item, landed)
    else:
        _create_auto_attendant(s, item)


def _create_auto_attendant(s: PortaBillingSession, item: Change) -> None:
    assert s.raw is not None
    product_id = s.product_id(item.get("product"))
    info: dict[str, Any] = {
        "i_customer": s.customer_id,
        "id": item.account,
        "i_product": product_id,
        "i_account_role": 1,
        "billing_model": 1,
        "assigned_addons": [{"i_product": s.product_id(name)} for name in item.get("addons")],
        "firstname": item.get("name"),
    }
    if item.get("blocked"):
        info.update(wire.block_params(True))
    answer = s.writer.perform(
        Write(
            "Account/add_account",
            {"account_info": info},
            lambda: _existing(s, item.account, product_id),
            f"creating {item.account}",
        )
    )
    s.raw.accounts[item.account] = {
        **info,
        "i_account": int(answer["i_account"]),
        "bill_status": "O",
        wire.ALIAS_LIST: [],
    }


def _existing(s: PortaBillingSession, account_id: str, product_id: int) -> dict[str, Any] | None:
    """The account when it exists for this customer, open, with that product (an earlier,
    interrupted run made it); None when it does not; an error when another customer holds it."""
    found = s.account_info(id=account_id)
    if found is None:
        return None
    owner = found.get("i_customer")
    if owner not in (None, "") and int(owner) != s.customer_id:
        raise BackendError(
            f"account ID {account_id} already belongs to customer {owner} in billing; "
            f"it cannot be created for customer {s.customer_id}"
        )
    if wire.is_terminated(found) or int(found.get("i_product") or 0) != product_id:
        return None
    return {"i_account": found["i_account"], "account_info": found}


def _create_extension(s: PortaBillingSession, item: Change, landed: Landed) -> None:
    assert s.raw is not None
    key = managed_key(item.account)
    assert key is not None
    number, name = key[1], item.get("name")
    product_id = s.product_id(item.get("product"))
    answer = s.writer.perform(
        Write(
            wire.EXTENSION_CREATE_METHOD,
            {"i_customer": s.customer_id, "id": number, "name": name, "i_product": product_id},
            lambda: _existing(s, item.account, product_id),
            f"creating extension {number} ({item.account})",
        )
    )
    # Read back for the i_account (the answer of a confirmed write already holds it).
    found = answer if "account_info" in answer else _existing(s, item.account, product_id)
    if found is None:
        raise BackendError(
            f"creating extension {number}: billing answered, but account {item.account} cannot be "
            "read back; plan again to see billing's state"
        )
    info = found["account_info"]
    i_account = int(info["i_account"])
    s.raw.accounts[item.account] = {
        **info,
        wire.ALIAS_LIST: info.get(wire.ALIAS_LIST) or [],
    }
    landed()  # the account exists: the create is in billing, whatever follows
    extension = (
        s.extension_of(i_account)
        if "i_c_ext" not in answer
        else {
            "i_c_ext": answer["i_c_ext"],
            "id": number,
            "name": name,
            "i_account": i_account,
        }
    )
    if extension is None:
        _link_extension(s, item.account, i_account, name)  # a half-made extension: repair it
    else:
        s.raw.extensions[i_account] = extension
    fields: dict[str, Any] = {}
    if item.get("addons"):
        fields[wire.ASSIGNED_ADDONS] = [
            {"i_product": s.product_id(n)} for n in item.get("addons")
        ]
    if item.get("blocked"):
        fields.update(wire.block_params(True))
    if fields:
        _update(s, item.account, fields, f"setting the add-ons and block of {item.account}")


def _link_extension(s: PortaBillingSession, account_id: str, i_account: int, name: str) -> None:
    """The first version's call: link an existing account to a new customer extension."""
    assert s.raw is not None
    key = managed_key(account_id)
    assert key is not None
    params = {"i_customer": s.customer_id, "id": key[1], "i_account": i_account, "name": name}

    def confirm() -> dict[str, Any] | None:
        found = s.extension_of(i_account)
        return found if found is not None and found.get("name") == name else None

    answer = s.writer.perform(
        Write(
            wire.EXTENSION_CREATE_METHOD,
            params,
            confirm,
            f"linking extension {key[1]} to {account_id}",
        )
    )
    s.raw.extensions[i_account] = {**params, "i_c_ext": answer.get("i_c_ext")}


# ---- changing ---------------------------------------------------------------------------------


def _update(s: PortaBillingSession, account_id: str, fields: dict[str, Any], what: str) -> None:
    info = s.account(account_id)
    i_account = int(info["i_account"])

    def confirm() -> dict[str, Any] | None:
        current = s.account_info(i_account=i_account)
        if current is None:
            return None
        same = all(_same_field(name, current, value) for name, value in fields.items())
        return {} if same else None

    s.writer.perform(
        Write(
            "Account/update_account",
            {"account_info": {"i_account": i_account, **fields}},
            confirm,
            what,
        )
    )
    info.update(fields)


def _same_field(name: str, current: dict[str, Any], wanted: Any) -> bool:
    if name == wire.ASSIGNED_ADDONS:
        active = wire.active_addons(current)
        return sorted(int(a["i_product"]) for a in active) == sorted(
            int(a["i_product"]) for a in wanted
        )
    value = current.get(name)
    if name == "i_product":
        return value is not None and int(value) == int(wanted)
    return str(value if value is not None else "") == str(wanted)


def set_product(s: PortaBillingSession, item: Change, landed: Landed) -> None:
    _update(
        s,
        item.account,
        {"i_product": s.product_id(item.get("to"))},
        f"setting the product of {item.account}",
    )


def _kept_addons(s: PortaBillingSession, account_id: str, without: int) -> list[dict[str, Any]]:
    """The account's assigned add-ons, as update_account takes them back (dates kept), less one.
    Add-ons whose end date is past are no longer assigned and are left out."""
    active = wire.active_addons(s.account(account_id))
    return [wire.addon_to_send(a) for a in active if int(a["i_product"]) != without]


def add_addon(s: PortaBillingSession, item: Change, landed: Landed) -> None:
    wanted = s.product_id(item.get("product"))
    addons = [*_kept_addons(s, item.account, wanted), {"i_product": wanted}]
    _update(
        s,
        item.account,
        {wire.ASSIGNED_ADDONS: addons},
        f"adding add-on {item.get('product')} to {item.account}",
    )


def remove_addon(s: PortaBillingSession, item: Change, landed: Landed) -> None:
    addons = _kept_addons(s, item.account, s.product_id(item.get("product")))
    _update(
        s,
        item.account,
        {wire.ASSIGNED_ADDONS: addons},
        f"removing add-on {item.get('product')} from {item.account}",
    )


def block(s: PortaBillingSession, item: Change, landed: Landed) -> None:
    _update(s, item.account, wire.block_params(True), f"blocking {item.account}")


def unblock(s: PortaBillingSession, item: Change, landed: Landed) -> None:
    _update(s, item.account, wire.block_params(False), f"unblocking {item.account}")


def set_name(s: PortaBillingSession, item: Change, landed: Landed) -> None:
    assert s.raw is not None
    name = item.get("to")
    if managed_kind(item.account, s.customer_id) != "extension":
        _update(s, item.account, {"firstname": name}, f"renaming {item.account}")
        return
    i_account = int(s.account(item.account)["i_account"])
    extension = s.raw.extensions.get(i_account)
    if extension is None or extension.get("i_c_ext") in (None, ""):
        _link_extension(s, item.account, i_account, name)
        return
    params = {"i_customer": s.customer_id, "i_c_ext": extension["i_c_ext"], "name": name}

    def confirm() -> dict[str, Any] | None:
        found = s.extension_of(i_account)
        return {} if found is not None and found.get("name") == name else None

    s.writer.perform(
        Write("Customer/update_customer_extension", params, confirm, f"renaming {item.account}")
    )
    extension["name"] = name


# ---- DIDs and termination -----------------------------------------------------------------------


def add_alias(s: PortaBillingSession, item: Change, landed: Landed) -> None:
    info = s.account(item.account)
    i_account = int(info["i_account"])
    did = item.get("did")

    def confirm() -> dict[str, Any] | None:
        i_alias = s.aliases(i_account).get(did)
        return None if i_alias is None else {"i_account": i_alias}

    answer = s.writer.perform(
        Write(
            "Account/add_alias",
            {"alias_info": {"i_master_account": i_account, "id": did}},
            confirm,
            f"adding DID {did} to {item.account}",
        )
    )
    aliases = info.setdefault(wire.ALIAS_LIST, [])
    aliases.append({wire.ALIAS_I_ACCOUNT: int(answer["i_account"]), wire.ALIAS_ID: did})


def remove_alias(s: PortaBillingSession, item: Change, landed: Landed) -> None:
    info = s.account(item.account)
    i_account = int(info["i_account"])
    did = item.get("did")
    held = {alias: i_alias for i_alias, alias in wire.aliases_of(info)}
    if did not in held:
        raise BackendError(f"DID {did} is not an alias of {item.account} in billing")

    def confirm() -> dict[str, Any] | None:
        return None if did in s.aliases(i_account) else {}

    s.writer.perform(
        Write(
            "Account/delete_alias",
            {"alias_info": {"i_account": held[did]}},
            confirm,
            f"removing DID {did} from {item.account}",
        )
    )
    info[wire.ALIAS_LIST] = [
        a for a in info.get(wire.ALIAS_LIST) or [] if str(a[wire.ALIAS_ID]) != did
    ]


def terminate_account(s: PortaBillingSession, item: Change, landed: Landed) -> None:
    info = s.account(item.account)
    i_account = int(info["i_account"])

    def confirm() -> dict[str, Any] | None:
        current = s.account_info(i_account=i_account)
        return {} if current is not None and wire.is_terminated(current) else None

    s.writer.perform(
        Write(
            "Account/terminate_account",
            {"i_account": i_account},
            confirm,
            f"terminating {item.account}",
        )
    )
    info["bill_status"] = "C"


OPS: dict[str, Op] = {
    "create_account": create_account,
    "set_product": set_product,
    "set_name": set_name,
    "add_addon": add_addon,
    "remove_addon": remove_addon,
    "block": block,
    "unblock": unblock,
    "add_alias": add_alias,
    "remove_alias": remove_alias,
    "terminate_account": terminate_account,
}
