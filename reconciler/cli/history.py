"""`reconciler history`: the audit log, its hash chain, and a new chain over a broken one.

It names the log it read on standard error (standard output stays the entries alone, pure JSON
with ``--format json``). A log that does not exist is not an error (nothing was applied through
it yet: exit 0), but it is said plainly, with where the log is looked for: a PortaBilling audit
log is a local file, relative to the working directory unless RECONCILER_AUDIT_LOG says where.

Listing never drops an entry silently: an unreadable one is named in a warning, and so is the
first break of the chain. ``--verify`` makes a break the exit code; ``--expect-head`` also
compares the head with one kept from an earlier run, the only way to see entries cut from the end.
"""

from __future__ import annotations

import sys

import click

from reconciler.auditchain import NEW_CHAIN, ChainCheck, Verdict, check
from reconciler.backends.base import AuditEntry, Backend
from reconciler.cli.common import (
    CUSTOMER_ID,
    EXIT_PROBLEM,
    Context,
    dump_json,
    err,
    out,
    pass_context,
)
from reconciler.errors import UsageError

_MAX_WARNINGS = 10


@click.command(short_help="List the applied changes (the audit log) and verify its hash chain.")
@click.option("--customer", "customer_id", type=CUSTOMER_ID,
              help="Only this customer's changes (i_customer).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="text for people; json: a list of the entries (with --verify: "
                   "the verdict), for tools.")
@click.option("--verify", is_flag=True,
              help="Check the hash chain: exit 1 naming the first bad entry.")
@click.option("--expect-head", metavar="HASH",
              help="With --verify (implied): also exit 1 unless the head is HASH "
                   "(kept from an earlier run).")
@click.option("--head", "show_head", is_flag=True,
              help="Print only the head hash (after verifying the chain).")
@click.option("--new-chain", is_flag=True,
              help="Start a new chain over a broken one (needs --reason).")
@click.option("--reason", help="Why the chain is restarted; recorded in the log.")
@pass_context
def history(obj: Context, customer_id: int | None, fmt: str, verify: bool, expect_head: str | None,
            show_head: bool, new_chain: bool, reason: str | None) -> None:
    """The audit log: every applied change with time, plan fingerprint and git commit.

    The log read is named on standard error. A PortaBilling backend's log is a local file:
    .reconciler/audit-HOST_PORT.jsonl in the working directory, or RECONCILER_AUDIT_LOG.
    """
    if (reason is not None) != new_chain:
        raise UsageError("--new-chain and --reason TEXT go together")
    if new_chain and (verify or expect_head or show_head or customer_id is not None):
        raise UsageError("--new-chain takes only --reason")
    if new_chain and not (reason or "").strip():
        raise UsageError("--reason must say why the chain is restarted")
    if show_head and (verify or expect_head or customer_id is not None):
        raise UsageError("--head takes no other option but --format")
    if (verify or expect_head) and customer_id is not None:
        raise UsageError("--verify checks the whole log; it takes no --customer")
    with obj.backend() as backend:
        if new_chain:
            _restart(backend, (reason or "").strip())
            return
        location = backend.audit_location()
        exists = backend.audit_exists()
        chain, entries, unreadable = (check(backend.audit_records()) if exists
                                      else (ChainCheck(), [], []))
    if exists:
        err(f"audit log: {location}")
    else:
        err(
            f"no audit log at {location}: nothing has been applied through it. A PortaBilling "
            "audit log is a local file written by apply, relative to the working directory apply "
            "ran in unless RECONCILER_AUDIT_LOG names it; point RECONCILER_AUDIT_LOG at that file "
            "to read it."
        )
    verdict = chain.verdict()
    if show_head:
        _print_head(verdict, fmt)
    elif verify or expect_head:
        _verify(chain, verdict, expect_head, fmt)
    else:
        _warn(verdict, [(r.where, r.why_unreadable()) for r in unreadable])
        chosen = [e for e in entries if customer_id is None or e.customer == customer_id]
        _list(chosen, customer_id, fmt)


def _restart(backend: Backend, reason: str) -> None:
    entry = backend.new_chain(reason)
    err(f"audit log: {backend.audit_location()}")
    out(
        f"new chain started: it replaces the head {entry.change['replaces']} "
        f"(the old chain broke at {entry.change['problem']}); the restart is entry "
        f"{entry.change['entries'] + 1}, head {entry.hash}"
    )


def _warn(verdict: Verdict, unreadable: list[tuple[str, str]]) -> None:
    for where, why in unreadable[:_MAX_WARNINGS]:
        err(f"warning: audit log {where} cannot be read ({why}); it is not listed")
    if len(unreadable) > _MAX_WARNINGS:
        err(f"warning: {len(unreadable) - _MAX_WARNINGS} more unreadable entries are not listed")
    if not verdict.whole:
        err(f"warning: {verdict.summary()}; `reconciler history --verify` checks the whole chain")


def _print_head(verdict: Verdict, fmt: str) -> None:
    if not verdict.whole:
        err(f"error: {verdict.summary()}")
        raise SystemExit(EXIT_PROBLEM)
    if fmt == "json":
        dump_json({"entries": verdict.entries, "head": verdict.head}, sys.stdout)
    else:
        out(verdict.head)


def _verify(chain: ChainCheck, verdict: Verdict, expect_head: str | None, fmt: str) -> None:
    failure = None if verdict.whole else verdict.summary()
    if failure is None and expect_head and expect_head != verdict.head:
        found = chain.where_is(expect_head)
        if found is not None:
            failure = (f"the audit log goes on after the expected head {expect_head} ({found[0]}): "
                       f"{verdict.entries - found[1]} entries follow it; head now {verdict.head}")
        else:
            failure = (f"the expected head {expect_head} is not in the audit log (head now "
                       f"{verdict.head}, {verdict.entries} entries): "
                       "entries were cut from its end, or this is another log")
    if fmt == "json":
        data = verdict.to_dict()
        data["expected_head"] = expect_head
        data["ok"] = failure is None
        data["failure"] = failure
        dump_json(data, sys.stdout)
    if failure is not None:
        err(f"error: {failure}")
    elif fmt != "json":
        out(verdict.summary())
    for line in verdict.restart_lines():
        if fmt == "json":
            err(f"note: {line}")
        else:
            out(line)
    if failure is not None:
        raise SystemExit(EXIT_PROBLEM)


def _list(entries: list[AuditEntry], customer_id: int | None, fmt: str) -> None:
    from reconciler.render.text import describe

    if fmt == "json":
        dump_json([{**e.to_dict(), "prev": e.prev, "hash": e.hash} for e in entries], sys.stdout)
        return
    if not entries:
        whose = f" for customer {customer_id}" if customer_id is not None else ""
        out(f"No changes applied yet{whose}.")
    for entry in entries:
        if entry.op == NEW_CHAIN:
            change = entry.change
            out(f"{entry.time} audit chain restarted: {change.get('reason')!r} (replaced the "
                f"head {change.get('replaces')}; the old chain broke at {change.get('broken_at')})")
            continue
        commit = f" commit {entry.git_commit[:12]}" if entry.git_commit else ""
        out(
            f"{entry.time} customer {entry.customer} {describe(entry.change)} "
            f"[{entry.fingerprint[:19]}{commit}]"
        )
