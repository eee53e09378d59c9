"""The audit log's hash chain: the one rule both backends follow.

Every entry carries ``prev``, the hash of the entry before it (``GENESIS`` for the first), and
``hash``, the SHA-256 of its canonical JSON form (sorted keys, no spaces, UTF-8) taken over all its
fields except ``hash`` itself, ``prev`` included. Editing an entry breaks its own hash; removing,
inserting or reordering entries breaks the ``prev`` link of the entry after the gap. Cutting
entries from the end breaks nothing: only a head kept elsewhere (``history --head``, compared with
``history --verify --expect-head``) shows that.

An operator may start a new chain over a broken one (``history --new-chain --reason``): that is an
entry of its own (op ``new_chain``) whose ``prev`` is the broken head it replaces, and which names
where the old chain broke and how many entries came before it. Verification accepts the break it
names, checks everything after it as strictly as a fresh chain, and always reports the restart.

The SQLite table and the PortaBilling JSON-lines file both hand their stored entries to
``ChainCheck`` as ``Stored`` records; neither backend hashes or links anything itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.errors import BackendError


@dataclass(frozen=True)
class AuditEntry:
    time: str
    customer: int
    op: str
    account: str
    change: dict[str, Any]
    fingerprint: str
    git_commit: str | None
    # The hash chain (this module): the hash of the entry before and this entry's own.
    # Set once stored; equality is about what was applied, not where it sits in the chain.
    prev: str | None = field(default=None, compare=False)
    hash: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The applied change's fields (what ``history --format json`` shows, with the chain)."""
        return {
            "time": self.time,
            "customer": self.customer,
            "op": self.op,
            "account": self.account,
            "change": self.change,
            "fingerprint": self.fingerprint,
            "git_commit": self.git_commit,
        }

GENESIS = "sha256:" + "0" * 64
NEW_CHAIN = "new_chain"
_FIELDS: dict[str, tuple[type, ...]] = {
    "time": (str,),
    "customer": (int,),
    "op": (str,),
    "account": (str,),
    "change": (dict,),
    "fingerprint": (str,),
    "git_commit": (str, type(None)),
    "prev": (str, type(None)),
}
_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class AuditChainBroken(BackendError):
    """The audit log's hash chain does not verify; nothing may be appended to it unnoticed.

    ``recorded``: the entries that were being appended are in the log all the same (a change that
    reached billing is always recorded), after the break.
    """

    def __init__(self, message: str, *, recorded: bool = False) -> None:
        super().__init__(message)
        self.recorded = recorded


def entry_hash(body: Mapping[str, Any]) -> str:
    """The hash of an entry: SHA-256 over the canonical JSON of every field but ``hash``."""
    return "sha256:" + hashlib.sha256(_ENCODER.encode(body).encode("utf-8")).hexdigest()


def seal(entries: Iterable[AuditEntry], prev: str) -> list[AuditEntry]:
    """``entries`` chained one after another onto the head ``prev``, each with its hash."""
    sealed = []
    for e in entries:
        body = e.to_dict()
        body["prev"] = prev
        digest = entry_hash(body)
        # Built directly: dataclasses.replace costs as much as the hash on a big apply.
        sealed.append(AuditEntry(e.time, e.customer, e.op, e.account, e.change, e.fingerprint,
                                 e.git_commit, prev, digest))
        prev = digest
    return sealed


def body_of(entry: AuditEntry) -> dict[str, Any]:
    """What an entry's hash covers: its fields and ``prev``."""
    body = entry.to_dict()
    body["prev"] = entry.prev
    return body


def body_problem(body: Mapping[str, Any]) -> str:
    """Why a stored body is not an entry (a field missing or of the wrong type), or ""."""
    try:
        if (type(body["time"]) is str and type(body["customer"]) is int and type(body["op"]) is str
                and type(body["account"]) is str and type(body["change"]) is dict
                and type(body["fingerprint"]) is str
                and type(body["git_commit"]) in (str, type(None))
                and type(body.get("prev")) in (str, type(None))):
            return ""
    except KeyError as exc:
        return f"the field {exc.args[0]!r} is missing"
    for name, types in _FIELDS.items():
        value = body.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            return f"the field {name!r} is not a {types[0].__name__}"
    return ""


def entry_of(body: Mapping[str, Any], stored_hash: str | None) -> AuditEntry:
    """The AuditEntry a stored body holds; ValueError naming the field when it cannot be one."""
    problem = body_problem(body)
    if problem:
        raise ValueError(problem)
    return AuditEntry(
        body["time"], body["customer"], body["op"], body["account"], body["change"],
        body["fingerprint"], body["git_commit"], prev=body.get("prev"), hash=stored_hash,
    )


@dataclass(frozen=True)
class Stored:
    """One entry as a backend read it: where it is, its body and hash, or why it is unreadable."""

    where: str  # "line 12" (a file) or "entry 12" (a table's sequence number)
    body: dict[str, Any] | None
    hash: str | None
    unreadable: str | None = None
    time: str | None = None  # of an unreadable entry, when it could still be made out

    def entry(self) -> AuditEntry | None:
        if self.body is None or self.why_unreadable():
            return None
        return entry_of(self.body, self.hash)

    def why_unreadable(self) -> str:
        """Why this is not an entry, or "" if it is one."""
        if self.body is None:
            return self.unreadable or "no content"
        return body_problem(self.body)

    def label(self) -> str:
        """``line 12 (2026-12-04T10:00:00+00:00, customer 46170, block ph46170x466)``."""
        body = self.body or {}
        time = body.get("time", self.time)
        parts = [str(time)] if time is not None else []
        if body.get("op") == NEW_CHAIN:
            parts.append("a chain restart")
        elif "customer" in body or "op" in body:
            parts.append(f"customer {body.get('customer')}, {body.get('op')} "
                         f"{body.get('account', '')}".rstrip())
        return f"{self.where} ({', '.join(parts)})" if parts else self.where


@dataclass(frozen=True)
class Problem:
    where: str  # Stored.where of the entry named
    label: str  # Stored.label(): where, time and what the entry is
    what: str
    link: str | None = None  # for a broken link: the ``prev`` the entry names

    def sentence(self) -> str:
        return f"{self.label}: {self.what}"


@dataclass(frozen=True)
class Restart:
    label: str
    reason: str
    replaces: str
    broken_at: str


@dataclass
class Verdict:
    """The outcome of checking a whole log (or all of it read so far)."""

    entries: int
    head: str
    problem: Problem | None
    restarts: list[Restart] = field(default_factory=list)

    @property
    def whole(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.problem is not None:
            return f"audit log broken at {self.problem.sentence()}"
        return f"audit log whole: {self.entries} entries, head {self.head}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "whole": self.whole,
            "entries": self.entries,
            "head": self.head if self.whole else None,
            "problem": None if self.problem is None else {
                "where": self.problem.where, "entry": self.problem.label, "what": self.problem.what,
            },
            "restarts": [
                {"entry": r.label, "reason": r.reason, "replaces": r.replaces,
                 "broken_at": r.broken_at}
                for r in self.restarts
            ],
        }

    def restart_lines(self) -> list[str]:
        return [
            f"the chain was restarted at {r.label}: {r.reason!r} (it replaced the head "
            f"{r.replaces}; the old chain broke at {r.broken_at})"
            for r in self.restarts
        ]


class ChainCheck:
    """Follows a chain entry by entry; feed it ``Stored`` records in log order.

    Incremental: apply keeps one per run and feeds it only what was added since, so the log is
    read and hashed once per run, not once per entry.
    """

    def __init__(self) -> None:
        self.count = 0
        self.head = GENESIS  # the hash the next entry must name as its ``prev``
        self.problem: Problem | None = None
        self.restarts: list[Restart] = []
        # The stored hash of the last record (if it could be read): what a restart names.
        self.last_stored: str | None = None
        self._last_where = ""
        # hash -> (where, position): tells a reordered entry from a gap, and finds a pinned head.
        self._hashes: dict[str, tuple[str, int]] = {}

    def feed(self, record: Stored) -> None:
        self.count += 1
        if record.body is not None and record.hash is not None:
            self._hashes.setdefault(record.hash, (record.where, self.count))
        if record.body is not None and record.body.get("op") == NEW_CHAIN:
            self._restart(record)
        elif self.problem is None:
            # After the first break the chain cannot be followed; only a restart picks it up.
            what = self._fault(record)
            if what is not None:
                link = record.body.get("prev") if record.body and what == "link" else None
                self.problem = Problem(record.where, record.label(), what, link)
            else:
                self.head = record.hash  # type: ignore[assignment]
        self.last_stored = record.hash if record.body is not None else None
        self._last_where = record.where

    def extend_own(self, count: int, head: str, where: str) -> None:
        """Take ``count`` entries this run sealed onto ``self.head`` and wrote under the lock, up
        to ``head`` at ``where``, as verified without reading them back."""
        self.count += count
        self.head = self.last_stored = head
        self._last_where = where

    def _fault(self, record: Stored) -> str | None:
        why = record.why_unreadable()
        if why or record.body is None:
            return f"cannot be read: {why}"
        if record.hash is None or not isinstance(record.body.get("prev"), str):
            return "has no hash: it was written before the audit log had a hash chain"
        if entry_hash(record.body) != record.hash:
            return "was edited: its content does not match its hash"
        if record.body["prev"] != self.head:
            return "link"
        return None

    def _restart(self, record: Stored) -> None:
        body = record.body or {}
        change: dict[str, Any] = body["change"] if isinstance(body.get("change"), dict) else {}
        expected = self.last_stored or GENESIS
        what = None
        if record.hash is None or entry_hash(body) != record.hash:
            what = "was edited: this chain restart does not match its hash"
        elif body.get("prev") != expected or change.get("replaces") != expected:
            before = self._last_where or "none"
            what = f"this chain restart does not follow the entry before it ({before})"
        elif change.get("entries") != self.count - 1:
            what = (f"entries before this chain restart were removed or added: it was made after "
                    f"{change.get('entries')} entries, {self.count - 1} precede it now")
        elif self.problem is not None and self.problem.where != change.get("broken_at"):
            what = (f"the old chain now breaks at {self.problem.sentence()}, not at "
                    f"{change.get('broken_at')} where it broke when this restart was made")
        if what is not None:
            if self.problem is None:
                self.problem = Problem(record.where, record.label(), what)
            return
        self.problem = None
        self.head = record.hash  # type: ignore[assignment]
        self.restarts.append(Restart(record.label(), str(change.get("reason", "")),
                                     expected, str(change.get("broken_at"))))

    def verdict(self) -> Verdict:
        problem = self.problem
        if problem is not None and problem.what == "link":
            problem = replace(problem, what=self._link_problem(problem))
        return Verdict(self.count, self.head, problem, list(self.restarts))

    def _link_problem(self, problem: Problem) -> str:
        named = self._hashes.get(problem.link or "", ("", 0))[0]
        if named and named != problem.where:
            return (f"is out of order: it names {named} as the entry before it "
                    "(entries were reordered)")
        if self.head == GENESIS and not self.restarts:
            return ("entries before it were removed: it names a previous entry, "
                    "but it is the first of the chain")
        return ("does not follow the entry before it: an entry between them was removed, or "
                "the one before it was rewritten with a new hash")

    def where_is(self, head: str) -> tuple[str, int] | None:
        """Where the entry with this hash is and its position (from 1), if the log holds it."""
        return self._hashes.get(head)


def check(records: Iterable[Stored]) -> tuple[ChainCheck, list[AuditEntry], list[Stored]]:
    """Check a whole log: the finished check, the entries that could be read, and those that not."""
    chain = ChainCheck()
    entries: list[AuditEntry] = []
    unreadable: list[Stored] = []
    for record in records:
        chain.feed(record)
        entry = record.entry()
        if entry is None:
            unreadable.append(record)
        else:
            entries.append(entry)
    return chain, entries, unreadable


def restart_change(reason: str, chain: ChainCheck) -> dict[str, Any]:
    """The ``change`` of a chain restart made after what ``chain`` read (which must be broken)."""
    assert chain.problem is not None
    verdict = chain.verdict()
    assert verdict.problem is not None
    return {
        "op": NEW_CHAIN,
        "account": "",
        "reason": reason,
        "replaces": chain.last_stored or GENESIS,
        "broken_at": verdict.problem.where,
        "problem": verdict.problem.sentence(),
        "entries": chain.count,
    }


def refusal(verdict: Verdict, location: str) -> str:
    """Why nothing is appended to a broken log, and what the operator can do."""
    assert verdict.problem is not None
    return (
        f"the audit log ({location}) is broken at {verdict.problem.sentence()}; nothing is "
        "appended to a broken chain. Check it with `reconciler history --verify`; once the cause "
        "is understood, `reconciler history --new-chain --reason TEXT` starts a new chain (itself "
        "recorded in the log)"
    )


def restart_prev(chain: ChainCheck) -> str:
    """What a restart (or an entry recorded despite a break) names as the entry before it."""
    return chain.last_stored or GENESIS
