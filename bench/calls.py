"""Calls benchmark: many callers through initiate -> end against the running stack.

    python -m bench.calls [--callers 24] [--calls-per-caller 10]

Starts the whole stack with the launcher (`python -m services.devstack`: embedded
SecantusDB and Valkey, gunicorn, a Celery worker per queue and beat) on free ports in a
temporary directory, signs up callers and receivers over HTTP, funds the callers
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
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from bson import ObjectId
from pymongo.database import Database

from services.devstack import read_launch_config, readiness
from services.embedded import free_port
from shared.ledger import Ledger, LedgerReads, check_invariants, wallet_id
from shared.mongo import get_db
from shared.redis_conn import get_redis
from shared.threads import run_threads

REPORT = Path(__file__).resolve().parent / "reports" / "calls.json"
READY_TIMEOUT_SECONDS = 120.0
SETTLE_TIMEOUT_SECONDS = 120.0
# A request this slow is a finding, not something to wait on forever (bench.scale).
REQUEST_TIMEOUT_SECONDS = 120.0
FUNDS_PER_CALLER = 1_000_000  # 10,000 NGN in kobo
CONNECT_FEE = "1"  # NGN


@dataclass
class Stack:
    process: subprocess.Popen
    api: str
    database_url: str
    redis_url: str
    log: Path


@dataclass
class Timings:
    samples: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, name: str, call: Callable[[], requests.Response]) -> requests.Response:
        start = time.perf_counter()
        response = call()
        elapsed = time.perf_counter() - start
        with self.lock:
            self.samples.setdefault(name, []).append(elapsed)
        return response


def worker_concurrency() -> dict[str, int]:
    """Pool processes of each queue's worker, as the launcher reads them."""
    return dict(read_launch_config(os.environ).worker_concurrency)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(round(fraction * (len(ordered) - 1)), len(ordered) - 1)
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 0.50) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
    }


# ---------------------------------------------------------------- the stack


def start_stack(
    workdir: Path, extra_env: Mapping[str, str] | None = None, database_url: str | None = None
) -> Stack:
    """The launcher on free ports; `extra_env` overrides settings for every service.
    With `database_url` the services use that database instead of an embedded one."""
    port, mongo_port, redis_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DEVSTACK_DATA_DIR": str(workdir / "data"),
        "PORT": str(port),
        "MONNIFY_SIM_PORT": str(free_port()),
        "FLOWER_PORT": str(free_port()),
        "EMBEDDED_MONGO_PORT": str(mongo_port),
        "EMBEDDED_REDIS_PORT": str(redis_port),
        "WORKER_METRICS_PORT": "0",
        "SIGNUP_RATE_LIMIT": "100000 per minute",
        "LOGIN_RATE_LIMIT": "100000 per minute",
        "CALL_CONNECT_FEE": CONNECT_FEE,
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)  # always our own servers
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    log = workdir / "devstack.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.devstack"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Stack(
        process,
        f"http://127.0.0.1:{port}",
        database_url or f"mongodb://127.0.0.1:{mongo_port}/payment_calls?replicaSet=secantus",
        f"redis://127.0.0.1:{redis_port}/0",
        log,
    )


def wait_ready(stack: Stack) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise SystemExit(f"the stack exited early; see {stack.log}")
        if readiness(int(stack.api.rsplit(":", 1)[1]))[0]:  # the API and every queue's worker
            return
        time.sleep(0.5)
    raise SystemExit(f"the stack was not ready in {READY_TIMEOUT_SECONDS:.0f} s; see {stack.log}")


def stop_stack(stack: Stack) -> None:
    """SIGTERM to the launcher (it stops its children in order); SIGKILL to the session
    we started it in if it does not finish."""
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGTERM)
        try:
            stack.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.process.pid, signal.SIGKILL)
            stack.process.wait()


# ---------------------------------------------------------------- the workload


@dataclass
class Party:
    session: requests.Session
    user_id: str


def sign_up(api: str, timings: Timings) -> Party:
    session = requests.Session()
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    response = timings.timed(
        "POST /auth/signup",
        lambda: session.post(
            f"{api}/auth/signup",
            json={"email": email, "password": "bench-password"},
            timeout=REQUEST_TIMEOUT_SECONDS,
        ),
    )
    response.raise_for_status()
    body = response.json()
    session.headers["Authorization"] = f"Bearer {body['access_token']}"
    return Party(session, body["user"]["id"])


def funded_pairs(stack: Stack, count: int, timings: Timings) -> list[tuple[Party, Party]]:
    """`count` (caller, receiver) pairs signed up over HTTP; each caller's wallet is
    funded directly through the ledger (funding is not what is measured)."""
    ledger = Ledger(get_db(stack.database_url), get_redis(stack.redis_url))
    pairs = [(sign_up(stack.api, timings), sign_up(stack.api, timings)) for _ in range(count)]
    for caller, _ in pairs:
        ledger.credit(
            f"bench:fund:{caller.user_id}", wallet_id(caller.user_id, "NGN"), FUNDS_PER_CALLER
        )
    return pairs


def initiate_call(api: str, caller: Party, receiver: Party, timings: Timings) -> str:
    started = timings.timed(
        "POST /calls/initiate",
        lambda: caller.session.post(
            f"{api}/calls/initiate",
            json={"receiverId": receiver.user_id},
            timeout=REQUEST_TIMEOUT_SECONDS,
        ),
    )
    if started.status_code != 201:
        raise RuntimeError(f"initiate answered {started.status_code}: {started.text}")
    return started.json()["callId"]


def end_call(api: str, caller: Party, call_id: str, timings: Timings) -> None:
    ended = timings.timed(
        "POST /calls/<id>/end",
        lambda: caller.session.post(f"{api}/calls/{call_id}/end", timeout=REQUEST_TIMEOUT_SECONDS),
    )
    if ended.status_code != 200:
        raise RuntimeError(f"end answered {ended.status_code}: {ended.text}")


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
