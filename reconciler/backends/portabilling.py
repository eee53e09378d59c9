"""The PortaBilling backend: billing state read and changed through PortaBilling's JSON API.

Reading a customer costs a handful of calls (customer, agreement, and the paged lists of DIDs,
accounts and extensions); many customers are read concurrently. A customer's changes cannot be
one transaction here, so apply holds a local lock per (server, customer), writes one change at
a time and keeps ``done`` exact: a write whose answer is lost is read back, never blindly
repeated. PortaBilling keeps no audit table for us, so applied changes are appended to a local
JSON-lines file.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from reconciler.backends import pb_fields
from reconciler.backends.base import AuditEntry, Backend, CustomerSession
from reconciler.errors import BackendError, LockTimeout, UsageError
from reconciler.model import (
    OPEN,
    TERMINATED,
    Account,
    Catalogue,
    Change,
    Customer,
    CustomerState,
    Product,
    managed_key,
    managed_kind,
)
from reconciler.pbclient import (
    ClientSettings,
    Credentials,
    Endpoint,
    OutcomeUnknown,
    PortaBillingClient,
    PortaBillingFault,
    TransportError,
    parse_backend_url,
)

ENV_AUDIT_LOG = "RECONCILER_AUDIT_LOG"
LOCK_DIR = os.path.join(".reconciler", "locks")


class _EnvCredentials:
    """Credentials read from the environment when first needed, not when the backend opens:
    ``history`` reads only the local audit log and needs none."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def login_params(self) -> dict[str, str]:
        return Credentials.from_env(self.env).login_params()

    def secrets(self) -> list[str]:
        try:
            return Credentials.from_env(self.env).secrets()
        except UsageError:
            return []


class PortaBillingBackend(Backend):
    transactional = False

    def __init__(
        self,
        url: str,
        *,
        parallelism: int = 8,
        lock_timeout: float = 30.0,
        settings: ClientSettings | None = None,
        credentials: Credentials | None = None,
        env: Mapping[str, str] | None = None,
        lock_dir: str = LOCK_DIR,
        audit_path: str | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.url = url
        self.endpoint: Endpoint = parse_backend_url(url)
        self.client = PortaBillingClient(
            self.endpoint,
            credentials or _EnvCredentials(env),  # type: ignore[arg-type]
            settings or ClientSettings.from_env(env),
        )
        self.parallelism = max(1, parallelism)
        self.lock_timeout = lock_timeout
        self.lock_dir = lock_dir
        default_audit = os.path.join(".reconciler", f"audit-{self.endpoint.key}.jsonl")
        self.audit = AuditLog(audit_path or env.get(ENV_AUDIT_LOG) or default_audit)
        self._catalogue: Catalogue | None = None
        self._catalogue_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.client.close()

    # ---- reading --------------------------------------------------------------------------------

    def catalogue(self) -> Catalogue:
        # Read once per backend instance: a plan over a thousand customers needs it once.
        with self._catalogue_lock:
            if self._catalogue is None:
                answer = self.client.read("Product/get_product_list", {})
                self._catalogue = catalogue_from(answer.get("product_list") or [])
            return self._catalogue

    def read_customer(self, customer_id: int, catalogue: Catalogue) -> CustomerState | None:
        raw = fetch_customer(self.client, customer_id)
        return None if raw is None else raw.state(catalogue)

    def read_customers(
        self, customer_ids: Iterable[int], catalogue: Catalogue
    ) -> Iterator[tuple[int, CustomerState | None]]:
        ids = list(customer_ids)
        if self.parallelism == 1 or len(ids) <= 1:
            yield from super().read_customers(ids, catalogue)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.parallelism, thread_name_prefix="portabilling"
            )
        futures: list[Future[CustomerState | None]] = [
            self._pool.submit(self.read_customer, cid, catalogue) for cid in ids
        ]
        try:
            for customer_id, future in zip(ids, futures, strict=True):
                yield customer_id, future.result()
        finally:
            for future in futures:
                future.cancel()

    # ---- apply ------------------------------------------------------------------------------------

    @contextmanager
    def customer_session(self, customer_id: int, catalogue: Catalogue) -> Iterator[CustomerSession]:
        path = os.path.join(self.lock_dir, f"{self.endpoint.key}-{customer_id}.lock")
        with exclusive_lock(
            path, self.lock_timeout, f"customer {customer_id} on {self.endpoint.base}"
        ):
            yield _PortaBillingSession(self.client, customer_id, catalogue, self.audit)

    def history(self, customer_id: int | None = None) -> list[AuditEntry]:
        return self.audit.read(customer_id)


# ---- reading one customer ---------------------------------------------------------------------------


def catalogue_from(product_list: list[dict[str, Any]]) -> Catalogue:
    products = [
        Product(
            int(p["i_product"]),
            str(p["name"]),
            "addon" if int(p.get("addon_priority") or 0) > 0 else "main",
        )
        for p in product_list
    ]
    return Catalogue(tuple(sorted(products, key=lambda p: p.id)))


@dataclass
class RawCustomer:
    """One customer as PortaBilling lists it, keyed for the writes that follow a read."""

    customer_id: int
    info: dict[str, Any]
    agreement: dict[str, Any]
    numbers: list[str]
    accounts: dict[str, dict[str, Any]]  # account ID -> account_info
    extensions: dict[int, dict[str, Any]] = field(default_factory=dict)  # i_account -> extension

    def state(self, catalogue: Catalogue) -> CustomerState:
        def product_name(i_product: int) -> str:
            product = catalogue.by_id(i_product)
            return product.name if product else str(i_product)

        agreement = sorted(
            (product_name(pid), qty) for pid, qty in pb_fields.agreement_quantities(self.agreement)
        )
        customer = Customer(
            id=self.customer_id,
            name=str(self.info.get("name", "")),
            block_extensions=pb_fields.customer_may_block(self.info),
            agreement=tuple(agreement),
            dids=frozenset(self.numbers),
        )
        accounts = [self._account(info, catalogue) for _, info in sorted(self.accounts.items())]
        return CustomerState(customer, tuple(accounts), catalogue)

    def _account(self, info: dict[str, Any], catalogue: Catalogue) -> Account:
        i_product = info.get("i_product")
        product = catalogue.by_id(int(i_product)) if i_product not in (None, "") else None
        addons = []
        for addon in info.get("assigned_addons") or []:
            known = catalogue.by_id(int(addon["i_product"]))
            addons.append(known.name if known else str(addon["i_product"]))
        status = TERMINATED if pb_fields.is_terminated(info) else OPEN
        return Account(
            id=str(info["id"]),
            customer=self.customer_id,
            name=self._name(info, status),
            product=product.name if product else None,
            addons=tuple(sorted(addons)),
            dids=tuple(sorted(did for _, did in pb_fields.aliases_of(info))),
            blocked_by=pb_fields.blocked_by(info),
            status=status,
        )

    def _name(self, info: dict[str, Any], status: str) -> str:
        """The customer extension's name for an extension, firstname for everything else."""
        if managed_kind(str(info["id"]), self.customer_id) == "extension":
            extension = self.extensions.get(int(info["i_account"]))
            if extension is not None:
                return str(extension.get("name") or "")
            if status == OPEN:
                # An open extension account that no customer extension points to (an earlier
                # apply stopped between add_account and add_customer_extension) reads as
                # nameless: the plan then renames it, and the rename links the extension.
                return ""
        return str(info.get("firstname") or "")


def fetch_customer(client: PortaBillingClient, customer_id: int) -> RawCustomer | None:
    params = {"i_customer": customer_id}
    try:
        info = client.read("Customer/get_customer_info", params).get("customer_info")
    except PortaBillingFault as fault:
        if fault.is_not_found:
            return None
        raise
    if not info:
        return None
    agreement = (
        client.read("Customer/get_customer_agreement_info", params).get("agreement_info") or {}
    )
    numbers = client.read_list("DID/get_number_list", params, "number_list")
    accounts = client.read_list(
        "Account/get_account_list", {**params, "with_aliases": 1}, "account_list", with_total=True
    )
    extensions = client.read_list("Customer/get_extensions_list", params, "extensions_list")
    return RawCustomer(
        customer_id=customer_id,
        info=info,
        agreement=agreement,
        numbers=[str(n["number"]) for n in numbers],
        accounts={str(a["id"]): a for a in accounts if not pb_fields.is_alias_entry(a)},
        extensions={
            int(e["i_account"]): e for e in extensions if e.get("i_account") not in (None, "")
        },
    )


# ---- writing one customer -------------------------------------------------------------------------------


@dataclass
class _Write:
    """One API call that changes billing, and how to tell from billing whether it happened.

    ``confirm`` reads billing and returns what the call would have answered when the change is
    in effect, or None when it is not.
    """

    method: str
    params: dict[str, Any]
    confirm: Callable[[], dict[str, Any] | None]
    what: str


class _PortaBillingSession(CustomerSession):
    def __init__(
        self, client: PortaBillingClient, customer_id: int, catalogue: Catalogue, audit: AuditLog
    ) -> None:
        self.client = client
        self.customer_id = customer_id
        self.catalogue = catalogue
        self.audit = audit
        self.raw: RawCustomer | None = None
        self.written: list[Change] = []

    @property
    def done(self) -> list[Change]:
        return list(self.written)

    def read(self) -> CustomerState | None:
        self.raw = fetch_customer(self.client, self.customer_id)
        return None if self.raw is None else self.raw.state(self.catalogue)

    def record(self, entries: list[AuditEntry]) -> None:
        self.audit.append(entries)

    def execute(
        self,
        changes: list[Change],
        *,
        on_written: Callable[[Change], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        if self.raw is None and self.read() is None:
            raise BackendError(f"billing has no customer {self.customer_id}")
        for item in changes:
            if stop is not None and stop():
                return
            handler = getattr(self, f"_{item.op}", None)
            if handler is None:
                raise BackendError(f"unknown change {item.op!r}")
            handler(item)
            self.written.append(item)
            if on_written is not None:
                on_written(item)

    # -- one write, made safe --

    def _perform(self, write: _Write) -> dict[str, Any]:
        """Send a write; when its answer is lost, read billing back before deciding to resend."""
        try:
            return self.client.write(write.method, write.params)
        except OutcomeUnknown:
            pass
        except PortaBillingFault as fault:
            return self._settle_fault(write, fault)
        confirmed = self._confirm(write)
        if confirmed is not None:
            return confirmed
        # Billing shows the change was not made: sending it once more cannot make it twice.
        try:
            return self.client.write(write.method, write.params)
        except OutcomeUnknown as again:
            confirmed = self._confirm(write)
            if confirmed is not None:
                return confirmed
            raise BackendError(
                f"{write.what}: the outcome is unknown ({again.reason}, twice) and billing does not "
                "show the change; stopped so that nothing is written twice. Plan again to see "
                "billing's state."
            ) from None
        except PortaBillingFault as fault:
            return self._settle_fault(write, fault)

    def _settle_fault(self, write: _Write, fault: PortaBillingFault) -> dict[str, Any]:
        # A fault is normally a refusal, but billing is the judge: a change already in effect
        # (a re-run after a lost answer, an account created by an earlier run) is done.
        if not fault.is_auth:
            confirmed = self._confirm(write)
            if confirmed is not None:
                return confirmed
        raise BackendError(f"{write.what}: {fault}") from None

    def _confirm(self, write: _Write) -> dict[str, Any] | None:
        try:
            return write.confirm()
        except (PortaBillingFault, TransportError) as exc:
            raise BackendError(
                f"{write.what}: the outcome is unknown and reading billing back failed too ({exc})"
            ) from None

    # -- lookups --

    def _account(self, account_id: str) -> dict[str, Any]:
        assert self.raw is not None
        info = self.raw.accounts.get(account_id)
        if info is None:
            raise BackendError(
                f"account {account_id} is not in billing for customer {self.customer_id}"
            )
        return info

    def _product_id(self, name: str) -> int:
        product = self.catalogue.by_name(name)
        if product is None:
            raise BackendError(f"no product named {name!r} in billing")
        return product.id

    def _account_info(self, **key: Any) -> dict[str, Any] | None:
        return self.client.read("Account/get_account_info", key).get("account_info") or None

    def _aliases(self, i_account: int) -> dict[str, int]:
        answer = self.client.read(
            pb_fields.ALIAS_LIST_METHOD, {pb_fields.ALIAS_LIST_PARAM: i_account}
        )
        return {did: i_alias for i_alias, did in pb_fields.aliases_of(answer)}

    def _extension_of(self, i_account: int) -> dict[str, Any] | None:
        for extension in self.client.read_list(
            "Customer/get_extensions_list", {"i_customer": self.customer_id}, "extensions_list"
        ):
            if (
                extension.get("i_account") not in (None, "")
                and int(extension["i_account"]) == i_account
            ):
                return extension
        return None

    # -- the ops --

    def _create_account(self, item: Change) -> None:
        assert self.raw is not None
        product_id = self._product_id(item.get("product"))
        addon_ids = [self._product_id(name) for name in item.get("addons")]
        info: dict[str, Any] = {
            "i_customer": self.customer_id,
            "id": item.account,
            "i_product": product_id,
            "i_account_role": 1,
            "billing_model": 1,
            "assigned_addons": [{"i_product": pid} for pid in addon_ids],
            "firstname": item.get("name"),
        }
        if item.get("blocked"):
            info.update(pb_fields.block_params(True))
        answer = self._perform(
            _Write(
                "Account/add_account",
                {"account_info": info},
                lambda: self._created(item.account, product_id),
                f"creating {item.account}",
            )
        )
        i_account = int(answer["i_account"])
        self.raw.accounts[item.account] = {
            **info,
            "i_account": i_account,
            "bill_status": "O",
            "alias_list": [],
        }
        if item.get("kind") == "extension":
            self._link_extension(item.account, i_account, item.get("name"))

    def _created(self, account_id: str, product_id: int) -> dict[str, Any] | None:
        found = self._account_info(id=account_id)
        if found is None:
            return None
        owner = int(found.get("i_customer") or 0)
        if owner != self.customer_id:
            raise BackendError(
                f"account ID {account_id} already belongs to customer {owner} in billing; "
                f"it cannot be created for customer {self.customer_id}"
            )
        if pb_fields.is_terminated(found) or int(found.get("i_product") or 0) != product_id:
            return None
        return {"i_account": found["i_account"]}  # adopted: created by an earlier, interrupted run

    def _link_extension(self, account_id: str, i_account: int, name: str) -> None:
        assert self.raw is not None
        key = managed_key(account_id)
        assert key is not None
        params = {
            "i_customer": self.customer_id,
            "id": key[1],
            "i_account": i_account,
            "name": name,
        }

        def confirm() -> dict[str, Any] | None:
            found = self._extension_of(i_account)
            return found if found is not None and found.get("name") == name else None

        answer = self._perform(
            _Write(
                "Customer/add_customer_extension",
                params,
                confirm,
                f"linking extension {key[1]} to {account_id}",
            )
        )
        self.raw.extensions[i_account] = {**params, "i_c_ext": answer.get("i_c_ext")}

    def _update(self, account_id: str, fields: dict[str, Any], what: str) -> None:
        info = self._account(account_id)
        i_account = int(info["i_account"])

        def confirm() -> dict[str, Any] | None:
            current = self._account_info(i_account=i_account)
            if current is None:
                return None
            return (
                {}
                if all(
                    _same_field(name, current.get(name), value) for name, value in fields.items()
                )
                else None
            )

        self._perform(
            _Write(
                "Account/update_account",
                {"account_info": {"i_account": i_account, **fields}},
                confirm,
                what,
            )
        )
        info.update(fields)

    def _set_product(self, item: Change) -> None:
        self._update(
            item.account,
            {"i_product": self._product_id(item.get("to"))},
            f"setting the product of {item.account}",
        )

    def _addons(self, account_id: str) -> list[int]:
        return [int(a["i_product"]) for a in self._account(account_id).get("assigned_addons") or []]

    def _add_addon(self, item: Change) -> None:
        wanted = self._product_id(item.get("product"))
        addons = [pid for pid in self._addons(item.account) if pid != wanted] + [wanted]
        self._update(
            item.account,
            {"assigned_addons": [{"i_product": pid} for pid in addons]},
            f"adding add-on {item.get('product')} to {item.account}",
        )

    def _remove_addon(self, item: Change) -> None:
        unwanted = self._product_id(item.get("product"))
        addons = [pid for pid in self._addons(item.account) if pid != unwanted]
        self._update(
            item.account,
            {"assigned_addons": [{"i_product": pid} for pid in addons]},
            f"removing add-on {item.get('product')} from {item.account}",
        )

    def _block(self, item: Change) -> None:
        self._update(item.account, pb_fields.block_params(True), f"blocking {item.account}")

    def _unblock(self, item: Change) -> None:
        self._update(item.account, pb_fields.block_params(False), f"unblocking {item.account}")

    def _set_name(self, item: Change) -> None:
        assert self.raw is not None
        name = item.get("to")
        if managed_kind(item.account, self.customer_id) != "extension":
            self._update(item.account, {"firstname": name}, f"renaming {item.account}")
            return
        i_account = int(self._account(item.account)["i_account"])
        extension = self.raw.extensions.get(i_account)
        if extension is None or extension.get("i_c_ext") in (None, ""):
            self._link_extension(item.account, i_account, name)
            return
        params = {"i_customer": self.customer_id, "i_c_ext": extension["i_c_ext"], "name": name}

        def confirm() -> dict[str, Any] | None:
            found = self._extension_of(i_account)
            return {} if found is not None and found.get("name") == name else None

        self._perform(
            _Write(
                "Customer/update_customer_extension", params, confirm, f"renaming {item.account}"
            )
        )
        extension["name"] = name

    def _add_alias(self, item: Change) -> None:
        info = self._account(item.account)
        i_account = int(info["i_account"])
        did = item.get("did")

        def confirm() -> dict[str, Any] | None:
            i_alias = self._aliases(i_account).get(did)
            return None if i_alias is None else {"i_account": i_alias}

        answer = self._perform(
            _Write(
                "Account/add_alias",
                {"alias_info": {"i_master_account": i_account, "id": did}},
                confirm,
                f"adding DID {did} to {item.account}",
            )
        )
        aliases = info.setdefault(pb_fields.ALIAS_LIST, [])
        aliases.append(
            {pb_fields.ALIAS_I_ACCOUNT: int(answer["i_account"]), pb_fields.ALIAS_ID: did}
        )

    def _remove_alias(self, item: Change) -> None:
        info = self._account(item.account)
        i_account = int(info["i_account"])
        did = item.get("did")
        held = {alias: i_alias for i_alias, alias in pb_fields.aliases_of(info)}
        if did not in held:
            raise BackendError(f"DID {did} is not an alias of {item.account} in billing")

        def confirm() -> dict[str, Any] | None:
            return None if did in self._aliases(i_account) else {}

        self._perform(
            _Write(
                "Account/delete_alias",
                {"alias_info": {"i_account": held[did]}},
                confirm,
                f"removing DID {did} from {item.account}",
            )
        )
        info[pb_fields.ALIAS_LIST] = [
            a for a in info.get(pb_fields.ALIAS_LIST) or [] if str(a[pb_fields.ALIAS_ID]) != did
        ]

    def _terminate_account(self, item: Change) -> None:
        info = self._account(item.account)
        i_account = int(info["i_account"])

        def confirm() -> dict[str, Any] | None:
            current = self._account_info(i_account=i_account)
            return {} if current is not None and pb_fields.is_terminated(current) else None

        self._perform(
            _Write(
                "Account/terminate_account",
                {"i_account": i_account},
                confirm,
                f"terminating {item.account}",
            )
        )
        info["bill_status"] = "C"


def _same_field(name: str, current: Any, wanted: Any) -> bool:
    if name == "assigned_addons":
        return sorted(int(a["i_product"]) for a in current or []) == sorted(
            int(a["i_product"]) for a in wanted
        )
    if name == "i_product":
        return current is not None and int(current) == int(wanted)
    return str(current if current is not None else "") == str(wanted)


# ---- lock and audit log ----------------------------------------------------------------------------------


@contextmanager
def exclusive_lock(path: str, timeout: float, what: str) -> Iterator[None]:
    """An exclusive flock on ``path``, waited for at most ``timeout`` seconds.

    It keeps two applies on this machine (or on machines sharing the folder) from interleaving
    on one customer; applies from elsewhere against the same server are not seen.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another apply holds the lock of {what} ({path}); waited {timeout:g} s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)


class AuditLog:
    """Applied changes as JSON lines in a local file: one AuditEntry per line, oldest first."""

    def __init__(self, path: str) -> None:
        self.path = path

    def append(self, entries: list[AuditEntry]) -> None:
        if not entries:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        text = "".join(
            json.dumps(e.to_dict(), sort_keys=True, ensure_ascii=False) + "\n" for e in entries
        )
        try:
            with open(self.path, "a", encoding="utf-8") as out:
                fcntl.flock(out.fileno(), fcntl.LOCK_EX)
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise BackendError(f"cannot write the audit log {self.path}: {exc.strerror}") from None

    def read(self, customer_id: int | None = None) -> list[AuditEntry]:
        try:
            with open(self.path, encoding="utf-8") as source:
                lines = source.readlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise BackendError(f"cannot read the audit log {self.path}: {exc.strerror}") from None
        entries = []
        for line in lines:
            try:
                data = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash mid-write: the rest is still history
            if customer_id is not None and data.get("customer") != customer_id:
                continue
            entries.append(
                AuditEntry(
                    data["time"],
                    data["customer"],
                    data["op"],
                    data["account"],
                    data["change"],
                    data["fingerprint"],
                    data.get("git_commit"),
                )
            )
        return entries
