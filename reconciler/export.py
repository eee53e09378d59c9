"""Adoption: the spec that describes a customer's current managed accounts."""

from __future__ import annotations

from typing import Any

import yaml

from reconciler.model import CustomerState, managed_key, managed_kind
from reconciler.render import safe


def export_spec(state: CustomerState, schema_comment: str | None = None) -> str:
    """YAML whose plan against ``state`` shows no changes (blocked: true only where blocked),
    starting with ``schema_comment`` (see reconciler.packaged.schema_comment) when given."""
    customer = state.customer
    extensions: list[dict[str, Any]] = []
    attendants: list[dict[str, Any]] = []
    unmanaged: list[str] = []
    for account in sorted(state.accounts, key=lambda a: a.id):
        if not account.is_open:
            continue
        kind = managed_kind(account.id, customer.id)
        if kind is None:
            unmanaged.append(account.id)
            continue
        key = managed_key(account.id)
        assert key is not None
        entry: dict[str, Any] = {}
        if kind == "extension":
            entry["extension"] = key[1]
        else:
            entry["number"] = int(key[1])
        entry["name"] = account.name
        entry["product"] = account.product
        if account.addons:
            entry["addons"] = list(account.addons)
        if account.dids:
            entry["dids"] = list(account.dids)
        if account.blocked_by:
            entry["blocked"] = True
        (extensions if kind == "extension" else attendants).append(entry)
    extensions.sort(key=lambda e: (len(e["extension"]), e["extension"]))
    attendants.sort(key=lambda e: e["number"])
    document: dict[str, Any] = {
        "version": 1, "customer": {"id": customer.id, "name": customer.name}
    }
    document["prune"] = False
    if extensions:
        document["extensions"] = extensions
    if attendants:
        document["auto_attendants"] = attendants
    # Billing's text in a comment is escaped: a line break in a name would write YAML of its own.
    header = (schema_comment or "") + (
        f"# Exported from billing: customer {customer.id} ({safe.text(customer.name)}).\n"
    )
    if unmanaged:
        header += (
            "# Accounts the reconciler does not manage (kept as they are, counted in quantities):\n"
        )
        header += "".join(f"#   {safe.text(account_id)}\n" for account_id in unmanaged)
    # The layout `reconciler fmt` writes (its definition is fmt.py): keys in the format's order,
    # block mappings indented by two, list items indented under their key, add-ons and DIDs in
    # [flow] style as people write them, extensions and DIDs in double quotes. PyYAML writes it
    # directly; tests hold the export to be a fixed point of fmt for generated names, so
    # `fmt --check` passes on an exported spec. (Passing the text through fmt's ruamel round
    # trip did the same at about 10 ms per extension.)
    body = yaml.dump(
        document, Dumper=_QuotingDumper, sort_keys=False, allow_unicode=True, width=4096, indent=2
    )
    return header + body


class _QuotingDumper(safe.SafeTextDumper):
    """Quotes digit strings so extensions and DIDs read back as the same text, and indents a
    list under its key (``  - extension: "101"``), as fmt does."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = '"' if value.isdigit() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _list_representer(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flow = all(isinstance(item, str) for item in value)  # add-ons and DIDs: [a, b]
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_QuotingDumper.add_representer(str, _str_representer)
_QuotingDumper.add_representer(list, _list_representer)
