"""The PortaBilling backend's diagnostics (``reconciler doctor``): the first five minutes with a
real PortaBilling server, read-only.

It logs in (never showing a secret), asks the server's operating mode, reads the product list,
and, for one customer, every read a plan makes, reporting for every field the wire contract
relies on whether the server returned it (with a sample value where that is harmless). Each
finding is a ``Check`` with status ``ok``, ``warn`` (works, but not as the contract assumes) or
``fail`` (a plan or an apply would fail). Nothing is ever written: the client it uses refuses
writes outright.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reconciler.backends.portabilling import fields as wire
from reconciler.backends.portabilling.client import (
    ClientSettings,
    Credentials,
    PortaBillingClient,
    endpoint_of,
)
from reconciler.backends.portabilling.config import ENV_BLOCKING_ROLES, blocking_roles_from_env
from reconciler.backends.portabilling.reads import (
    ACCOUNTS_METHOD,
    AGREEMENT_METHOD,
    CUSTOMER_METHOD,
    EXTENSIONS_METHOD,
    NUMBERS_METHOD,
    PRODUCTS_METHOD,
    catalogue_from,
    fetch_customer,
)
from reconciler.doctor_report import FAIL, OK, WARN, DoctorReport, check_fields
from reconciler.errors import BackendError, ReconcilerError
from reconciler.model import Catalogue, extension_account_id

CUSTOMER_LIST_METHOD = "Customer/get_customer_list"


class _ReadOnlyClient(PortaBillingClient):
    """The doctor's client: any write is a bug, and is refused before it leaves."""

    def write(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise BackendError(f"reconciler doctor never writes (refused {method})")


# ---- the run -------------------------------------------------------------------------------------


def run_doctor(
    backend_url: str,
    *,
    customer_id: int | None = None,
    spec_customer: Callable[[], int | None] = lambda: None,
    env: Mapping[str, str],
    settings: ClientSettings | None = None,
) -> DoctorReport:
    report = DoctorReport()
    client = _connect(report, backend_url, env, settings)
    if client is None:
        return report
    try:
        if not _login(report, client):
            return report
        _operating_mode(report, client)
        catalogue = _products(report, client)
        cid = (
            customer_id or _spec_customer(report, spec_customer) or _first_customer(report, client)
        )
        if cid is not None:
            _customer(report, client, cid, env, catalogue)
    finally:
        client.close()
    return report


def _connect(
    report: DoctorReport, url: str, env: Mapping[str, str], settings: ClientSettings | None
) -> PortaBillingClient | None:
    try:
        endpoint = endpoint_of(url)
        credentials = Credentials.from_env(env)
        client_settings = settings or ClientSettings.from_env(env)
        blocking_roles_from_env(env)
    except ReconcilerError as exc:
        report.add("backend", FAIL, str(exc))
        return None
    secret = "PORTABILLING_PASSWORD" if credentials.password is not None else "PORTABILLING_TOKEN"
    report.add(
        "backend", OK, f"{endpoint.base} as {credentials.login} (secret from {secret}, not shown)"
    )
    return _ReadOnlyClient(endpoint, credentials, client_settings)


def _login(report: DoctorReport, client: PortaBillingClient) -> bool:
    try:
        client.session.token()
    except ReconcilerError as exc:
        report.add("login", FAIL, str(exc))
        return False
    grant = client.session.grant
    assert grant is not None
    lifetime = f"token good for {grant.lifetime:g} s" if grant.lifetime else "no lifetime told"
    report.add("login", OK, f"logged in once; {lifetime}")
    if grant.refresh_token is None:
        report.add(
            "login.refresh_token", WARN, "not returned: each renewal will be a new login"
        )
    else:
        report.add(
            "login.refresh_token", OK, "returned: sessions are renewed without logging in"
        )
    if grant.told_by:
        report.add(
            "login.expiry",
            OK,
            f"told by {', '.join(grant.told_by)}: the token is renewed before it expires",
        )
    else:
        report.add(
            "login.expiry",
            WARN,
            "neither expires_in, expires_at nor a JWT exp: tokens are renewed only when refused",
        )
    return True


def _operating_mode(report: DoctorReport, client: PortaBillingClient) -> None:
    try:
        mode = client.read(wire.SESSION_DATA_METHOD).get(wire.OPERATING_MODE)
    except ReconcilerError as exc:
        report.add("operating_mode", WARN, f"cannot tell ({exc})")
        return
    _time_zone(report, client)
    if mode == wire.NORMAL_MODE:
        report.add("operating_mode", OK, "normal: the server accepts writes")
    elif mode is None:
        report.add(
            "operating_mode", WARN, f"{wire.SESSION_DATA_METHOD} answered no operating_mode"
        )
    else:
        report.add(
            "operating_mode",
            WARN,
            f"{mode}: the server accepts no writes now (disaster-recovery site or maintenance); "
            "plan works, apply will stop at its first write",
        )


def _time_zone(report: DoctorReport, client: PortaBillingClient) -> None:
    try:
        zone, said = client.server_zone()
    except ReconcilerError as exc:
        report.add("time_zone", WARN, f"cannot tell ({exc})")
        return
    status = OK if wire.SESSION_DATA_METHOD in said or "=" in said else WARN
    report.add("time_zone", status, f"add-on dates are read in {zone}: {said}")


def _products(report: DoctorReport, client: PortaBillingClient) -> Catalogue | None:
    try:
        products = client.read_list(PRODUCTS_METHOD, {}, "product_list")
        catalogue = catalogue_from(products)
    except ReconcilerError as exc:
        report.add("products", FAIL, str(exc))
        return None
    mains = sum(1 for p in catalogue.products if p.type == "main")
    status = OK if products else FAIL
    report.add("products", status, f"{mains} main, {len(catalogue.products) - mains} add-on")
    check_fields(
        report,
        "products",
        products,
        [("i_product", FAIL), ("name", FAIL), ("addon_priority", WARN)],
    )
    return catalogue if products else None


def _spec_customer(report: DoctorReport, spec_customer: Callable[[], int | None]) -> int | None:
    try:
        return spec_customer()
    except ReconcilerError as exc:
        report.add("customer", WARN, f"cannot read the customer from the specs ({exc})")
        return None


def _first_customer(report: DoctorReport, client: PortaBillingClient) -> int | None:
    try:
        answer = client.read(CUSTOMER_LIST_METHOD, {"limit": 1, "offset": 0})
        first = (answer.get("customer_list") or [{}])[0]
        return int(first["i_customer"])
    except (ReconcilerError, KeyError, TypeError, ValueError, IndexError) as exc:
        report.add(
            "customer",
            FAIL,
            "no customer to check: pass --customer ID or a spec path "
            f"({CUSTOMER_LIST_METHOD}: {exc})",
        )
        return None


# ---- one customer --------------------------------------------------------------------------------


def _customer(
    report: DoctorReport,
    client: PortaBillingClient,
    cid: int,
    env: Mapping[str, str],
    catalogue: Catalogue | None,
) -> None:
    params = {"i_customer": cid}
    try:
        info = client.read(CUSTOMER_METHOD, params).get("customer_info")
    except ReconcilerError as exc:
        report.add("customer", FAIL, f"customer {cid}: {exc}")
        return
    if not isinstance(info, dict) or not info:
        report.add("customer", FAIL, f"billing has no customer {cid}")
        return
    report.add("customer", OK, f"customer {cid} found")
    check_fields(
        report,
        "customer_info",
        [info],
        [("name", FAIL), ("i_role", WARN), ("extension_blocking", WARN)],
    )
    _blocking(report, info, env)
    _agreement(report, client, params)
    account_rows: list[dict[str, Any]] = []
    for name, method, key, extra, wanted in (
        ("dids", NUMBERS_METHOD, "number_list", {}, [("number", FAIL), ("i_did_number", WARN)]),
        (
            "accounts",
            ACCOUNTS_METHOD,
            "account_list",
            wire.ACCOUNT_LIST_PARAMS,
            ACCOUNT_FIELDS,
        ),
        (
            "extensions",
            EXTENSIONS_METHOD,
            "extensions_list",
            {},
            [("i_c_ext", FAIL), ("id", FAIL), ("name", FAIL), ("i_account", FAIL)],
        ),
    ):
        rows = _list(
            report, client, name, method, key, {**params, **extra}, with_total=name == "accounts"
        )
        if rows is None:
            continue
        check_fields(report, name, rows, wanted)
        if name == "accounts":
            _accounts(report, client, rows)
            account_rows = rows
        if name == "extensions":
            by_i_account = {r.get("i_account"): r.get("id") for r in account_rows}
            _extension_ids(
                report,
                cid,
                [{**e, "account_id": by_i_account.get(e.get("i_account"))} for e in rows],
            )
    if catalogue is not None:
        try:
            raw = fetch_customer(client, cid, blocking_roles_from_env(env))
            state = raw.state(catalogue) if raw else None
        except ReconcilerError as exc:
            report.add("plan_reads", FAIL, str(exc))
            return
        if state is not None:
            report.add(
                "plan_reads",
                OK,
                f"a plan can read customer {cid}: {len(state.accounts)} account(s), "
                f"{len(state.customer.dids)} DID(s), "
                f"{len(state.customer.agreement)} agreement product(s)",
            )


def _blocking(report: DoctorReport, info: dict[str, Any], env: Mapping[str, str]) -> None:
    roles = blocking_roles_from_env(env)
    may = wire.customer_may_block(info, roles)
    if roles is not None:
        why = f"i_role {info.get('i_role')!r} {'is' if may else 'is not'} in {ENV_BLOCKING_ROLES}"
    elif wire.CUSTOMER_EXTENSION_BLOCKING in info:
        said = info[wire.CUSTOMER_EXTENSION_BLOCKING]
        why = f"extension_blocking is {said!r} ({ENV_BLOCKING_ROLES} is not set)"
    else:
        report.add(
            "blocking",
            WARN,
            f"nothing tells whether this customer may block extensions: block/unblock will be "
            f"refused until {ENV_BLOCKING_ROLES} lists the roles that may (this customer's i_role "
            f"is {info.get('i_role')!r})",
        )
        return
    report.add("blocking", OK, f"may block/unblock: {'yes' if may else 'no'} ({why})")


def _agreement(report: DoctorReport, client: PortaBillingClient, params: dict[str, Any]) -> None:
    try:
        answer = client.read(AGREEMENT_METHOD, params)
    except ReconcilerError as exc:
        report.add("agreement", FAIL, str(exc))
        return
    try:
        shape, conditions = wire.agreement_of(answer)
    except ValueError as exc:
        report.add(
            "agreement", FAIL, f"{AGREEMENT_METHOD} answered {exc}: plan cannot check quantities"
        )
        return
    report.add("agreement", OK, f"{len(conditions)} product(s) in the agreement (in {shape})")
    check_fields(
        report, "agreement", conditions, [("i_product", FAIL), ("max_offered_quantity", FAIL)]
    )


ACCOUNT_FIELDS = [
    ("i_account", FAIL),
    ("i_customer", WARN),
    ("id", FAIL),
    ("i_product", FAIL),
    ("bill_status", FAIL),
    ("blocked", FAIL),
    ("billing_model", WARN),
    ("assigned_addons", WARN),
    ("alias_list", WARN),
    ("firstname", WARN),
    ("note", WARN),
]


def _accounts(report: DoctorReport, client: PortaBillingClient, rows: list[dict[str, Any]]) -> None:
    aliases = [r for r in rows if wire.is_alias_entry(r)]
    if aliases:
        report.add(
            "accounts.aliases",
            WARN,
            f"{len(aliases)} alias row(s) listed despite get_only_real_accounts: skipped",
        )
    _blocks(report, rows)
    addons = [a for r in rows for a in r.get("assigned_addons") or [] if isinstance(a, dict)]
    if addons:
        check_fields(
            report,
            "accounts.assigned_addons",
            addons,
            [("i_product", FAIL), ("addon_effective_from", WARN), ("addon_effective_to", WARN)],
        )
    holder = next((r for r in rows if r.get("alias_list")), None)
    if holder is not None:
        found = _list(
            report,
            client,
            "alias_list",
            wire.ALIAS_LIST_METHOD,
            wire.ALIAS_LIST,
            {wire.ALIAS_LIST_PARAM: holder.get("i_account")},
        )
        if found is not None:
            check_fields(report, "alias_list", found, [("i_account", FAIL), ("id", FAIL)])


def _blocks(report: DoctorReport, rows: list[dict[str, Any]]) -> None:
    """How this server's blocks are read: by blocked_by when it sends one, else by the marker
    the reconciler writes in the note with its own blocks."""
    blocked = [r for r in rows if str(r.get(wire.BLOCKED, "N")).upper() == "Y"]
    if any(r.get(wire.BLOCKED_BY) in ("admin", "customer") for r in blocked):
        report.add(
            "blocks", OK, "the server sends blocked_by: it says who blocked each account"
        )
    elif rows and not any(wire.NOTE in r for r in rows):
        report.add(
            "blocks",
            WARN,
            "no blocked_by and no note in the account list: every block reads as the "
            "administrator's, so a block the reconciler makes cannot be undone by it",
        )
    else:
        mine = sum(1 for r in blocked if wire.has_block_marker(r))
        report.add(
            "blocks",
            OK,
            "no blocked_by: a block is the customer's (made by the reconciler) only while its "
            f"note carries the reconciler's marker, any other is the administrator's "
            f"({len(blocked)} blocked here, {mine} marked)",
        )
    stale = [str(r.get("id")) for r in rows if not wire.blocked_by(r) and wire.has_block_marker(r)]
    if stale:
        report.add(
            "blocks.stale_marker",
            WARN,
            f"{len(stale)} unblocked account(s) still carry the reconciler's block marker in "
            f"their note (e.g. {stale[0]}), unblocked by someone else: remove the marker line, or "
            "a later administrator's block of it would read as the customer's",
        )


def _extension_ids(report: DoctorReport, cid: int, rows: list[dict[str, Any]]) -> None:
    """Does billing generate extension account IDs as ph{c}x{ext}? Either way they are managed
    through the extension that links them; a different format is worth knowing."""
    other = [
        (str(e.get("id")), str(e.get("account_id")))
        for e in rows
        if e.get("account_id") is not None
        and e.get("account_id") != extension_account_id(cid, str(e.get("id")))
    ]
    if other:
        number, account_id = other[0]
        report.add(
            "extensions.account_id",
            WARN,
            f"{len(other)} extension account(s) not named ph{cid}x<extension> (e.g. extension "
            f"{number} is account {account_id}): managed through their extension's i_account",
        )
    elif rows:
        report.add("extensions.account_id", OK, f"extension accounts are named ph{cid}x<extension>")


def _list(
    report: DoctorReport,
    client: PortaBillingClient,
    name: str,
    method: str,
    key: str,
    params: dict[str, Any],
    *,
    with_total: bool = False,
) -> list[dict[str, Any]] | None:
    try:
        rows = client.read_list(method, params, key, with_total=with_total)
    except ReconcilerError as exc:
        report.add(name, FAIL, str(exc))
        return None
    report.add(name, OK, f"{len(rows)} read with {method} (paged)")
    return rows
