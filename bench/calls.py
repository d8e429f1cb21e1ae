"""Calls benchmark: many callers through initiate -> end against the running stack.

    python -m bench.calls [--callers 24] [--calls-per-caller 10]

Starts the whole stack with the launcher (bench/harness.py: embedded SecantusDB and
Valkey, gunicorn, a Celery worker per queue and beat) on free ports in a temporary
directory, signs up callers and receivers over HTTP, funds the callers
directly through the ledger (funding is not what this measures), then runs every caller
in its own thread through `initiate -> end` calls back to back over HTTP. The report's
config gives each queue's worker concurrency.

Reports calls per second, p50/p99 latency of each endpoint, how long settlement (the
capture and split by the worker) took after each end, and MongoDB commands per call
(the server's opcounters over the measured run, every process included: gateway,
worker, beat). Waits until every call is settled, checks the ledger invariants and
that each caller paid exactly what its calls cost, and writes bench/reports/calls.json.
A connect fee of 1 NGN makes every call move money (a zero-second call costs only it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bson import ObjectId
from pymongo.database import Database

from bench.harness import (
    CONNECT_FEE,
    FUNDS_PER_CALLER,
    Party,
    Stack,
    Timings,
    end_call,
    funded_pairs,
    initiate_call,
    start_stack,
    stop_stack,
    summary_ms,
    wait_ready,
    worker_concurrency,
)
from shared.ledger import LedgerReads, check_invariants, wallet_id
from shared.mongo import get_db
from tests.support.threads import run_threads

REPORT = Path(__file__).resolve().parent / "reports" / "calls.json"
SETTLE_TIMEOUT_SECONDS = 120.0


def run_caller(api: str, caller: Party, receiver: Party, calls: int, timings: Timings) -> list[str]:
    """`calls` initiate -> end calls back to back; returns the call ids."""
    made = []
    for _ in range(calls):
        call_id = initiate_call(api, caller, receiver, timings)
        end_call(api, caller, call_id, timings)
        made.append(call_id)
    return made


def run_all(api: str, pairs: list[tuple[Party, Party]], calls: int, timings: Timings) -> list[str]:
    results = run_threads(
        run_caller, [(api, caller, receiver, calls, timings) for caller, receiver in pairs]
    )
    return [call_id for made in results for call_id in made]


# ---------------------------------------------------------------- measurements


def mongo_commands(db: Database) -> int:
    counters = db.command("serverStatus")["opcounters"]
    return sum(int(value) for value in counters.values())


def wait_settled(db: Database, call_ids: list[str]) -> list[dict[str, Any]]:
    ids = [ObjectId(call_id) for call_id in call_ids]
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if db.calls.count_documents({"_id": {"$in": ids}, "settled": True}) == len(ids):
            return list(db.calls.find({"_id": {"$in": ids}}))
        time.sleep(0.5)
    raise SystemExit(f"not every call was settled within {SETTLE_TIMEOUT_SECONDS:.0f} s")


def check_money(db: Database, calls: list[dict[str, Any]], callers: list[Party]) -> list[str]:
    """Each caller's wallet holds its funding less exactly what its calls cost."""
    problems = []
    spent: dict[str, int] = {}
    for call in calls:
        caller = str(call["callerId"])
        spent[caller] = spent.get(caller, 0) + int(call["cost"])
    for caller in callers:
        wallet = LedgerReads(db).wallet(wallet_id(caller.user_id, "NGN"))
        expected = FUNDS_PER_CALLER - spent.get(caller.user_id, 0)
        if wallet.balance != expected or wallet.held != 0:
            problems.append(f"{wallet.account}: balance {wallet.balance} != {expected}")
    return problems


def bench(callers: int, calls_per_caller: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as workdir:
        stack = start_stack(Path(workdir))
        try:
            wait_ready(stack)
            return measure(stack, callers, calls_per_caller)
        finally:
            stop_stack(stack)


def measure(stack: Stack, callers: int, calls_per_caller: int) -> dict[str, Any]:
    db = get_db(stack.database_url)
    pairs = funded_pairs(stack, callers, Timings())

    timings = Timings()
    commands_before = mongo_commands(db)
    started = time.perf_counter()
    call_ids = run_all(stack.api, pairs, calls_per_caller, timings)
    wall = time.perf_counter() - started
    settled = wait_settled(db, call_ids)
    commands = mongo_commands(db) - commands_before

    violations = [v.as_dict() for v in check_invariants(db)]
    money_problems = check_money(db, settled, [caller for caller, _ in pairs])
    settle_lag = [(c["settledAt"] - c["endedAt"]).total_seconds() for c in settled]
    return {
        "callers": callers,
        "callsPerCaller": calls_per_caller,
        "calls": len(call_ids),
        "wallSeconds": round(wall, 2),
        "callsPerSecond": round(len(call_ids) / wall, 1),
        "latency": {name: summary_ms(values) for name, values in timings.samples.items()},
        "settlementAfterEnd": summary_ms(settle_lag),
        "mongoCommandsPerCall": round(commands / len(call_ids), 1),
        "invariantViolations": violations,
        "walletMismatches": money_problems,
        "config": {
            "connectFeeNGN": CONNECT_FEE,
            "workerConcurrency": worker_concurrency(),
            "gunicorn": "WEB_CONCURRENCY / GUNICORN_THREADS defaults",
            "cpuCount": os.cpu_count(),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=24)
    parser.add_argument("--calls-per-caller", type=int, default=10)
    args = parser.parse_args()
    report = bench(args.callers, args.calls_per_caller)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    healthy = not report["invariantViolations"] and not report["walletMismatches"]
    print(f"report written to {REPORT}; ledger {'healthy' if healthy else 'BROKEN'}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
