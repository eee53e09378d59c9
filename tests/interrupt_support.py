"""What the interrupt tests share: reading apply's report, and replaying the audit log.

The central check of an interrupted apply is that billing holds exactly what the audit log
says was done: ``replay`` applies the audit entries of one run to the accounts billing held
before it, refusing an entry that could not have been written (a second creation of one
account, an add-on or DID added twice, a name changed from a value it did not have), and the
result must equal what billing holds after the run. A change in billing without its audit
entry, an entry without its change, or an entry recorded twice all show as a difference.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_APPLIED = re.compile(r"^customer (\d+): applied, (\d+) change\(s\)$")
_CUT = re.compile(r"^customer (\d+): interrupted after (\d+) of (\d+) change\(s\); "
                  r"these were made:$")
_NOT_STARTED = re.compile(r"^customer (\d+): not started \(interrupted\)$")
_DONE = re.compile(r"^    done: (.*)$")


@dataclass
class Report:
    """What an apply printed about each customer."""

    applied: dict[int, int] = field(default_factory=dict)  # customer -> changes applied
    # (done, planned, lines)
    cut: dict[int, tuple[int, int, list[str]]] = field(default_factory=dict)
    not_started: set[int] = field(default_factory=set)
    before_writing: bool = False  # "interrupted; nothing was changed": stopped while planning
    summary: str = ""  # the closing "interrupted (SIGINT): ..." line

    @property
    def customers_written(self) -> set[int]:
        return set(self.applied) | {cid for cid, (done, _, _) in self.cut.items() if done}


def parse_report(out: str, err: str) -> Report:
    report = Report()
    current: int | None = None
    for line in (out + "\n" + err).splitlines():
        if match := _APPLIED.match(line):
            report.applied[int(match[1])] = int(match[2])
        elif match := _CUT.match(line):
            current = int(match[1])
            report.cut[current] = (int(match[2]), int(match[3]), [])
        elif (match := _DONE.match(line)) and current is not None:
            report.cut[current][2].append(match[1])
        elif match := _NOT_STARTED.match(line):
            report.not_started.add(int(match[1]))
        elif line == "interrupted; nothing was changed":
            report.before_writing = True
        elif line.startswith("interrupted (SIG"):
            report.summary = line
    return report


def replay(accounts: Iterable[Mapping[str, Any]], entries: Iterable[Mapping[str, Any]]) -> tuple[
        dict[str, dict[str, Any]], list[str]]:
    """The accounts after applying the audit ``entries`` (changes as recorded) to ``accounts``.

    Accounts are state-file dicts (``state dump`` format). Returns (accounts by id, problems):
    a problem is an entry that does not fit the state it would have been applied to.
    """
    state = {a["id"]: copy.deepcopy(dict(a)) for a in accounts}
    problems: list[str] = []
    for entry in entries:
        change = entry["change"]
        op, account_id = change["op"], change["account"]
        account = state.get(account_id)
        where = f"{op} {account_id}"
        if op == "create_account":
            if account is not None:
                problems.append(f"{where}: the account exists already (created twice?)")
                continue
            created = {
                "id": account_id, "customer": entry["customer"], "name": change["name"],
                "product": change["product"], "addons": sorted(change["addons"]), "dids": [],
                "status": "open",
            }
            if change["blocked"]:
                created["blocked_by"] = "customer"
            state[account_id] = created
            continue
        if account is None:
            problems.append(f"{where}: no such account")
            continue
        if op in ("set_product", "set_name"):
            key = "product" if op == "set_product" else "name"
            if account[key] != change["from"]:
                problems.append(f"{where}: {key} was {account[key]!r}, not {change['from']!r}")
            account[key] = change["to"]
        elif op in ("add_addon", "remove_addon", "add_alias", "remove_alias"):
            key, value = ("addons", change["product"]) if "addon" in op else ("dids", change["did"])
            values = set(account[key])
            if op.startswith("add"):
                if value in values:
                    problems.append(f"{where} {value}: there already (written twice?)")
                values.add(value)
            else:
                if value not in values:
                    problems.append(f"{where} {value}: not there")
                values.discard(value)
            account[key] = sorted(values)
        elif op == "block":
            account["blocked_by"] = "customer"
        elif op == "unblock":
            account.pop("blocked_by", None)
        elif op == "terminate_account":
            account["status"] = "terminated"
            account["dids"] = []
        else:
            problems.append(f"{where}: unknown op")
    return state, problems


def billing_differences(
    before: Mapping[str, Any], after: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Where billing ``after`` a run differs from billing ``before`` it plus the run's audit
    entries.

    ``before`` and ``after`` are state dumps; ``entries`` the audit entries the run added.
    """
    expected, problems = replay(before["accounts"], entries)
    actual = {a["id"]: dict(a) for a in after["accounts"]}
    for account_id in sorted(set(expected) | set(actual)):
        want, have = expected.get(account_id), actual.get(account_id)
        if want != have:
            problems.append(
                f"{account_id}: the audit log accounts for {want}, billing holds {have}"
            )
    if before["customers"] != after["customers"] or before["products"] != after["products"]:
        problems.append("customers or products changed")
    return problems
