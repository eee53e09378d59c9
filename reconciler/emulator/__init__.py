"""A PortaBilling emulator: the JSON API of the wire contract, served from an SQLite database.

For tests (``EmulatorServer``) and for trying the reconciler without a billing server
(``reconciler emulator --state FILE --port N``, which calls ``run_emulator``). Loopback only.

Layout: server.py (EmulatorServer: one call, test hooks) over wire.py (HTTP), sessions.py
(tokens, lockout, operating mode), shapes.py + validation.py (each method's declared params),
store.py (db.py, reads.py, writes.py, accounts.py, snapshot.py: the billing data), faults.py
(injected failures), command.py (the `emulator` command).
"""

from __future__ import annotations

from reconciler.emulator.command import DEFAULT_LOGIN, DEFAULT_PASSWORD, run_emulator
from reconciler.emulator.faults import FaultConfig
from reconciler.emulator.loopback import NotLoopback
from reconciler.emulator.server import EmulatorServer

__all__ = [
    "DEFAULT_LOGIN",
    "DEFAULT_PASSWORD",
    "EmulatorServer",
    "FaultConfig",
    "NotLoopback",
    "run_emulator",
]
