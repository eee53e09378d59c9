"""`reconciler emulator --state FILE --port N`: serve a billing state file until interrupted."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.emulator.faults import KINDS, FaultConfig
from reconciler.emulator.loopback import require_loopback
from reconciler.emulator.profile import VARIANTS, WireProfile, wire_profile
from reconciler.emulator.server import EmulatorServer
from reconciler.emulator.sessions import DEFAULT_TTL_SECONDS
from reconciler.errors import UsageError

DEFAULT_LOGIN = "emulator"
DEFAULT_PASSWORD = "emulator"

# Settings the `emulator` command has no option for yet, read from the environment.
ENV_SETTINGS = {
    "RECONCILER_EMULATOR_PAGE_CAP": ("page_cap", int),
    "RECONCILER_EMULATOR_TOKEN_TTL_CALLS": ("token_ttl_calls", int),
    "RECONCILER_EMULATOR_TOKEN_TTL_SECONDS": ("token_ttl_seconds", float),
    "RECONCILER_EMULATOR_FAULT_SCOPE": ("fault_scope", str),
    "RECONCILER_EMULATOR_FAULT_KINDS": ("fault_kinds", str),
    "RECONCILER_EMULATOR_TIMEOUT_S": ("timeout_s", float),
    "RECONCILER_EMULATOR_DB": ("db_path", str),
}


def run_emulator(
    *,
    state_file: str,
    host: str = "127.0.0.1",
    port: int = 8899,
    latency_ms: float = 0.0,
    fault_rate: float = 0.0,
    seed: int = 0,
    announce: Callable[[str], None] = lambda _line: None,
    env: Mapping[str, str] | None = None,
    stop_after: float | None = None,
    **options: Any,
) -> None:
    """Serve ``state_file`` until interrupted (or for ``stop_after`` seconds).

    Credentials: PORTABILLING_LOGIN and PORTABILLING_PASSWORD / PORTABILLING_TOKEN from the
    environment when set, else login ``emulator`` with password ``emulator``. The settings of
    ENV_SETTINGS (page_cap, token_ttl_calls, token_ttl_seconds, fault_scope, fault_kinds,
    timeout_s, db_path) come as keywords, or from their RECONCILER_EMULATOR_* variables when a
    keyword is left out or None. The command line has an option for each but timeout_s, and
    always passes page_cap, fault_scope and fault_kinds (their defaults included).
    ``read_only`` and ``legacy_blocking_field`` come as keywords. ``wire`` ("v2" or "v3") and
    the wire variants (profile.VARIANTS: blocked_by, tokens, …) choose how answers look; None
    keeps the profile's. ``host`` must be a loopback address.
    """
    from reconciler.statefile import load_state_file

    require_loopback(host)  # before reading anything: the refusal is the whole answer
    env = os.environ if env is None else env
    # An option left unset (None) keeps what the environment says.
    settings = {**_env_settings(env), **{k: v for k, v in options.items() if v is not None}}
    state = load_state_file(state_file)
    login = env.get("PORTABILLING_LOGIN") or DEFAULT_LOGIN
    token = env.get("PORTABILLING_TOKEN") or None
    password = env.get("PORTABILLING_PASSWORD") or (None if token else DEFAULT_PASSWORD)
    from_env = bool(env.get("PORTABILLING_PASSWORD") or token)
    kinds = tuple(
        k.strip()
        for k in str(settings.get("fault_kinds") or ",".join(KINDS)).split(",")
        if k.strip()
    )
    try:
        faults = FaultConfig(
            rate=fault_rate,
            seed=seed,
            kinds=kinds,
            scope=str(settings.get("fault_scope") or "both"),
            timeout_s=float(settings.get("timeout_s") or 5.0),
        )
    except ValueError as exc:
        raise UsageError(f"emulator faults: {exc}") from None
    try:
        profile = wire_profile(
            settings.get("wire"), **{k: settings.get(k) for k in VARIANTS if k in settings}
        )
    except ValueError as exc:
        raise UsageError(f"emulator: {exc}") from None
    server = EmulatorServer(
        state,
        db_path=settings.get("db_path"),
        host=host,
        port=port,
        page_cap=int(settings.get("page_cap") or 100),
        token_ttl_calls=settings.get("token_ttl_calls"),
        token_ttl_seconds=settings.get("token_ttl_seconds") or DEFAULT_TTL_SECONDS,
        latency_ms=latency_ms,
        faults=faults,
        login=login,
        password=password,
        token=token,
        read_only=settings.get("read_only"),
        legacy_blocking_field=settings.get("legacy_blocking_field", True),
        wire=profile,
    )
    try:
        server.start()
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    _announce(announce, server, state_file, from_env, faults)
    try:
        deadline = None if stop_after is None else time.monotonic() + stop_after
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        announce("PortaBilling emulator stopped")


def _announce(
    announce: Callable[[str], None],
    server: EmulatorServer,
    state_file: str,
    from_env: bool,
    faults: FaultConfig,
) -> None:
    announce(f"PortaBilling emulator serving {state_file} at {server.url}")
    announce(f"  export RECONCILER_BACKEND={server.url}")
    if from_env:
        # Never echo a secret the user set: say where it is taken from.
        announce(
            "  credentials: PORTABILLING_LOGIN with PORTABILLING_PASSWORD or PORTABILLING_TOKEN, "
            "as set here"
        )
    else:
        announce(
            f"  export PORTABILLING_LOGIN={DEFAULT_LOGIN} PORTABILLING_PASSWORD={DEFAULT_PASSWORD}"
        )
    if faults.rate > 0:
        scope = {"both": "read and write", "reads": "read", "writes": "write"}[faults.scope]
        announce(
            f"  injecting failures into {faults.rate:.0%} of the {scope} calls "
            f"({', '.join(faults.kinds)}; seed {faults.seed}); a timeout holds the answer "
            f"{faults.timeout_s:g} s, so set PORTABILLING_READ_TIMEOUT below that"
        )
    faultcode = server.mode.faultcode(server.profile.read_only_faults)
    if faultcode is not None:
        announce(f"  operating mode {server.mode.name}: every write answers {faultcode}")
    announce(f"  wire: {describe_profile(server.profile)}")
    if not server.store.legacy_blocking_field:
        announce("  customer_info carries i_role only (no extension_blocking)")
    announce("  Ctrl-C stops it")


def describe_profile(profile: WireProfile) -> str:
    """The profile's name and what differs from it, in option words (one line)."""
    base = wire_profile(profile.name)
    changed = [
        f"{name}={getattr(profile, name)}"
        for name in VARIANTS
        if getattr(profile, name) != getattr(base, name)
    ]
    return profile.name + (f" with {', '.join(changed)}" if changed else "")


def _env_settings(env: Mapping[str, str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for name, (key, kind) in ENV_SETTINGS.items():
        if env.get(name):
            try:
                settings[key] = kind(env[name])
            except ValueError:
                raise UsageError(f"{name}={env[name]!r} is not a valid {kind.__name__}") from None
    return settings
