"""Several saved plans as one: the results of a sharded plan, shown as a single report."""

from __future__ import annotations

from reconciler.errors import UsageError
from reconciler.runner import Plan


def merge_plans(plans: list[tuple[str, Plan]]) -> Plan:
    """One plan of every customer of ``plans`` ((file name, plan) pairs), as `plan` orders them.

    `plan` lists customers in spec-file order, so the merged shards of a run list them exactly as
    one unsharded plan would; the summary is recomputed from the whole. Plans of different
    backends, or two plans of the same customer (a shard given twice), are refused.
    """
    if not plans:
        raise UsageError("no plan files given")
    if len(plans) == 1:
        return plans[0][1]
    first_name, first = plans[0]
    owner: dict[int, str] = {}
    merged = Plan(backend=first.backend, backend_resolved=first.backend_resolved)
    for name, plan in plans:
        if plan.backend_resolved != first.backend_resolved:
            raise UsageError(
                f"{name} was made for {plan.backend}, but {first_name} for {first.backend}: "
                "plans of different backends cannot be shown as one"
            )
        for customer in plan.customers:
            if customer.customer in owner:
                raise UsageError(
                    f"customer {customer.customer} is in both {owner[customer.customer]} and {name}: "
                    "was one plan given twice?"
                )
            owner[customer.customer] = name
            merged.customers.append(customer)
        merged.errors.extend(plan.errors)
        merged.files += plan.files
        for note in plan.notes:
            if note not in merged.notes:
                merged.notes.append(note)
    merged.customers.sort(key=lambda c: (c.file, c.customer))
    merged.errors.sort(key=lambda p: (p.file or "", p.line or 0, p.column or 0))
    return merged
