"""``reconciler doctor``: a backend's read-only diagnostics, where its class declares them.

What is checked belongs to the backend (``Backend.diagnose``; today a PortaBilling server's
login, operating mode, products and one customer's reads). Here only the backend is found from
the URL, without opening it, and a backend without diagnostics is told so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler.backends import parse_backend_url
from reconciler.doctor_report import FAIL, DoctorReport
from reconciler.errors import ReconcilerError


def run_doctor(
    backend_url: str,
    *,
    customer_id: int | None = None,
    spec_customer: Callable[[], int | None] = lambda: None,
    env: Mapping[str, str],
) -> DoctorReport:
    """The checks of the backend at ``backend_url``; ``spec_customer`` is asked (at most once)
    for the customer whose reads to check when ``customer_id`` is None."""
    try:
        backend_class = parse_backend_url(backend_url).backend_class()
    except ReconcilerError as exc:
        return _failed(str(exc))
    if not backend_class.capabilities.diagnostics:
        return _failed(
            f"{backend_url} is {backend_class.description}; doctor checks PortaBilling servers "
            "(--backend portabilling+https://HOST)"
        )
    return backend_class.diagnose(
        backend_url, customer_id=customer_id, spec_customer=spec_customer, env=env
    )


def _failed(detail: str) -> DoctorReport:
    report = DoctorReport()
    report.add("backend", FAIL, detail)
    return report
