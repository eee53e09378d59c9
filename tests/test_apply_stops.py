"""What apply leaves when it stops early: asked to stop, or unable to record a write.

In process and fast (the mutation run of reconciler/apply.py runs these once per mutant): a stop
requested before a customer starts writes nothing and says so; on PortaBilling, which cannot
take a write back, an audit log that fails after a write stops the run at once, and the
operator is told which change reached billing, where the log is and why it failed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from reconciler.apply import NOT_STARTED, apply_plan
from reconciler.auditchain import AuditChainBroken
from reconciler.backends import BackendSettings, open_backend
from reconciler.backends.portabilling.audit import AuditLog
from reconciler.plan import read_plan_file
from tests.conftest import Billing, PortaBillingBilling
from tests.helpers import REPO

DEMO_STATE = REPO / "specs" / "demo-billing-state.yaml"
ABC = "specs/customers/abc.yaml"


def _history(billing: Billing) -> str:
    result = billing.cli("history")
    assert result.code == 0, result
    return result.out


@pytest.mark.parametrize("says_no_first", [0, 1], ids=["before-the-lock", "after-the-read"])
def test_a_stop_before_a_customer_writes_changes_nothing_and_says_so(
        sqlite_billing: Billing, workdir: Path, says_no_first: int) -> None:
    """A stop asked before the customer is locked, or once its state is read under the lock:
    the customer is not started, nothing reaches billing or the audit log."""
    billing = sqlite_billing
    billing.load(DEMO_STATE)
    saved = workdir / "plan.json"
    assert billing.cli("plan", ABC, "--out", str(saved)).code == 0
    plan = read_plan_file(str(saved))
    planned = len(plan.customers[0].changes)
    assert planned > 1
    before = billing.dump()
    asked: list[bool] = []

    def stop() -> bool:
        asked.append(True)
        return len(asked) > says_no_first

    backend = open_backend(billing.url)
    try:
        outcomes = apply_plan(plan, backend, stop=stop)
    finally:
        backend.close()
    assert [(o.customer, o.status, o.message, o.planned, o.done) for o in outcomes] == [
        (46170, NOT_STARTED, "nothing was changed for this customer", planned, [])
    ]
    assert billing.dump() == before
    assert "46170" not in _history(billing)
    # What was not started is still to do: apply from the same saved plan writes it all.
    again = billing.cli("apply", "--plan", str(saved))
    assert again.code == 0 and f"customer 46170: applied, {planned} change(s)" in again.out, again


def _failing_after(monkeypatch: pytest.MonkeyPatch, writes: int, error: Exception) -> None:
    """The PortaBilling audit log takes ``writes`` appends, then each one fails with ``error``."""
    real = AuditLog.append
    taken: list[int] = []

    def append(self: AuditLog, entries: list) -> None:  # type: ignore[type-arg]
        if len(taken) >= writes:
            if isinstance(error, AuditChainBroken) and error.recorded:
                real(self, entries)  # recorded after the break, as the real log does
            raise error
        taken.append(len(entries))
        real(self, entries)

    monkeypatch.setattr(AuditLog, "append", append)


@pytest.fixture
def portabilling(workdir: Path) -> PortaBillingBilling:
    billing = PortaBillingBilling(workdir)
    billing.env["RECONCILER_AUDIT_LOG"] = str(workdir / "audit.jsonl")
    billing.load(DEMO_STATE)
    yield billing  # type: ignore[misc]
    billing.close()


def test_an_audit_log_that_fails_after_a_write_stops_portabilling_and_names_the_write(
        portabilling: PortaBillingBilling, workdir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _failing_after(monkeypatch, 1, OSError(28, "No space left on device"))
    result = portabilling.cli("apply", ABC, "--auto-approve")
    assert result.code == 1, result
    line = next(x for x in result.err.splitlines() if x.startswith("customer 46170: failed: "))
    assert " reached billing but could not be recorded in the audit log " in line, line
    assert str(workdir / "audit.jsonl") in line, line
    assert "No space left on device" in line, line
    assert "; stopped so that no further change goes unrecorded" in line, line
    assert line.endswith("; 2 of 4 change(s) were made before it stopped:"), line
    # The change that was recorded and the one that was not are both listed as made.
    assert sum(1 for x in result.err.splitlines() if x.startswith("    done: ")) == 2, result


def test_a_chain_broken_during_the_run_records_the_write_and_stops_portabilling(
        portabilling: PortaBillingBilling, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = AuditChainBroken("the audit log's chain is broken at line 1", recorded=True)
    _failing_after(monkeypatch, 1, broken)
    result = portabilling.cli("apply", ABC, "--auto-approve")
    assert result.code == 1, result
    line = next(x for x in result.err.splitlines() if x.startswith("customer 46170: failed: "))
    assert (" reached billing and is recorded, but the audit log's chain is broken at line 1; "
            "stopped") in line, line
    assert line.endswith("; 2 of 4 change(s) were made before it stopped:"), line
    assert "could not be recorded" not in line, line


def test_ctrl_c_during_a_write_on_portabilling_stops_after_it_and_reports_what_was_made(
        portabilling: PortaBillingBilling, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT arrives while the first change is written: that change finishes and is recorded,
    nothing more is started, and the report says exactly what was made."""
    real = AuditLog.append

    def append(self: AuditLog, entries: list) -> None:  # type: ignore[type-arg]
        real(self, entries)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, during the first write

    monkeypatch.setattr(AuditLog, "append", append)
    result = portabilling.cli("apply", ABC, "--auto-approve")
    assert result.code == 130, result
    assert ("SIGINT received: stopping after the write in flight (it finishes and is recorded in "
            "the audit log; nothing more is started)") in result.err.splitlines(), result
    assert "customer 46170: interrupted after 1 of 4 change(s); these were made:" \
        in result.out.splitlines(), result
    assert sum(1 for x in result.out.splitlines() if x.startswith("    done: ")) == 1, result
    assert "customer 46170 stopped after 1 of 4 change(s); 0 customer(s) not started" \
        in result.out, result
    monkeypatch.setattr(AuditLog, "append", real)
    assert _history(portabilling).count("customer 46170 ") == 1
    finished = portabilling.cli("apply", ABC, "--auto-approve")
    assert finished.code == 0 and "customer 46170: applied, 3 change(s)" in finished.out, finished


def test_a_stop_just_before_the_first_write_on_portabilling_starts_nothing(
        portabilling: PortaBillingBilling, workdir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop asked after the customer's state is read, before its first write: not started."""
    saved = workdir / "plan.json"
    assert portabilling.cli("plan", ABC, "--out", str(saved)).code == 0
    plan = read_plan_file(str(saved))
    before = portabilling.dump()
    for name, value in portabilling.env.items():
        monkeypatch.setenv(name, value)
    asked: list[bool] = []

    def stop() -> bool:  # no before the lock, no after the read, yes before the first change
        asked.append(True)
        return len(asked) > 2

    backend = open_backend(portabilling.url, BackendSettings())
    try:
        outcomes = apply_plan(plan, backend, stop=stop)
    finally:
        backend.close()
    assert [(o.customer, o.status, o.message, o.planned, o.done) for o in outcomes] == [
        (46170, NOT_STARTED, "nothing was changed for this customer", 4, [])
    ]
    assert portabilling.dump() == before
    assert "46170" not in _history(portabilling)


def test_ctrl_c_while_planning_exits_130_and_changes_nothing(
        sqlite_billing: Billing, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C before the approval (here while the plan is computed): nothing is written, the
    run says so and exits 130, as a shell reports a process SIGINT ended."""
    cli_apply = sys.modules["reconciler.cli.apply"]  # the module, not its `apply` command

    sqlite_billing.load(DEMO_STATE)
    before = sqlite_billing.dump()

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_apply, "_compute_plan", interrupted)
    result = sqlite_billing.cli("apply", ABC, "--auto-approve")
    assert result.code == 130, result
    assert "interrupted; nothing was changed" in result.err.splitlines(), result
    assert sqlite_billing.dump() == before



def test_a_failed_audit_write_on_sqlite_rolls_the_customer_back_and_says_so(
        sqlite_billing: Billing, monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite the changes and their audit rows commit together: when the rows cannot be
    written, the customer's changes are rolled back and the operator is told nothing changed."""
    from reconciler.backends.sqlite_audit import AuditTable
    from reconciler.errors import BackendError

    sqlite_billing.load(DEMO_STATE)
    before = sqlite_billing.dump()

    def append(self: AuditTable, entries: list) -> None:  # type: ignore[type-arg]
        raise BackendError("database or disk is full")

    monkeypatch.setattr(AuditTable, "append", append)
    result = sqlite_billing.cli("apply", ABC, "--auto-approve")
    assert result.code == 1, result
    assert ("customer 46170: failed: database or disk is full; nothing was changed for this "
            "customer") in result.err.splitlines(), result
    assert sqlite_billing.dump() == before


def test_a_customer_with_problems_is_skipped_and_the_others_apply(
        billing: Billing, workdir: Path) -> None:
    """Each applied change is recorded with the time in UTC; a customer whose spec has a
    problem is skipped, and told so, while the others apply."""
    billing.load(DEMO_STATE)
    broken = workdir / "abc-broken.yaml"
    broken.write_text((workdir / ABC).read_text().replace(
        "name: Reception\n    product: Cloud PBX service", "name: Reception\n    product: Hotdesk"))
    result = billing.cli("apply", str(broken), "specs/customers/contoso-logistics.yaml",
                         "--auto-approve")
    assert result.code == 1, result
    assert "customer 46170: skipped: 1 problem(s) in the plan" in result.err.splitlines(), result
    lines = _history(billing).splitlines()
    assert lines and all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 customer ", x)
                         for x in lines), lines
    assert not any("customer 46170" in x for x in lines), lines


def test_a_saved_plan_edited_to_reach_another_customer_is_refused(
        sqlite_billing: Billing, workdir: Path) -> None:
    """A saved plan is a file anyone could edit: a change moved to another customer's account is
    refused under the lock, named, and nothing of the customer is written."""
    sqlite_billing.load(DEMO_STATE)
    saved = workdir / "plan.json"
    assert sqlite_billing.cli("plan", ABC, "--out", str(saved)).code == 0
    data = json.loads(saved.read_text())
    change = data["customers"][0]["changes"][-1]
    moved = change["account"].replace("ph46170", "ph46171")
    change["account"] = moved
    saved.write_text(json.dumps(data))
    before = sqlite_billing.dump()
    result = sqlite_billing.cli("apply", "--plan", str(saved))
    assert result.code == 1, result
    line = next(x for x in result.err.splitlines() if x.startswith("customer 46170: "))
    assert line.startswith("customer 46170: refused: the plan holds changes this customer may "
                           f"not make: {change['op']} {moved}: not a managed account"), line
    assert sqlite_billing.dump() == before


def test_a_saved_plan_with_many_forged_changes_names_the_first_five(
        sqlite_billing: Billing, workdir: Path) -> None:
    """Six changes moved to accounts of another customer: the refusal names the first five, one
    after the other, says nothing of the sixth, and writes nothing."""
    sqlite_billing.load(DEMO_STATE)
    saved = workdir / "plan.json"
    assert sqlite_billing.cli("plan", ABC, "--out", str(saved)).code == 0
    data = json.loads(saved.read_text())
    forged = [{"op": "block", "account": f"ph46171x{n}"} for n in range(1, 7)]
    data["customers"][0]["changes"] = forged
    saved.write_text(json.dumps(data))
    before = sqlite_billing.dump()
    result = sqlite_billing.cli("apply", "--plan", str(saved))
    assert result.code == 1, result
    line = next(x for x in result.err.splitlines() if x.startswith("customer 46170: "))
    named = "; ".join(
        f"block ph46171x{n}: not a managed account of customer 46170" for n in range(1, 6))
    assert line == ("customer 46170: refused: the plan holds changes this customer may not make: "
                    + named), line
    assert "ph46171x6" not in result.err
    assert sqlite_billing.dump() == before


# Customer 51234: its self-care role allows no blocks; the administrator blocked ph51234x202.
NORTHWIND = "specs/customers/northwind-dental.yaml"
_NAMED = {"name": "Forged", "product": "Basic extension", "addons": [], "blocked": False}


@pytest.mark.parametrize(("forged", "reason"), [
    ({"op": "create_account", "account": "ph51234x201", "kind": "extension", **_NAMED},
     "create_account ph51234x201: the account exists already or its kind is not extension"),
    ({"op": "create_account", "account": "ph51234aa5", "kind": "extension", **_NAMED},
     "create_account ph51234aa5: the account exists already or its kind is not auto_attendant"),
    ({"op": "set_name", "account": "ph51234x999", "from": "Nobody", "to": "Forged"},
     "set_name ph51234x999: no such account of customer 51234"),
    ({"op": "set_name", "account": "ph51234x202", "from": "Front desk", "to": "Forged"},
     "set_name ph51234x202: blocked by the administrator"),
    ({"op": "add_alias", "account": "ph51234x201", "did": "12094555948"},
     "add_alias ph51234x201: DID 12094555948 is not in the customer's pool"),
    ({"op": "block", "account": "ph51234x201"},
     "block ph51234x201: the self-care role does not allow blocking"),
    ({"op": "add_addon", "account": "ph51234x201", "product": "Call recording"},
     "add_addon ph51234x201: 'Call recording' is not an add-on product of the agreement"),
    ({"op": "set_product", "account": "ph51234x201", "from": "Basic extension",
      "to": "Voicemail to email"},
     "set_product ph51234x201: 'Voicemail to email' is not a main product of the agreement"),
], ids=["create-existing", "create-wrong-kind", "no-such-account", "admin-blocked",
        "did-of-another-pool", "block-without-self-care", "addon-not-agreed", "main-of-wrong-type"])
def test_each_forged_change_is_refused_with_its_reason(
        sqlite_billing: Billing, workdir: Path, forged: dict[str, object], reason: str) -> None:
    """Each rule apply holds a saved plan to, broken alone: the customer is refused with the
    rule's reason, and billing is left as it was."""
    sqlite_billing.load(DEMO_STATE)
    saved = workdir / "plan.json"
    assert sqlite_billing.cli("plan", NORTHWIND, "--out", str(saved)).code == 0
    data = json.loads(saved.read_text())
    data["customers"][0]["changes"] = [forged]
    saved.write_text(json.dumps(data))
    before = sqlite_billing.dump()
    result = sqlite_billing.cli("apply", "--plan", str(saved))
    assert result.code == 1, result
    line = next(x for x in result.err.splitlines() if x.startswith("customer 51234: "))
    assert line == ("customer 51234: refused: the plan holds changes this customer may not make: "
                    + reason), line
    assert sqlite_billing.dump() == before
