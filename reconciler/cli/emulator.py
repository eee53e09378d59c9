"""`reconciler emulator`: a PortaBilling-compatible server on loopback, for development and tests."""

from __future__ import annotations

import click

from reconciler.cli.common import err


@click.command()
@click.option("--state", "state_file", type=click.Path(dir_okay=False), required=True,
              help="Billing state file to serve.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Loopback address to listen on (127.0.0.0/8, ::1, localhost); nothing else.")
@click.option("--port", type=int, default=8899, show_default=True)
@click.option("--latency-ms", type=float, default=0.0, show_default=True, help="Added latency per call.")
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
              help="Leave the first contract's extension_blocking out of customer_info (i_role only).")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="SQLite file behind the emulator (default: a temporary one).")
def emulator(state_file: str, host: str, port: int, latency_ms: float, fault_rate: float, seed: int,
             fault_kinds: str, fault_scope: str, page_cap: int, token_ttl_calls: int | None,
             token_ttl_seconds: float | None, read_only: bool, no_extension_blocking: bool,
             db_path: str | None) -> None:
    """Serve a PortaBilling-compatible JSON API for local development and tests."""
    from reconciler.emulator import run_emulator

    run_emulator(state_file=state_file, host=host, port=port, latency_ms=latency_ms,
                 fault_rate=fault_rate, seed=seed, announce=err, fault_kinds=fault_kinds,
                 fault_scope=fault_scope, page_cap=page_cap, token_ttl_calls=token_ttl_calls,
                 token_ttl_seconds=token_ttl_seconds, read_only=read_only or None,
                 legacy_blocking_field=not no_extension_blocking, db_path=db_path)
