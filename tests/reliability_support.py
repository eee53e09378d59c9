"""Shared helpers of the reliability tests: generated worlds, measured subprocesses, invariants.

The reliability tests (fuzzing, crash consistency, concurrency, hostile input, isolation and
secrets) try to break the reconciler on the embedded SQLite backend. What they share lives here:

- ``World``: a generated billing state plus one spec per customer that changes a good part of
  it (new accounts, renamed ones, moved DIDs, add-ons, pruned accounts, unmanaged accounts and
  admin-blocked ones left alone), so an apply has real work to do and many rules to keep;
- ``run_measured``: a subprocess with its wall time and its own peak RSS (``os.wait4``);
- ``check_invariants`` / ``audit_rows``: what must hold in the database whatever happened,
  read through a read-only SQLite connection.

Figures (cases tried, kills survived, ...) are gathered in ``FIGURES`` so ``tests.fuzz_long``
can print them after a long run.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent

# Counters that the tests bump and ``python -m tests.fuzz_long`` prints at the end of a run.
FIGURES: Counter[str] = Counter()

# Knobs of the long runs; the defaults keep the default test run fast.
FUZZ_EXAMPLES = int(os.environ.get("RECONCILER_FUZZ_EXAMPLES", "0") or 0)  # 0 = the profile's own
CRASH_TRIALS = int(os.environ.get("RECONCILER_CRASH_TRIALS", "3") or 3)
CONCURRENCY_ROUNDS = int(os.environ.get("RECONCILER_CONCURRENCY_ROUNDS", "1") or 1)
INTERRUPT_TRIALS = int(os.environ.get("RECONCILER_INTERRUPT_TRIALS", "2") or 2)


def record_figure(name: str, amount: int = 1) -> None:
    FIGURES[name] += amount
    report = os.environ.get("RECONCILER_FIGURES_FILE")
    if report:  # subprocess-free way for a parent runner to collect figures after the run
        with open(report, "a", encoding="utf-8") as out:
            out.write(json.dumps({name: amount}) + "\n")


# ---- the product catalogue every generated world uses ---------------------------------------

PRODUCTS: tuple[dict[str, Any], ...] = (
    {"id": 1, "name": "Cloud PBX service", "type": "main"},
    {"id": 2, "name": "Auto attendant", "type": "main"},
    {"id": 3, "name": "Basic extension", "type": "main"},
    {"id": 4, "name": "Call recording", "type": "addon"},
    {"id": 5, "name": "Voicemail to email", "type": "addon"},
    {"id": 6, "name": "Fax to email", "type": "addon"},
    {"id": 7, "name": "SIP trunk", "type": "main"},
)
MAIN = ("Cloud PBX service", "Basic extension")
ADDONS = ("Call recording", "Voicemail to email", "Fax to email")


# ---- generated worlds ---------------------------------------------------------------------------


@dataclass
class World:
    """A billing state and the specs to apply to it (one per customer)."""

    state: dict[str, Any]
    specs: dict[int, dict[str, Any]] = field(default_factory=dict)

    def customer_ids(self) -> list[int]:
        return sorted(self.specs)

    def write_state(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump(self.state, sort_keys=False, width=1000))
        return path

    def write_specs(self, folder: Path, customer_ids: Iterable[int] | None = None) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for cid in customer_ids if customer_ids is not None else self.customer_ids():
            path = folder / f"customer-{cid}.yaml"
            path.write_text(spec_yaml(self.specs[cid]))
            written.append(path)
        return written


def spec_yaml(spec: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(spec), sort_keys=False, width=1000, allow_unicode=True)


def did(customer_id: int, number: int) -> str:
    """A DID of ``customer_id``'s pool: 11 digits, unique per (customer, number)."""
    return f"1{customer_id % 100000:05d}{number:05d}"


def generate_world(
    seed: int,
    *,
    customers: int = 5,
    extensions: int = 10,
    first_id: int = 1000,
    prune_share: float = 0.3,
) -> World:
    """A world whose specs touch every kind of change and keep every rule (the plan is valid).

    Per customer: some extensions already exist (some renamed, re-producted, with add-ons and
    DIDs to change), some are new; one existing managed account is missing from the spec (pruned
    when the spec says ``prune: true``); a SIP trunk (unmanaged) holds a DID; one account is
    blocked by the administrator and listed unchanged; one is terminated; a DID moves from one
    existing account to another within the plan.
    """
    rng = random.Random(seed)
    state: dict[str, Any] = {"products": [dict(p) for p in PRODUCTS], "customers": [],
                             "accounts": []}
    world = World(state)
    for index in range(customers):
        cid = first_id + index
        _generate_customer(world, cid, extensions, rng, prune=rng.random() < prune_share)
    return world


def _generate_customer(world: World, cid: int, extensions: int, rng: random.Random, *,
                       prune: bool) -> None:
    pool = [did(cid, n) for n in range(extensions * 2 + 8)]
    spare = list(pool)
    rng.shuffle(spare)
    accounts: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    numbers = sorted(rng.sample(range(100, 100 + extensions * 3), extensions + 1))
    gone_number, numbers = numbers[0], numbers[1:]
    existing_share = rng.choice((0.2, 0.5, 0.8))
    moved_did = None
    blocked_one = False
    for number in numbers:
        ext = str(number)
        account_id = f"ph{cid}x{ext}"
        wanted_dids = [spare.pop() for _ in range(rng.choice((0, 1, 1, 2)))]
        addons = sorted(rng.sample(ADDONS, rng.choice((0, 0, 1, 2))))
        entry: dict[str, Any] = {
            "extension": ext,
            "name": f"User {ext}",
            "product": rng.choice(MAIN),
        }
        if addons:
            entry["addons"] = addons
        if wanted_dids:
            entry["dids"] = wanted_dids
        exists = rng.random() < existing_share
        if exists:
            old_dids = [spare.pop()] if rng.random() < 0.4 else []
            if moved_did is None and wanted_dids:
                # This DID sits on another existing account now; the plan moves it here.
                moved_did = wanted_dids[0]
            accounts.append({
                "id": account_id, "customer": cid,
                "name": entry["name"] if rng.random() < 0.5 else f"Old {ext}",
                "product": entry["product"] if rng.random() < 0.7 else rng.choice(MAIN),
                "addons": sorted(rng.sample(ADDONS, rng.choice((0, 1)))),
                "dids": [d for d in old_dids if d != moved_did],
            })
            if not blocked_one and rng.random() < 0.2:
                # At most one block per customer: with one prune that stays under the 25% limit.
                entry["blocked"] = True
                blocked_one = True
            elif rng.random() < 0.1:
                entry["blocked"] = False
        entries.append(entry)
    if moved_did is not None:
        spec_holders = {f"ph{cid}x{e['extension']}" for e in entries
                        if moved_did in e.get("dids", [])}
        holder = next((a for a in accounts
                       if moved_did not in a["dids"] and a["id"] not in spec_holders), None)
        if holder is not None:
            holder["dids"] = sorted(holder["dids"] + [moved_did])
            owner = next(e for e in entries if f"ph{cid}x{e['extension']}" == holder["id"])
            owner["dids"] = [d for d in owner.get("dids", []) if d != moved_did]
            if not owner["dids"]:
                owner.pop("dids")
    # A managed account the spec does not list: kept (warning) or terminated (prune).
    accounts.append({"id": f"ph{cid}x{gone_number}", "customer": cid, "name": "Left the company",
                     "product": MAIN[0], "addons": [], "dids": [spare.pop()]})
    # Unmanaged trunk holding a DID, an admin-blocked account listed as it is, a terminated one.
    trunk_did = spare.pop()
    accounts.append({"id": f"trunk-{cid}", "customer": cid, "name": "Trunk", "product": "SIP trunk",
                     "addons": [], "dids": [trunk_did]})
    admin_ext = str(90000 + cid % 1000)
    accounts.append({"id": f"ph{cid}x{admin_ext}", "customer": cid, "name": "Locked",
                     "product": MAIN[0], "addons": [], "dids": [], "blocked_by": "admin"})
    entries.append({"extension": admin_ext, "name": "Locked", "product": MAIN[0]})
    accounts.append({"id": f"ph{cid}x99999", "customer": cid, "name": "Gone", "product": MAIN[0],
                     "addons": [], "dids": [], "status": "terminated"})
    attendants = [{"number": 1, "name": "Main menu", "product": "Auto attendant",
                   "dids": [spare.pop()]}]

    # Quantities: main products unlimited or just enough; add-ons capped just above the need.
    after = Counter[str]()
    for entry in entries:
        after[entry["product"]] += 1
        after.update(entry.get("addons", []))
    listed = {f"ph{cid}x{e['extension']}" for e in entries}
    for account in accounts:
        if account.get("status") == "terminated" or account["id"] in listed:
            continue
        if prune and account["id"].startswith(f"ph{cid}x"):
            continue
        after[account["product"]] += 1
        after.update(account["addons"])
    after["Auto attendant"] += 1
    before = Counter[str]()
    for account in accounts:
        if account.get("status") != "terminated":
            before[account["product"]] += 1
            before.update(account["addons"])
    agreement = [{"product": "Auto attendant", "quantity": 1},
                 {"product": "SIP trunk", "quantity": 1}]
    for name in (*MAIN, *ADDONS):
        need = max(after[name], before[name])
        quantity = 0 if rng.random() < 0.3 else need + rng.choice((0, 1, 3))
        agreement.append({"product": name, "quantity": quantity})
    world.state["customers"].append({
        "id": cid,
        "name": f"Customer {cid}",
        "self_care": {"block_extensions": True},
        "agreement": agreement,
        "dids": pool,
    })
    world.state["accounts"].extend(accounts)
    spec: dict[str, Any] = {"version": 1, "customer": {"id": cid, "name": f"Customer {cid}"}}
    if prune:
        spec["prune"] = True
    spec["extensions"] = entries
    spec["auto_attendants"] = attendants
    world.specs[cid] = spec


# ---- subprocesses --------------------------------------------------------------------------------


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a reconciler subprocess: none of CI's or the user's knobs leak in."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "RECONCILER_", "PORTABILLING_", "PYTEST_", "HYPOTHESIS"))
    }
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def reconciler_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args]


@dataclass
class Measured:
    code: int
    out: str
    err: str
    seconds: float
    peak_rss_mb: float
    killed: bool = False

    @property
    def shown(self) -> str:
        return self.out + self.err

    def __str__(self) -> str:
        return (f"exit {self.code} in {self.seconds:.2f} s, peak RSS {self.peak_rss_mb:.0f} MB\n"
                f"--- stdout\n{self.out[-3000:]}\n--- stderr\n{self.err[-3000:]}")


# A small launcher between the test and the measured process. Linux counts in a child's peak RSS
# the memory of the parent it was forked from (the pre-exec image), so measuring a child of a
# pytest that has grown to a gigabyte would report a gigabyte. The launcher is a bare Python, and
# the process it starts is measured alone with os.wait4 (its own rusage, not its family's).
_LAUNCHER = """
import json, os, subprocess, sys, time
start = time.monotonic()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"code": os.waitstatus_to_exitcode(status), "seconds": time.monotonic() - start,
               "rss_kb": usage.ru_maxrss}, out)
"""


def run_measured(argv: list[str], *, cwd: Path, env: Mapping[str, str] | None = None,
                 timeout: float = 60.0) -> Measured:
    """Run ``argv``: exit code, output, wall time and its own peak RSS; killed after ``timeout``."""
    stamp = f"{os.getpid()}-{time.monotonic_ns()}"
    out_path, err_path, usage_path = (cwd / f".{kind}-{stamp}" for kind in ("out", "err", "rusage"))
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.monotonic()
        launcher = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(usage_path), *argv], cwd=cwd,
            env=dict(env) if env is not None else clean_env(), stdout=out, stderr=err,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            launcher.wait(timeout=timeout)
            killed = False
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)  # the launcher and the measured process
            launcher.wait()
            killed = True
        seconds = time.monotonic() - start
    text_out = out_path.read_text("utf-8", "replace")
    text_err = err_path.read_text("utf-8", "replace")
    out_path.unlink()
    err_path.unlink()
    if killed or not usage_path.exists():
        usage_path.unlink(missing_ok=True)
        return Measured(-9, text_out, text_err, seconds, 0.0, killed=True)
    usage = json.loads(usage_path.read_text())
    usage_path.unlink()
    return Measured(usage["code"], text_out, text_err, usage["seconds"], usage["rss_kb"] / 1024)


def assert_clean_failure(result: Any, *, allowed: tuple[int, ...] = (0, 1)) -> None:
    """Exit 0 or 1 with something said, never a traceback or an internal error."""
    shown = result.out + result.err
    assert result.code in allowed, str(result)
    assert "Traceback" not in shown, str(result)
    assert "internal error" not in shown, str(result)
    if result.code == 1:
        assert shown.strip(), f"exit 1 without a message\n{result}"


# ---- reading the database -----------------------------------------------------------------------


def connect_ro(db_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)


def dump_db(db_path: Path) -> dict[str, Any]:
    """The billing state (not the audit log) as the state file dict, read in-process."""
    from reconciler.backends.sqlite import SqliteBackend
    from reconciler.statefile import state_to_dict

    backend = SqliteBackend(f"sqlite:///{db_path}")
    try:
        return state_to_dict(backend.dump_state())
    finally:
        backend.close()


def audit_rows(db_path: Path) -> list[dict[str, Any]]:
    db = connect_ro(db_path)
    try:
        rows = db.execute(
            "SELECT seq, customer_id, op, account, change, fingerprint, git_commit FROM audit "
            "ORDER BY seq"
        ).fetchall()
    finally:
        db.close()
    return [
        {"seq": r[0], "customer": r[1], "op": r[2], "account": r[3], "change": json.loads(r[4]),
         "fingerprint": r[5], "git_commit": r[6]}
        for r in rows
    ]


def change_key(change: Mapping[str, Any]) -> tuple[str, str, str]:
    """(op, account, detail): what identifies one change in a plan or in the audit log."""
    op = change["op"]
    detail = ""
    if op in ("add_alias", "remove_alias"):
        detail = change["did"]
    elif op in ("add_addon", "remove_addon"):
        detail = change["product"]
    elif op in ("set_product", "set_name"):
        detail = f"{change['from']}->{change['to']}"
    return op, change["account"], detail


def check_invariants(db_path: Path,
                     baseline_usage: Mapping[tuple[int, str], int] | None = None) -> list[str]:
    """What must hold in the billing database whatever was interrupted. Returns the violations.

    ``baseline_usage`` is the usage per (customer, product) before any apply: a quantity may
    only be exceeded where it already was, and then not by more.
    """
    problems: list[str] = []
    db = connect_ro(db_path)
    try:
        if (check := db.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
            problems.append(f"integrity_check: {check}")
        for (account_id, count) in db.execute(
            "SELECT id, COUNT(*) FROM accounts GROUP BY id HAVING COUNT(*) > 1"
        ):
            problems.append(f"account {account_id} exists {count} times")
        for (number, count) in db.execute(
            "SELECT did, COUNT(*) FROM aliases GROUP BY did HAVING COUNT(*) > 1"
        ):
            problems.append(f"DID {number} is on {count} accounts")
        for (number, account_id) in db.execute(
            "SELECT x.did, x.account_id FROM aliases x LEFT JOIN accounts a ON a.id = x.account_id "
            "WHERE a.id IS NULL OR a.status = 'terminated'"
        ):
            problems.append(f"DID {number} is an alias of a missing or terminated account "
                            f"{account_id}")
        for (account_id,) in db.execute(
            "SELECT x.account_id FROM account_addons x JOIN products p ON p.id = x.product_id "
            "WHERE p.type != 'addon'"
        ):
            problems.append(f"{account_id} has a main product as an add-on")
        usage = usage_of(db_path)
        for customer_id, product, quantity in db.execute(
            "SELECT g.customer_id, p.name, g.quantity FROM agreement g JOIN products p ON p.id = "
            "g.product_id"
        ):
            used = usage.get((customer_id, product), 0)
            allowed = max(quantity, (baseline_usage or {}).get((customer_id, product), 0))
            if quantity and used > allowed:
                problems.append(f"customer {customer_id}: {product} used by {used}, "
                                f"quantity {quantity}")
    finally:
        db.close()
    return problems


def usage_of(db_path: Path) -> dict[tuple[int, str], int]:
    db = connect_ro(db_path)
    try:
        usage: Counter[tuple[int, str]] = Counter()
        for customer_id, product in db.execute(
            "SELECT a.customer_id, p.name FROM accounts a JOIN products p ON p.id = a.product_id "
            "WHERE a.status = 'open' UNION ALL "
            "SELECT a.customer_id, p.name FROM account_addons x JOIN accounts a ON a.id = "
            "x.account_id JOIN products p ON p.id = x.product_id WHERE a.status = 'open'"
        ):
            usage[(customer_id, product)] += 1
        return dict(usage)
    finally:
        db.close()


def state_matches_specs(dump: Mapping[str, Any], specs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Differences between the billing dump and what the specs ask for (managed accounts only)."""
    accounts = {a["id"]: a for a in dump["accounts"]}
    problems = []
    for spec in specs:
        cid = spec["customer"]["id"]
        listed = set()
        for section, key, pattern in (("extensions", "extension", "ph{}x{}"),
                                      ("auto_attendants", "number", "ph{}aa{}")):
            for entry in spec.get(section) or []:
                account_id = pattern.format(cid, entry[key])
                listed.add(account_id)
                account = accounts.get(account_id)
                if account is None or account["status"] != "open":
                    problems.append(f"{account_id} missing or not open")
                    continue
                want = {"name": entry["name"], "product": entry["product"],
                        "addons": sorted(set(entry.get("addons") or [])),
                        "dids": sorted(entry.get("dids") or [])}
                have = {k: account[k] for k in want}
                if want != have:
                    problems.append(f"{account_id}: wanted {want}, billing has {have}")
                blocked = bool(account.get("blocked_by"))
                if ("blocked" in entry and bool(entry["blocked"]) != blocked
                        and account.get("blocked_by") != "admin"):
                    problems.append(f"{account_id}: blocked should be {entry['blocked']}")
        if spec.get("prune"):
            for account in dump["accounts"]:
                if (account["customer"] == cid and account["id"] not in listed
                        and account["id"].startswith(f"ph{cid}") and account["status"] == "open"
                        and account.get("blocked_by") != "admin"):
                    problems.append(f"{account['id']} should have been pruned")
    return problems


def strict_managed_owner(account_id: str) -> int | None:
    """The customer whose managed pattern ``account_id`` follows exactly (ASCII digits, nothing
    after), or None. Stricter than a regex with ``$``, which also matches before a final newline."""
    match = re.fullmatch(r"ph([1-9][0-9]*)(?:x[0-9]{1,15}|aa[1-9][0-9]*)", account_id,
                         flags=re.ASCII)
    return int(match.group(1)) if match else None


def isolation_violations(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What an apply changed outside the rules: an account that is not the applying customer's
    own managed account, a DID outside that customer's pool, a customer's products or pool."""
    problems = []
    if before["products"] != after["products"] or before["customers"] != after["customers"]:
        problems.append("the catalogue or the customers changed")
    pools = {c["id"]: set(c["dids"]) for c in after["customers"]}
    old = {a["id"]: a for a in before["accounts"]}
    new = {a["id"]: a for a in after["accounts"]}
    for account_id in sorted(set(old) | set(new)):
        was, now = old.get(account_id), new.get(account_id)
        if was == now:
            continue
        if now is None:
            problems.append(f"{account_id!r} disappeared")
            continue
        owner = strict_managed_owner(account_id)
        if owner is None or owner != now["customer"]:
            problems.append(f"{account_id!r} (customer {now['customer']}) changed but is not a "
                            "managed account of its customer")
        if was is not None and was["customer"] != now["customer"]:
            problems.append(f"{account_id!r} moved from customer {was['customer']} to "
                            f"{now['customer']}")
        added = set(now["dids"]) - set(was["dids"] if was else ())
        foreign = added - pools.get(now["customer"], set())
        if foreign:
            problems.append(f"{account_id!r} got DIDs outside its customer's pool: "
                            f"{sorted(foreign)}")
    return problems


def loaded_database(folder: Path, state_text: str) -> Path:
    """A billing database in ``folder`` loaded through the CLI from a state file's text."""
    from tests.helpers import run_cli

    (folder / "state.yaml").write_text(state_text)
    db = folder / "billing.db"
    result = run_cli("--backend", f"sqlite:///{db}", "state", "load", str(folder / "state.yaml"))
    assert result.code == 0, result
    return db
