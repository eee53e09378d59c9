"""Benchmark: planning many customers through the PortaBilling backend against the emulator.

Not part of the test run (slow on purpose: every call has added latency). Run it as

    python tests/bench_pb.py [--customers 200] [--extensions 50] [--latency-ms 5] [--parallelism 1 8]

It prints, per parallelism, the wall time of planning every customer (the specs match billing,
so the plan is empty and only reading is measured) and the API calls made.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import yaml

from reconciler.backends.portabilling import PortaBillingBackend
from reconciler.emulator import EmulatorServer
from reconciler.emulator.testing import write_spec
from reconciler.model import Account, Customer, Product
from reconciler.runner import build_plan
from reconciler.statefile import BillingState, state_to_dict

CREDENTIALS = {"PORTABILLING_LOGIN": "emulator", "PORTABILLING_PASSWORD": "emulator"}

PRODUCTS = (Product(1, "Cloud PBX service", "main"), Product(3, "Call recording", "addon"))


def fleet(customers: int, extensions: int, folder: str) -> BillingState:
    """``customers`` customers of ``extensions`` extensions (one DID each), and their specs."""
    all_customers, accounts = [], []
    for c in range(customers):
        cid = 100000 + c
        dids = [f"1{cid}{n:04d}" for n in range(extensions)]
        all_customers.append(
            Customer(
                cid,
                f"Customer {cid}",
                True,
                (("Call recording", 0), ("Cloud PBX service", 0)),
                frozenset(dids),
            )
        )
        entries = []
        for n in range(extensions):
            addons = ("Call recording",) if n % 3 == 0 else ()
            accounts.append(
                Account(
                    f"ph{cid}x{100 + n}", cid, f"User {n}", "Cloud PBX service", addons, (dids[n],)
                )
            )
            entries.append(
                {
                    "extension": str(100 + n),
                    "name": f"User {n}",
                    "product": "Cloud PBX service",
                    "addons": list(addons),
                    "dids": [dids[n]],
                }
            )
        write_spec(
            folder,
            f"c{cid}.yaml",
            {
                "version": 1,
                "customer": {"id": cid, "name": f"Customer {cid}"},
                "extensions": entries,
            },
        )
    return BillingState(
        PRODUCTS, tuple(all_customers), tuple(sorted(accounts, key=lambda a: (a.customer, a.id)))
    )


@contextlib.contextmanager
def emulator_process(
    state: BillingState, folder: str, latency_ms: float, page_cap: int
) -> Iterator[str]:
    """`reconciler emulator` in a process of its own, so that its work does not compete with the
    client's for this interpreter's GIL (as a real server would not). Yields the backend URL."""
    state_file = os.path.join(folder, "state.yaml")
    with open(state_file, "w", encoding="utf-8") as out:
        yaml.safe_dump(state_to_dict(state), out, sort_keys=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABILLING_")}
    env["RECONCILER_EMULATOR_PAGE_CAP"] = str(page_cap)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "emulator",
            "--state",
            state_file,
            "--port",
            "0",
            "--latency-ms",
            str(latency_ms),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        if " at " not in first:
            raise SystemExit(f"the emulator did not start: {first}{process.stderr.read()}")
        yield first.rsplit(" at ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


def measure(url: str, specs: str, parallelism: int, customers: int) -> None:
    started = time.perf_counter()
    backend = PortaBillingBackend(url, env=CREDENTIALS, parallelism=parallelism)
    try:
        plan = build_plan([specs], backend)
        calls = backend.client.calls
    finally:
        backend.close()
    elapsed = time.perf_counter() - started
    assert plan.change_count == 0 and plan.error_count == 0, "the specs should match billing"
    print(
        f"  parallelism {parallelism:2d}: {elapsed:6.2f} s, {calls} API calls ({calls / customers:.1f} per customer)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--extensions", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--page-cap", type=int, default=100)
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the emulator in this process (its threads then share the client's GIL)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        specs = os.path.join(folder, "specs")
        state = fleet(args.customers, args.extensions, specs)
        where = "in this process" if args.in_process else "in its own process"
        print(
            f"{args.customers} customers x {args.extensions} extensions, {args.latency_ms:g} ms added per call, "
            f"server page cap {args.page_cap}, emulator {where}"
        )
        if args.in_process:
            server = EmulatorServer(state, page_cap=args.page_cap, latency_ms=args.latency_ms)
            with server:
                for parallelism in args.parallelism:
                    measure(server.url, specs, parallelism, args.customers)
        else:
            with emulator_process(state, folder, args.latency_ms, args.page_cap) as url:
                for parallelism in args.parallelism:
                    measure(url, specs, parallelism, args.customers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
