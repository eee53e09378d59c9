"""`reconciler emulator`: a PortaBilling-compatible loopback server for development and tests."""

from __future__ import annotations

from typing import Any

import click

from reconciler.cli.common import err


@click.command(short_help="Serve a PortaBilling-like API on loopback.")
@click.option("--state", "state_file", type=click.Path(dir_okay=False), required=True,
              help="Billing state file to serve.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Loopback address to listen on (127.0.0.0/8, ::1, localhost); nothing else.")
@click.option("--port", type=click.IntRange(0, 65535), default=8899, show_default=True,
              help="Port to listen on; 0 picks a free one (the URL to use is printed).")
@click.option("--latency-ms", type=float, default=0.0, show_default=True,
              help="Added latency per call.")
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of calls that fail (fault, 502/503, timeout, dropped connection).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fault injection.")
@click.option("--fault-kinds", default="fault,502,503,timeout,drop", show_default=True,
              help="Comma-separated kinds of injected failure.")
@click.option("--fault-scope", type=click.Choice(["reads", "writes", "both"]), default="both",
              show_default=True, help="Which calls may fail.")
@click.option("--page-cap", type=click.IntRange(min=1), default=100, show_default=True,
              help="Most items the server returns per page, whatever the client asks for.")
@click.option("--token-ttl-calls", type=click.IntRange(min=1), default=None,
              help="Expire each session token after this many calls (exercises re-login).")
@click.option("--token-ttl-seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Access tokens expire after this many seconds (expires_in; default 900).")
@click.option("--read-only", is_flag=True, default=False,
              help="Act as a read-only (disaster-recovery) site: every write answers "
                   "Server.Generic.read_only_mode.")
@click.option("--no-extension-blocking", "no_extension_blocking", is_flag=True, default=False,
              help="Leave the first contract's extension_blocking out of customer_info "
                   "(i_role only).")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="SQLite file behind the emulator (default: a temporary one).")
@click.option("--wire", type=click.Choice(["v2", "v3"]), default=None,
              help="Wire contract to speak (default v3, the realistic one); the options below "
                   "change one behaviour of it.")
@click.option("--blocked-by/--no-blocked-by", "blocked_by", default=None,
              help="Show who blocked an account in answers (v2) or never (v3).")
@click.option("--tokens", type=click.Choice(["expires_at", "expires_in", "both", "jwt"]),
              default=None, help="How login and refresh answers tell the token's lifetime.")
@click.option("--refresh-without-token", is_flag=True, default=None,
              help="Refresh answers carry no refresh_token; the old one stays valid.")
@click.option("--auth-faults", type=click.Choice(["v2", "v3"]), default=None,
              help="Fault codes for refused tokens: one v2 code, or the four real ones.")
@click.option("--read-only-faults", type=click.Choice(["bare", "namespaced"]), default=None,
              help="Read-only faults as standalone_mode (bare) or Server.Generic.standalone_mode.")
@click.option("--agreement-shape", default=None,
              type=click.Choice(["agreement_info", "customer_agreement_info",
                                 "agreement_condition_list", "unknown"]),
              help="What wraps agreement_condition_list in the agreement answer.")
@click.option("--account-id-format", default=None, metavar="TEMPLATE",
              help="Account ID of a generated extension account, with {i_customer} and {id} "
                   "(default ph{i_customer}x{id}).")
@click.option("--new-account-status", type=click.Choice(["O", "I"]), default=None,
              help="bill_status of a new account (I: inactive until first used).")
@click.option("--add-alias-answer", type=click.Choice(["i_account", "empty"]), default=None,
              help="What Account/add_alias answers.")
@click.option("--release-dids", is_flag=True, default=None,
              help="delete_alias / terminate_account release the DID from the customer's pool "
                   "unless release_assigned_did: 0 is sent.")
@click.option("--time-zone", default=None, metavar="ZONE",
              help="The server's time zone (IANA name; default UTC): add-on dates, expires_at.")
@click.option("--notes/--no-notes", "notes", default=None,
              help="Whether answers show each account's note (default: shown).")
@click.option("--session-time-zone/--no-session-time-zone", "session_time_zone", default=None,
              help="Whether Generic/get_session_data reports the time zone (time_zone_name).")
def emulator(state_file: str, host: str, port: int, latency_ms: float, fault_rate: float, seed: int,
             fault_kinds: str, fault_scope: str, page_cap: int, token_ttl_calls: int | None,
             token_ttl_seconds: float | None, read_only: bool, no_extension_blocking: bool,
             db_path: str | None, **wire: Any) -> None:
    """Serve a PortaBilling-compatible JSON API for local development and tests."""
    import signal
    import threading

    from reconciler.emulator import run_emulator

    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    ):
        # A script's `reconciler emulator … &` starts with SIGINT ignored (bash does that for
        # background jobs); the emulator runs until stopped, so `kill -INT` must still stop it.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    run_emulator(state_file=state_file, host=host, port=port, latency_ms=latency_ms,
                 fault_rate=fault_rate, seed=seed, announce=err, fault_kinds=fault_kinds,
                 fault_scope=fault_scope, page_cap=page_cap, token_ttl_calls=token_ttl_calls,
                 token_ttl_seconds=token_ttl_seconds, read_only=read_only or None,
                 legacy_blocking_field=not no_extension_blocking, db_path=db_path, **wire)
