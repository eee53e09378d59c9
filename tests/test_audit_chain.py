"""The audit log cannot be rewritten unnoticed: a hash chain on both backends.

An operator's view, through the real CLI: `history --verify` names the first entry that was
edited, removed, reordered or garbled (exit 1); `history` warns about what it cannot read instead
of skipping it; apply refuses to append to a broken chain and changes nothing in billing; an
operator can start a new chain, which is recorded and reported; a head kept from an earlier run
shows entries cut from the end; concurrent appends keep one chain.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import Billing
from tests.helpers import REPO

DEMO_STATE = REPO / "specs" / "demo-billing-state.yaml"
ABC = "specs/customers/abc.yaml"
HEAD = re.compile(r"sha256:[0-9a-f]{64}")
HISTORY_SCHEMA = json.loads((REPO / "schemas" / "history.schema.json").read_text())


# ---- the stored log, as someone with access to the file or the database would touch it ----------


class StoredLog:
    """The audit log of a test's billing, read and rewritten behind the reconciler's back."""

    def __init__(self, billing: Billing) -> None:
        self.billing = billing
        if billing.kind == "portabilling":
            self.file = billing.workdir / "audit.jsonl"
            billing.env["RECONCILER_AUDIT_LOG"] = str(self.file)
        self.db = billing.workdir / "billing.db"

    def where(self, position: int) -> str:
        """How `history --verify` names the entry at ``position`` (1-based, as first written)."""
        return f"line {position}" if self.billing.kind == "portabilling" else f"entry {position}"

    def lines(self) -> list[str]:
        return self.file.read_text().splitlines(keepends=True)

    def edit(self, position: int) -> None:
        """Move a DID to another number in one entry, keeping its stored hash."""
        if self.billing.kind == "portabilling":
            lines = self.lines()
            entry = json.loads(lines[position - 1])
            entry["account"] = "ph46170x999"
            lines[position - 1] = json.dumps(entry, sort_keys=True) + "\n"
            self.file.write_text("".join(lines))
        else:
            self._sql("UPDATE audit SET account = 'ph46170x999' WHERE seq = ?", position)

    def delete(self, position: int) -> None:
        if self.billing.kind == "portabilling":
            lines = self.lines()
            del lines[position - 1]
            self.file.write_text("".join(lines))
        else:
            self._sql("DELETE FROM audit WHERE seq = ?", position)

    def swap(self, position: int) -> None:
        """Swap the entries at ``position`` and the one after it."""
        if self.billing.kind == "portabilling":
            lines = self.lines()
            lines[position - 1], lines[position] = lines[position], lines[position - 1]
            self.file.write_text("".join(lines))
        else:
            self._sql("UPDATE audit SET seq = -1 WHERE seq = ?", position)
            self._sql("UPDATE audit SET seq = ? WHERE seq = ?", position, position + 1)
            self._sql("UPDATE audit SET seq = ? WHERE seq = -1", position + 1)

    def garble(self, position: int) -> None:
        if self.billing.kind == "portabilling":
            lines = self.lines()
            lines[position - 1] = lines[position - 1].replace('"op": "', '"op": tru', 1)
            self.file.write_text("".join(lines))
        else:
            self._sql("UPDATE audit SET change = '{\"op\": tru' WHERE seq = ?", position)

    def cut_last(self) -> None:
        if self.billing.kind == "portabilling":
            self.file.write_text("".join(self.lines()[:-1]))
        else:
            self._sql("DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)")

    def _sql(self, statement: str, *params: Any) -> None:
        db = sqlite3.connect(self.db)
        with db:
            db.execute(statement, params)
        db.close()


@pytest.fixture
def log(billing: Billing) -> StoredLog:
    stored = StoredLog(billing)
    billing.load(DEMO_STATE)
    applied = billing.cli("apply", ABC, "--auto-approve")
    assert applied.code == 0, applied
    return stored


def _entries(billing: Billing) -> list[dict[str, Any]]:
    result = billing.cli("history", "--format", "json")
    assert result.code == 0, result
    return result.json  # type: ignore[no-any-return]


# ---- a whole chain ------------------------------------------------------------------------------


def test_a_whole_log_verifies_and_apply_prints_the_head_it_leaves(billing: Billing) -> None:
    StoredLog(billing)
    billing.load(DEMO_STATE)
    applied = billing.cli("apply", "specs/customers", "--auto-approve")
    assert applied.code == 0, applied
    printed = re.search(r"audit log head: (sha256:[0-9a-f]{64}) \(10 entries\)", applied.err)
    assert printed, applied
    verified = billing.cli("history", "--verify")
    assert verified.code == 0, verified
    assert verified.out.strip() == f"audit log whole: 10 entries, head {printed[1]}"
    head = billing.cli("history", "--head")
    assert head.code == 0 and head.out.strip() == printed[1], head
    entries = _entries(billing)
    # Each entry names the one before it; the first names the start of the chain.
    assert entries[0]["prev"] == "sha256:" + "0" * 64
    assert all(e["prev"] == before["hash"] for before, e in itertools.pairwise(entries))
    assert entries[-1]["hash"] == printed[1]
    jsonschema.validate(entries, HISTORY_SCHEMA)
    as_json = billing.cli("history", "--verify", "--format", "json")
    assert as_json.code == 0 and as_json.json["whole"] and as_json.json["head"] == printed[1]
    jsonschema.validate(as_json.json, HISTORY_SCHEMA)


# ---- tampering found -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tamper", "named", "words"),
    [
        ("edit", 3, "was edited: its content does not match its hash"),
        ("garble", 3, "cannot be read"),
        ("swap", 2, "is out of order"),
        ("delete", 2, "an entry between them was removed"),
        ("delete_first", 1, "entries before it were removed"),
    ],
)
def test_verify_names_the_first_entry_that_was_tampered_with(
    log: StoredLog, billing: Billing, tamper: str, named: int, words: str
) -> None:
    assert billing.cli("history", "--verify").code == 0
    times = [e["time"] for e in _entries(billing)]
    if tamper == "delete_first":
        log.delete(1)
    elif tamper == "delete":
        log.delete(2)
        # SQLite keeps the sequence numbers: the entry after the gap is entry 3 there.
        named = 2 if billing.kind == "portabilling" else 3
    else:
        getattr(log, tamper)(named)
    if tamper == "delete_first" and billing.kind != "portabilling":
        named = 2
    result = billing.cli("history", "--verify")
    assert result.code == 1, result
    assert f"error: audit log broken at {log.where(named)} (" in result.err, result
    assert words in result.err, result
    assert times[0] in result.err  # the time of the entry named (all of one apply here)
    assert "Traceback" not in result.err + result.out


def test_history_warns_about_a_line_it_cannot_read_and_lists_the_rest(log: StoredLog,
                                                                      billing: Billing) -> None:
    log.garble(2)
    result = billing.cli("history")
    assert result.code == 0, result
    assert f"warning: audit log {log.where(2)} cannot be read (" in result.err, result
    assert "it is not listed" in result.err
    assert f"warning: audit log broken at {log.where(2)}" in result.err
    assert result.out.count("customer 46170") == 3  # four entries, one unreadable
    as_json = billing.cli("history", "--format", "json")
    assert as_json.code == 0 and len(as_json.json) == 3
    assert f"{log.where(2)} cannot be read" in as_json.err


# ---- apply and a broken chain --------------------------------------------------------------------


def test_apply_refuses_to_append_to_a_broken_chain_and_changes_nothing(log: StoredLog,
                                                                       billing: Billing) -> None:
    log.edit(2)
    before, entries = billing.dump(), len(_entries(billing))
    result = billing.cli("apply", "specs/customers", "--auto-approve")
    assert result.code == 1, result
    assert f"is broken at {log.where(2)} (" in result.err
    assert "nothing is appended to a broken chain" in result.err
    assert "history --new-chain --reason" in result.err
    assert billing.dump() == before
    assert len(_entries(billing)) == entries
    saved = billing.cli("plan", "specs/customers", "--out", "plan.json")
    assert saved.code == 0, saved
    assert billing.cli("apply", "--plan", "plan.json").code == 1
    assert billing.dump() == before


def test_a_new_chain_is_recorded_and_verify_reports_it(log: StoredLog, billing: Billing) -> None:
    old_head = billing.cli("history", "--head").out.strip()
    refused = billing.cli("history", "--new-chain", "--reason", "no reason")
    assert refused.code == 1 and "is whole" in refused.err, refused
    log.edit(3)
    assert billing.cli("history", "--new-chain").code == 1  # a reason is required
    restarted = billing.cli("history", "--new-chain", "--reason",
                            "entry 3 edited by hand; checked with billing")
    assert restarted.code == 0, restarted
    assert f"it replaces the head {old_head}" in restarted.out
    verified = billing.cli("history", "--verify")
    assert verified.code == 0, verified
    assert "audit log whole: 5 entries" in verified.out
    assert (f"the chain was restarted at {log.where(5)} (" in verified.out
            and "'entry 3 edited by hand; checked with billing'" in verified.out
            and f"the old chain broke at {log.where(3)}" in verified.out), verified
    restart = _entries(billing)[-1]
    jsonschema.validate(_entries(billing), HISTORY_SCHEMA)
    broken = billing.cli("history", "--verify", "--format", "json", "--expect-head", old_head)
    assert broken.code == 1 and not broken.json["ok"] and broken.json["restarts"], broken
    jsonschema.validate(broken.json, HISTORY_SCHEMA)
    assert restart["op"] == "new_chain" and restart["change"]["replaces"] == old_head
    assert restart["prev"] == old_head
    # Apply works again, chained after the restart, and verify still reports the restart.
    applied = billing.cli("apply", "specs/customers", "--auto-approve")
    assert applied.code == 0, applied
    again = billing.cli("history", "--verify")
    assert (
        again.code == 0 and "audit log whole: 11 entries" in again.out and "restarted" in again.out
    )
    # The break the restart accepted is pinned: a further edit before it is found.
    log.edit(1)
    later = billing.cli("history", "--verify")
    assert (
        later.code == 1 and f"broken at {log.where(1)} (" in later.err and "was edited" in later.err
    ), later


def test_a_kept_head_finds_entries_cut_from_the_end(log: StoredLog, billing: Billing) -> None:
    head = billing.cli("history", "--head").out.strip()
    assert HEAD.fullmatch(head)
    assert billing.cli("history", "--verify", "--expect-head", head).code == 0
    log.cut_last()
    assert billing.cli("history", "--verify").code == 0  # a chain alone cannot tell
    cut = billing.cli("history", "--verify", "--expect-head", head)
    assert cut.code == 1 and f"the expected head {head} is not in the audit log" in cut.err, cut
    applied = billing.cli("apply", "specs/customers", "--auto-approve")
    assert applied.code == 0, applied
    newer = billing.cli("history", "--head").out.strip()
    grown = billing.cli("history", "--verify", "--expect-head", _entries(billing)[0]["hash"])
    assert grown.code == 1 and "entries follow it" in grown.err and newer in grown.err, grown


# ---- concurrent appends --------------------------------------------------------------------------


def _append_many(url: str, audit_path: str, customer: int, count: int) -> None:
    from reconciler.backends import open_backend
    from reconciler.backends.base import AuditEntry

    if url.startswith("portabilling"):
        from reconciler.backends.portabilling.backend import PortaBillingBackend

        backend: Any = PortaBillingBackend(url, audit_path=audit_path, env={},
                                           lock_dir=audit_path + ".locks")
    else:
        backend = open_backend(url)
    with backend:
        catalogue = backend.catalogue() if url.startswith("sqlite") else None
        for n in range(count):
            with backend.customer_session(customer, catalogue) as session:
                session.record([AuditEntry("2026-12-04T00:00:00+00:00", customer, "block",
                                           f"ph{customer}x{n}",
                                           {"op": "block", "account": f"ph{customer}x{n}"},
                                           "sha256:x", None)])


@pytest.mark.parametrize("kind", ["sqlite", "portabilling"])
def test_concurrent_appends_keep_one_chain(kind: str, tmp_path: Path) -> None:
    from tests.helpers import run_cli

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'billing.db'}"
        assert run_cli("--backend", url, "state", "load", str(DEMO_STATE)).code == 0
        env: dict[str, str] = {}
    else:
        url = "portabilling+http://127.0.0.1:9"  # appends and history never call the server
        env = {"RECONCILER_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many,
                               args=(url, str(tmp_path / "audit.jsonl"), 1000 + i, 60))
               for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    verified = run_cli("--backend", url, "history", "--verify", env=env)
    assert verified.code == 0, verified
    assert "audit log whole: 240 entries" in verified.out
    entries = run_cli("--backend", url, "history", "--format", "json", env=env).json
    assert len({e["prev"] for e in entries}) == 240  # no two entries chained onto the same head


# ---- logs written before the chain ---------------------------------------------------------------


def test_a_log_from_before_the_chain_is_refused_until_a_chain_is_started(log: StoredLog,
                                                                         billing: Billing) -> None:
    if billing.kind == "portabilling":
        lines = [json.loads(line) for line in log.lines()]
        log.file.write_text("".join(
            json.dumps({k: v for k, v in e.items() if k not in ("prev", "hash")}) + "\n"
            for e in lines))
    else:
        db = sqlite3.connect(log.db)
        with db:
            db.execute("ALTER TABLE audit DROP COLUMN prev")
            db.execute("ALTER TABLE audit DROP COLUMN hash")
            db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        db.close()
    verified = billing.cli("history", "--verify")
    assert verified.code == 1, verified
    assert f"broken at {log.where(1)} (" in verified.err
    assert "has no hash: it was written before the audit log had a hash chain" in verified.err
    assert len(_entries(billing)) == 4  # still listed
    before = billing.dump()
    assert billing.cli("apply", "specs/customers", "--auto-approve").code == 1
    assert billing.dump() == before
    assert (
        billing.cli("history", "--new-chain", "--reason", "chain added to the existing log").code
        == 0
    )
    assert billing.cli("apply", "specs/customers", "--auto-approve").code == 0
    verified = billing.cli("history", "--verify")
    assert verified.code == 0 and "audit log whole: 11 entries" in verified.out, verified


def test_state_load_keeps_the_audit_log_and_its_chain(log: StoredLog, billing: Billing) -> None:
    if billing.kind != "sqlite":
        pytest.skip("state load is the embedded backend's")
    head = billing.cli("history", "--head").out.strip()
    billing.load(DEMO_STATE)
    verified = billing.cli("history", "--verify", "--expect-head", head)
    assert verified.code == 0 and "4 entries" in verified.out, verified


def test_a_change_that_reached_billing_is_recorded_even_after_a_break(tmp_path: Path) -> None:
    """PortaBilling cannot take a write back: if the log breaks during a run, the change is still
    recorded (after the break) and apply is told to stop."""
    from reconciler.auditchain import AuditChainBroken
    from reconciler.backends.base import AuditEntry
    from reconciler.backends.portabilling.audit import AuditLog

    path = tmp_path / "audit.jsonl"
    entry = AuditEntry("2026-12-04T00:00:00+00:00", 1, "block", "ph1x1",
                       {"op": "block", "account": "ph1x1"}, "sha256:x", None)
    running = AuditLog(str(path))
    running.append([entry, entry])
    path.write_text(path.read_text().replace("ph1x1", "ph1x2", 1))  # someone edits line 1
    with pytest.raises(AuditChainBroken, match="broken at line 1") as raised:
        running.append([entry])
    assert raised.value.recorded
    assert len(path.read_text().splitlines()) == 3


def test_two_applies_at_once_on_different_customers_keep_one_chain(billing: Billing) -> None:
    """Two real apply processes write at the same time (on PortaBilling each holds only its own
    customer's lock, so their appends meet at the audit log's lock)."""
    StoredLog(billing)  # the PortaBilling log goes where the test reads it
    billing.load(DEMO_STATE)
    if billing.kind == "portabilling":
        billing.server.set_latency(30)  # type: ignore[attr-defined]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RECONCILER_"))}
    env.update(billing.env)
    procs = [
        subprocess.Popen([sys.executable, "-m", "reconciler", "--backend", billing.url, "apply",
                          spec, "--auto-approve"], cwd=billing.workdir, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for spec in ("specs/customers/abc.yaml", "specs/customers/contoso-logistics.yaml",
                     "specs/customers/northwind-dental.yaml")
    ]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [code for _, _, code in results] == [0, 0, 0], results
    verified = billing.cli("history", "--verify")
    assert verified.code == 0 and "audit log whole: 10 entries" in verified.out, verified
    entries = _entries(billing)
    assert len({e["prev"] for e in entries}) == 10
