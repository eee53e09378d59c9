"""The declared shape of every method's params: one JSON Schema per method.

This is the emulator's own statement of the wire contract (docs/emulator.md), written apart from
the client's field names on purpose: a parameter the client misspells, sends with the wrong type
or leaves out is then a fault in the tests, as on a real server, not something both sides agree
on by sharing one module. Every object level forbids unknown members; integers are JSON integers
(validation.py also refuses 46170.0 and booleans, which JSON Schema itself would let through).
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

ID = {"type": "integer", "minimum": 1}  # an i_* key
FLAG = {"type": "integer", "enum": [0, 1]}
TEXT = {"type": "string"}
NAME = {"type": "string", "maxLength": 200}
ACCOUNT_ID = {"type": "string", "minLength": 1, "maxLength": 64}
EXTENSION_ID = {"type": "string", "pattern": "^[0-9]{1,15}$"}
YES_NO = {"type": "string", "enum": ["Y", "N"]}
# Dates the server shows and takes back: "YYYY-MM-DD HH:MM:SS" (UTC).
DATE = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"}
PAGE = {
    "limit": {"type": "integer", "minimum": 1},
    "offset": {"type": "integer", "minimum": 0},
    "get_total": FLAG,
}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> Schema:
    """An object with these members and no others."""
    schema: Schema = {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema


def paged(required: dict[str, Any], optional: dict[str, Any] | None = None) -> Schema:
    """A list call: ``limit`` and ``offset`` are optional (but an offset comes with its limit:
    db.py checks that, as JSON Schema's dependentRequired is outside the compiled subset)."""
    return obj(required, {**PAGE, **(optional or {})})


def items(schema: Schema) -> Schema:
    return {"type": "array", "items": schema}


CUSTOMER = {"i_customer": ID}

SHAPES: dict[str, Schema] = {
    # ---- session ----
    # Exactly one of password and token: the server checks that itself (sessions.py).
    "Session/login": obj({"login": TEXT}, {"password": TEXT, "token": TEXT}),
    "Session/refresh_access_token": obj({"refresh_token": TEXT}),
    "Generic/get_session_data": obj({}),
    # ---- reads ----
    "Product/get_product_list": paged({}),
    "Customer/get_customer_list": paged({}),
    "Customer/get_customer_info": obj(CUSTOMER),
    "Customer/get_customer_agreement_info": obj(CUSTOMER),
    "DID/get_number_list": paged(CUSTOMER),
    "Account/get_account_list": paged(
        CUSTOMER, {"with_aliases": FLAG, "get_only_real_accounts": FLAG}
    ),
    # Exactly one of i_account and id: checked by the method (reads.py).
    "Account/get_account_info": obj({}, {"i_account": ID, "id": ACCOUNT_ID}),
    "Account/get_alias_list": paged({"i_master_account": ID}),
    "Customer/get_extensions_list": paged(CUSTOMER),
    # ---- writes ----
    "Account/add_account": obj(
        {
            "account_info": obj(
                {
                    "i_customer": ID,
                    "id": ACCOUNT_ID,
                    "i_product": ID,
                    # Auto attendants: the universal account role and a credit account.
                    "i_account_role": {"type": "integer", "const": 1},
                    "billing_model": {"type": "integer", "const": 1},
                },
                {
                    "assigned_addons": items(obj({"i_product": ID})),
                    "firstname": NAME,
                    "blocked": YES_NO,
                    "blocked_by": {"type": "string", "const": "customer"},
                },
            )
        }
    ),
    # Exactly one of i_product (v2: the server creates the account) and i_account (v1: link one).
    "Customer/add_customer_extension": obj(
        {"i_customer": ID, "id": EXTENSION_ID, "name": NAME}, {"i_product": ID, "i_account": ID}
    ),
    "Customer/update_customer_extension": obj({"i_customer": ID, "i_c_ext": ID, "name": NAME}),
    "Account/update_account": obj(
        {
            "account_info": obj(
                {"i_account": ID},
                {
                    "i_product": ID,
                    # The whole list; entries kept unchanged come back with their dates as read.
                    "assigned_addons": items(
                        obj(
                            {"i_product": ID},
                            {
                                "addon_effective_from": DATE,
                                "addon_effective_to": {**DATE, "type": ["string", "null"]},
                            },
                        )
                    ),
                    "blocked": YES_NO,
                    "blocked_by": {"type": "string", "const": "customer"},
                    "firstname": NAME,
                },
            )
        }
    ),
    "Account/add_alias": obj({"alias_info": obj({"i_master_account": ID, "id": ACCOUNT_ID})}),
    # release_assigned_did sits next to alias_info, as public scripts send it (0 keeps the DID
    # in the customer's pool; servers may release it when the flag is left out).
    "Account/delete_alias": obj(
        {"alias_info": obj({"i_account": ID})}, {"release_assigned_did": FLAG}
    ),
    "Account/terminate_account": obj({"i_account": ID}, {"release_assigned_did": FLAG}),
}

WRITE_METHODS = frozenset(
    {
        "Account/add_account",
        "Customer/add_customer_extension",
        "Customer/update_customer_extension",
        "Account/update_account",
        "Account/add_alias",
        "Account/delete_alias",
        "Account/terminate_account",
    }
)
