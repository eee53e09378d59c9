"""Fault injection: which calls misbehave, how, and whether before or after the change is made.

A seeded random generator decides per call, so a failing run can be replayed with its seed
(exactly so when calls arrive in the same order, as a sequential apply's do).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass

FAULT = "fault"  # HTTP 500 with a faultcode
BAD_GATEWAY = "502"
UNAVAILABLE = "503"
TIMEOUT = "timeout"  # the answer is held longer than the client waits, then the connection closes
DROP = "drop"  # the connection closes without an answer

KINDS: tuple[str, ...] = (FAULT, BAD_GATEWAY, UNAVAILABLE, TIMEOUT, DROP)
BEFORE, AFTER = "before", "after"
SCOPES = ("writes", "reads", "both")


@dataclass(frozen=True)
class FaultConfig:
    """``rate`` of the calls in ``scope`` fail, each in one of ``kinds`` (uniformly) and, for a
    write, ``before`` the change is made or ``after`` it (uniformly among ``phases``).

    ``timeout_s`` is how long a "timeout" holds the answer: set it above the client's read
    timeout. Session/login is spared unless ``include_login``: a client cannot resume without one.
    ``methods`` restricts failures to those API methods; ``limit`` stops after that many.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = KINDS
    phases: tuple[str, ...] = (BEFORE, AFTER)
    scope: str = "writes"
    seed: int = 0
    timeout_s: float = 5.0
    include_login: bool = False
    methods: tuple[str, ...] | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate {self.rate} is not between 0 and 1")
        unknown = set(self.kinds) - set(KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"fault kinds must be among {', '.join(KINDS)}")
        if self.scope not in SCOPES:
            raise ValueError(f"fault scope must be one of {', '.join(SCOPES)}")
        if not self.phases or set(self.phases) - {BEFORE, AFTER}:
            raise ValueError("fault phases must be among before, after")


@dataclass(frozen=True)
class Injection:
    kind: str
    phase: str


class FaultInjector:
    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)
        self._lock = threading.Lock()
        self.injected: Counter[tuple[str, str]] = Counter()

    def decide(self, method: str, is_write: bool) -> Injection | None:
        config = self.config
        if config.rate <= 0.0:
            return None
        if method == "Session/login" and not config.include_login:
            return None
        if config.scope == "writes" and not is_write or config.scope == "reads" and is_write:
            return None
        if config.methods is not None and method not in config.methods:
            return None
        with self._lock:
            if config.limit is not None and sum(self.injected.values()) >= config.limit:
                return None
            if self._random.random() >= config.rate:
                return None
            kind = self._random.choice(config.kinds)
            phase = self._random.choice(config.phases) if is_write else BEFORE
            self.injected[(kind, phase)] += 1
        return Injection(kind, phase)
