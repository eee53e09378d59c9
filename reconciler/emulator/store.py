"""The emulator's billing: the database (db.py) with the API methods (reads.py, writes.py) and the
state-file translation (snapshot.py) attached.

``Store.call`` runs one method in one transaction: a fault rolls every change of the call back.
The caller serialises calls (one lock), as a database would, and has already checked the params
against the method's declared shape (validation.py).
"""

from __future__ import annotations

from typing import Any

from reconciler.emulator import snapshot
from reconciler.emulator.db import Database, Fault, Method
from reconciler.emulator.profile import V3, WireProfile
from reconciler.emulator.reads import READS, bind
from reconciler.emulator.writes import WRITES
from reconciler.statefile import BillingState

__all__ = ["Fault", "Store"]


class Store(Database):
    def __init__(
        self,
        path: str = ":memory:",
        *,
        page_cap: int = 100,
        legacy_blocking_field: bool = True,
        profile: WireProfile = V3,
    ) -> None:
        super().__init__(
            path, page_cap=page_cap, legacy_blocking_field=legacy_blocking_field, profile=profile
        )
        # Replaceable per method, so a test can make the server answer something odd.
        self.methods: dict[str, Method] = {**bind(self, READS), **bind(self, WRITES)}

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = self.methods.get(method)
        if handler is None:
            raise Fault("Client.Service.unknown_method", f"no method {method}")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            answer = handler(params)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return answer

    def load_state(self, state: BillingState) -> None:
        snapshot.load_state(self, state)

    def dump_state(self) -> BillingState:
        return snapshot.dump_state(self)

    def invariant_problems(self) -> list[str]:
        return snapshot.invariant_problems(self)

    def unlinked_extensions(self) -> list[str]:
        return snapshot.unlinked_extensions(self)

    def expire_addon(self, account_id: str, product_name: str) -> None:
        snapshot.expire_addon(self, account_id, product_name)
