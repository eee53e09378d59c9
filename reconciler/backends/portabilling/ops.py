"""Each plan op as PortaBilling calls (wire contract v3), with the read-back that confirms it.

Creating an extension is ``Customer/add_customer_extension {i_customer, id, name, i_product}``:
billing generates the account, in whatever ID format it uses. Its account is found through the
answer's ``i_c_ext`` and ``Customer/get_extensions_list`` (the extension's ``i_account``), never
by guessing the ID, and read with ``Account/get_account_info {i_account}``; then add-ons and a
block go in one ``Account/update_account``. Auto attendants are created with
``Account/add_account``. The first version's linking call (``add_customer_extension`` with
``i_account``) is used only to repair an extension account that no customer extension points to.

No write's answer is indexed unguarded: a key it lacks is read back from billing. Every write
is reported to the session the moment it is in billing (``SafeWriter.on_landed``), before the
answer is even looked at.
"""

from __future__ import annotations

from typing import Any, assert_never

from reconciler.backends.portabilling import fields as wire
from reconciler.backends.portabilling.errors import (
    MalformedAnswer,
    PortaBillingFault,
    TransportError,
)
from reconciler.backends.portabilling.writes import Landed, PortaBillingSession, Write, int_or_none
from reconciler.changes import (
    AddAddon,
    AddAlias,
    Block,
    Change,
    CreateAccount,
    RemoveAddon,
    RemoveAlias,
    SetName,
    SetProduct,
    TerminateAccount,
    Unblock,
)
from reconciler.errors import BackendError
from reconciler.model import managed_key, managed_kind

# ---- creating ---------------------------------------------------------------------------------


def create_account(s: PortaBillingSession, item: CreateAccount, landed: Landed) -> None:
    if item.kind == "extension":
        _create_extension(s, item, landed)
    else:
        _create_auto_attendant(s, item)


def _create_auto_attendant(s: PortaBillingSession, item: CreateAccount) -> None:
    assert s.raw is not None
    product_id = s.product_id(item.product)
    info: dict[str, Any] = {
        "i_customer": s.customer_id,
        "id": item.account,
        "i_product": product_id,
        "i_account_role": 1,
        "billing_model": 1,
        "assigned_addons": [{"i_product": s.product_id(name)} for name in item.addons],
        "firstname": item.name,
    }
    if item.blocked:
        info.update(wire.block_params(True, marked=s.raw.notes_shown))
    answer = s.writer.perform(
        Write(
            "Account/add_account",
            {"account_info": info},
            lambda: _existing(s, item.account, product_id),
            f"creating {item.account}",
        )
    )
    i_account = int_or_none(answer.get(wire.ANSWER_I_ACCOUNT))
    row: dict[str, Any] | None = None
    if i_account is None:
        # An answer without the new i_account: the account ID is ours, so billing is asked.
        found = _existing(s, item.account, product_id)
        row = found["account_info"] if found is not None else None
    s.raw.accounts[item.account] = row or {
        **info,
        "i_account": i_account,
        "bill_status": "O",
        wire.ALIAS_LIST: [],
    }
    if item.blocked and not s.raw.notes_shown:
        _mark_new_block(s, item.account)


def _mark_new_block(s: PortaBillingSession, account_id: str) -> None:
    """A customer with no account yet tells nothing of notes, so an auto attendant created
    blocked went without the marker: read it back, and when billing shows its note, mark the
    block (else it would read as the administrator's, and the reconciler could never undo it)."""
    assert s.raw is not None
    info = s.account(account_id)
    current = s.account_info(id=account_id)
    if current is None or wire.NOTE not in current:
        return
    s.raw.notes_shown = True
    info.setdefault("i_account", current.get("i_account"))
    info[wire.NOTE] = current[wire.NOTE]
    fields = wire.block_params(True, current[wire.NOTE])
    _update(s, account_id, fields, f"marking the block of {account_id} as the customer's")


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


def _create_extension(s: PortaBillingSession, item: CreateAccount, landed: Landed) -> None:
    assert s.raw is not None
    key = managed_key(item.account)
    assert key is not None
    number, name = key[1], item.name
    product_id = s.product_id(item.product)

    def confirm() -> dict[str, Any] | None:
        # A lost answer or a fault: the extension is in billing when the list has it, with an
        # open account of that product. An account holding the managed ID without an extension
        # (a first-version run stopped between its two calls) is adopted and linked below.
        extension = s.find_extension(lambda e: str(e.get("id")) == number)
        i_account = int_or_none(extension.get("i_account")) if extension is not None else None
        if extension is None or i_account is None:
            found = _existing(s, item.account, product_id)
            if found is None:
                return None
            return {"account_info": found["account_info"], "extension": None}
        info = s.account_info(i_account=i_account)
        product = int_or_none(info.get("i_product")) if info is not None else None
        if info is None or wire.is_terminated(info) or product != product_id:
            return None
        return {
            wire.ANSWER_I_C_EXT: extension.get("i_c_ext"), "extension": extension,
            "account_info": info,
        }

    answer = s.writer.perform(
        Write(
            wire.EXTENSION_CREATE_METHOD,
            {"i_customer": s.customer_id, "id": number, "name": name, "i_product": product_id},
            confirm,
            f"creating extension {number} ({item.account})",
        )
    )
    # In billing (and audited) from here on, whatever follows.
    extension, info = _created(s, answer, number, name)
    i_account = int(info["i_account"])
    s.raw.accounts[item.account] = {**info, wire.ALIAS_LIST: info.get(wire.ALIAS_LIST) or []}
    if str(info.get("id")) != item.account:
        s.raw.renamed[item.account] = str(info.get("id"))
    if extension is None:
        _link_extension(s, item.account, i_account, name)  # a half-made extension: repair it
    else:
        s.raw.extensions[i_account] = extension
    fields: dict[str, Any] = {}
    if item.addons:
        fields[wire.ASSIGNED_ADDONS] = [
            {"i_product": s.product_id(n)} for n in item.addons
        ]
    if item.blocked:
        marked = s.raw.notes_shown or wire.NOTE in info
        fields.update(wire.block_params(True, info.get(wire.NOTE), marked=marked))
    if fields:
        _update(s, item.account, fields, f"setting the add-ons and block of {item.account}")


def _created(
    s: PortaBillingSession, answer: dict[str, Any], number: str, name: str
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the new customer extension, its account's account_info), found through the answer's
    i_c_ext and the extensions list (or the number, when the answer has no i_c_ext). The
    extension is None for an adopted account that no extension links yet."""
    if "account_info" in answer and "extension" in answer:  # confirmed by reading back
        return answer["extension"], answer["account_info"]
    i_c_ext = int_or_none(answer.get(wire.ANSWER_I_C_EXT))
    i_account = int_or_none(answer.get(wire.ANSWER_I_ACCOUNT))
    extension: dict[str, Any] | None = None
    if i_c_ext is not None and i_account is not None:
        extension = {"i_c_ext": i_c_ext, "id": number, "name": name, "i_account": i_account}
    else:
        extension = s.find_extension(
            (lambda e: int_or_none(e.get("i_c_ext")) == i_c_ext)
            if i_c_ext is not None
            else (lambda e: str(e.get("id")) == number)
        )
        i_account = int_or_none(extension.get("i_account")) if extension is not None else None
    info = s.account_info(i_account=i_account) if extension is not None and i_account else None
    if extension is None or info is None:
        raise BackendError(
            f"creating extension {number}: billing answered, but the new extension's account "
            "cannot be read back; plan again to see billing's state"
        )
    return extension, info


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
        same = all(_same_field(s, name, current, value) for name, value in fields.items())
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


def _same_field(
    s: PortaBillingSession, name: str, current: dict[str, Any], wanted: Any
) -> bool:
    if name == wire.BLOCKED_BY:
        return True  # servers need not show it (v3): blocked and the note tell
    if name == wire.NOTE:
        return wire.has_block_marker(current) == (wire.BLOCK_MARKER in str(wanted))
    if name == wire.ASSIGNED_ADDONS:
        assert s.raw is not None
        active = wire.active_addons(current, zone=s.raw.zone)
        return sorted(int(a["i_product"]) for a in active) == sorted(
            int(a["i_product"]) for a in wanted
        )
    value = current.get(name)
    if name == "i_product":
        return value is not None and int(value) == int(wanted)
    return str(value if value is not None else "") == str(wanted)


def set_product(s: PortaBillingSession, item: SetProduct, landed: Landed) -> None:
    _update(
        s,
        item.account,
        {"i_product": s.product_id(item.to)},
        f"setting the product of {item.account}",
    )


def _kept_addons(s: PortaBillingSession, account_id: str, without: int) -> list[dict[str, Any]]:
    """The account's assigned add-ons, as update_account takes them back (dates kept), less one.
    Add-ons whose end date is past are no longer assigned and are left out."""
    assert s.raw is not None
    active = wire.active_addons(s.account(account_id), zone=s.raw.zone)
    return [wire.addon_to_send(a) for a in active if int(a["i_product"]) != without]


def add_addon(s: PortaBillingSession, item: AddAddon, landed: Landed) -> None:
    wanted = s.product_id(item.product)
    addons = [*_kept_addons(s, item.account, wanted), {"i_product": wanted}]
    _update(
        s,
        item.account,
        {wire.ASSIGNED_ADDONS: addons},
        f"adding add-on {item.product} to {item.account}",
    )


def remove_addon(s: PortaBillingSession, item: RemoveAddon, landed: Landed) -> None:
    addons = _kept_addons(s, item.account, s.product_id(item.product))
    _update(
        s,
        item.account,
        {wire.ASSIGNED_ADDONS: addons},
        f"removing add-on {item.product} from {item.account}",
    )


def block(s: PortaBillingSession, item: Block, landed: Landed) -> None:
    known, note = _note(s, item.account)
    fields = wire.block_params(True, note, marked=known)
    _update(s, item.account, fields, f"blocking {item.account}")


def unblock(s: PortaBillingSession, item: Unblock, landed: Landed) -> None:
    known, note = _note(s, item.account)
    fields = wire.block_params(False, note, marked=known)
    _update(s, item.account, fields, f"unblocking {item.account}")


def _note(s: PortaBillingSession, account_id: str) -> tuple[bool, Any]:
    """(whether billing shows the account's note, the note): from the account list, else read
    from billing, so that the block marker goes in beside the administrator's text, not over it.
    A server that shows no notes gets none: its blocks then all read as the administrator's
    unless it sends blocked_by (doctor warns)."""
    info = s.account(account_id)
    if wire.NOTE in info:
        return True, info[wire.NOTE]
    assert s.raw is not None
    if not s.raw.notes_shown:
        return False, None
    current = s.account_info(i_account=int(info["i_account"]))
    if current is not None and wire.NOTE in current:
        info[wire.NOTE] = current[wire.NOTE]
        return True, current[wire.NOTE]
    return False, None


def set_name(s: PortaBillingSession, item: SetName, landed: Landed) -> None:
    assert s.raw is not None
    name = item.to
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


def add_alias(s: PortaBillingSession, item: AddAlias, landed: Landed) -> None:
    info = s.account(item.account)
    i_account = int(info["i_account"])
    did = item.did

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
    # In billing (and audited) already. An answer without the alias's i_account is read back;
    # if even that fails, the alias is kept with an unknown i_account, read when it is needed.
    i_alias = int_or_none(answer.get(wire.ANSWER_I_ACCOUNT))
    if i_alias is None:
        try:
            i_alias = s.aliases(i_account).get(did)
        except (PortaBillingFault, TransportError, MalformedAnswer):
            i_alias = None
    aliases = info.setdefault(wire.ALIAS_LIST, [])
    aliases.append({wire.ALIAS_I_ACCOUNT: i_alias, wire.ALIAS_ID: did})


def remove_alias(s: PortaBillingSession, item: RemoveAlias, landed: Landed) -> None:
    info = s.account(item.account)
    i_account = int(info["i_account"])
    did = item.did
    held = {
        str(a[wire.ALIAS_ID]): int_or_none(a.get(wire.ALIAS_I_ACCOUNT))
        for a in info.get(wire.ALIAS_LIST) or []
    }
    if did not in held:
        raise BackendError(f"DID {did} is not an alias of {item.account} in billing")
    i_alias = held[did] if held[did] is not None else s.aliases(i_account).get(did)
    if i_alias is None:
        raise BackendError(f"DID {did} is not an alias of {item.account} in billing")

    def confirm() -> dict[str, Any] | None:
        return None if did in s.aliases(i_account) else {}

    s.writer.perform(
        Write(
            "Account/delete_alias",
            {"alias_info": {"i_account": i_alias}, **wire.KEEP_DIDS},
            confirm,
            f"removing DID {did} from {item.account}",
        )
    )
    info[wire.ALIAS_LIST] = [
        a for a in info.get(wire.ALIAS_LIST) or [] if str(a[wire.ALIAS_ID]) != did
    ]


def terminate_account(s: PortaBillingSession, item: TerminateAccount, landed: Landed) -> None:
    info = s.account(item.account)
    i_account = int(info["i_account"])

    def confirm() -> dict[str, Any] | None:
        current = s.account_info(i_account=i_account)
        return {} if current is not None and wire.is_terminated(current) else None

    s.writer.perform(
        Write(
            "Account/terminate_account",
            {"i_account": i_account, **wire.KEEP_DIDS},
            confirm,
            f"terminating {item.account}",
        )
    )
    info["bill_status"] = "C"


def perform(s: PortaBillingSession, item: Change, landed: Landed) -> None:
    """Write one change of a plan to billing (the session's ``perform``)."""
    match item:
        case CreateAccount():
            create_account(s, item, landed)
        case SetProduct():
            set_product(s, item, landed)
        case SetName():
            set_name(s, item, landed)
        case AddAddon():
            add_addon(s, item, landed)
        case RemoveAddon():
            remove_addon(s, item, landed)
        case Block():
            block(s, item, landed)
        case Unblock():
            unblock(s, item, landed)
        case AddAlias():
            add_alias(s, item, landed)
        case RemoveAlias():
            remove_alias(s, item, landed)
        case TerminateAccount():
            terminate_account(s, item, landed)
        case _:
            assert_never(item)
