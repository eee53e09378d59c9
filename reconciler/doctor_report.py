"""What ``reconciler doctor`` found: checks with a status and a detail, and the field checks.

Statuses: ``ok``; ``warn`` (works, but not as the wire contract assumes); ``fail`` (a plan or an
apply would fail). The report is ``ok`` when nothing failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

OK, WARN, FAIL = "ok", "warn", "fail"

# Fields whose values are safe to show as a sample: identifiers, flags and statuses, never names.
SAMPLED = frozenset(
    {
        "i_account",
        "id",
        "i_product",
        "billing_model",
        "bill_status",
        "blocked",
        "blocked_by",
        "i_role",
        "extension_blocking",
        "addon_priority",
        "max_offered_quantity",
        "i_c_ext",
        "i_did_number",
        "addon_effective_from",
        "addon_effective_to",
        "extension_id",
    }
)


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.to_dict() for c in self.checks]}

    def text_lines(self) -> list[str]:
        return [f"{c.status:<4}  {c.name}: {c.detail}" for c in self.checks]


def check_fields(
    report: DoctorReport, where: str, rows: Iterable[dict[str, Any]], wanted: list[tuple[str, str]]
) -> None:
    rows = list(rows)
    for name, missing in wanted:
        seen = [r[name] for r in rows if name in r]
        check = f"{where}.{name}"
        if seen:
            sample = next((v for v in seen if v not in (None, "", [])), seen[0])
            shown = f" (e.g. {sample!r})" if name in SAMPLED else ""
            report.add(check, OK, f"returned{shown}")
        elif not rows:
            report.add(check, WARN, "not seen: no rows to look at")
        else:
            report.add(check, missing, f"not returned in {len(rows)} row(s)")
