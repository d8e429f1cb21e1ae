"""Ledger benchmark: how fast money moves, and what each movement costs the servers.

    python -m bench.ledger [--seconds 36] [--threads 4] [--wallets 1000]

Runs against DATABASE_URL / REDIS_URL when set (in a database of its own, `ledger_bench`,
dropped before and after), else against embedded SecantusDB and Valkey started here.

Measures, each for an equal share of --seconds with --threads threads:
- the raw rate of the cheapest transactional write the database can do (one update_one
  in a transaction), on one thread and on each thread's own document;
- credit, debit and hold+capture (one operation = a hold, then a capture of part of it)
  on one hot wallet and spread over --wallets wallets;
- for each: operations per second, that rate as a fraction of the best raw rate, Mongo
  commands per operation (pymongo command monitoring, by command name) and Redis
  commands per operation (a client hook on execute_command), latency, and failures.

Writes bench/reports/ledger.json and prints a summary. Checks the ledger invariants of
its database at the end; exits non-zero if any is violated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from bson import ObjectId
from pymongo import MongoClient, monitoring
from pymongo.database import Database

from bench.harness import summary_ms
from services.embedded import start_mongo, start_redis
from shared.indexes import ensure_indexes
from shared.ledger import Ledger, Posting, SystemAccount, check_invariants, system_account_id
from shared.ledger import wallet_id as make_wallet_id
from shared.logs import configure_logging

REPORT = Path(__file__).resolve().parent / "reports" / "ledger.json"
DATABASE = "ledger_bench"
PHASES = 8  # raw on 1 and on N threads, three operations x (hot, spread)
FUNDING_CHUNK = 10  # wallets per funding entry: SecantusDB slows down on big transactions
FUNDS_PER_WALLET = 10**9  # never runs out within a run
CLEARING = system_account_id(SystemAccount.GATEWAY_CLEARING, "NGN")


# ---- counting what reaches the servers --------------------------------------------------


@dataclass
class Tally:
    """A thread-safe count of named events."""

    counts: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str) -> None:
        with self.lock:
            self.counts[name] += 1

    def take(self) -> Counter:
        """The counts so far, starting afresh."""
        with self.lock:
            counts, self.counts = self.counts, Counter()
        return counts


class MongoCommands(monitoring.CommandListener):
    def __init__(self, tally: Tally):
        self.tally = tally

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.tally.add(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class CountingRedis(redis.Redis):
    """Counts every command by name (lock SET NX, the release script's EVALSHA...)."""

    tally: Tally

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.tally.add(str(args[0]).upper())
        return super().execute_command(*args, **options)


@dataclass
class Clients:
    db: Database
    redis: CountingRedis
    mongo_tally: Tally
    redis_tally: Tally

    @classmethod
    def connect(cls, database_url: str, redis_url: str, database: str = DATABASE) -> Clients:
        mongo_tally, redis_tally = Tally(), Tally()
        client = MongoClient(
            database_url, tz_aware=True, event_listeners=[MongoCommands(mongo_tally)]
        )
        counting_redis = CountingRedis.from_url(redis_url)
        counting_redis.tally = redis_tally
        return cls(client[database], counting_redis, mongo_tally, redis_tally)

    def reset_counts(self) -> None:
        self.mongo_tally.take()
        self.redis_tally.take()


@contextmanager
def servers() -> Iterator[tuple[str, str, str]]:
    """(database URL, Redis URL, what they are): the environment's, else embedded ones."""
    started = []
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    source = "DATABASE_URL/REDIS_URL"
    try:
        if not database_url:
            started.append(start_mongo(None, database=DATABASE))
            database_url, source = started[-1].url, "embedded SecantusDB (in memory)"
        if not redis_url:
            started.append(start_redis())
            redis_url = started[-1].url
            source += " + embedded Valkey"
        yield database_url, redis_url, source
    finally:
        for server in reversed(started):
            server.stop()


# ---- running a phase ------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    operations: int
    ledger_calls: int
    seconds: float
    latencies: list[float]
    failures: Counter
    mongo: Counter
    redis: Counter

    @property
    def rate(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    @property
    def tail_ratio(self) -> float | None:
        """p99 / p50: how much longer the unlucky wait than the typical."""
        if not self.latencies:
            return None
        latency = summary_ms(self.latencies)
        return round(latency["p99_ms"] / latency["p50_ms"], 1) if latency["p50_ms"] else None

    def per_operation(self, counts: Counter) -> dict[str, float]:
        ops = max(self.operations, 1)
        return {name: round(n / ops, 2) for name, n in sorted(counts.items())}

    def as_dict(self, raw_rate: float) -> dict[str, Any]:
        ops = max(self.operations, 1)
        return {
            "name": self.name,
            "operations": self.operations,
            "ledgerCallsPerOperation": round(self.ledger_calls / ops, 2),
            "seconds": round(self.seconds, 2),
            "operationsPerSecond": round(self.rate, 1),
            "fractionOfRawTransactionRate": round(self.rate / raw_rate, 3) if raw_rate else None,
            "mongoCommandsPerOperation": round(sum(self.mongo.values()) / ops, 2),
            "mongoCommandsByName": self.per_operation(self.mongo),
            "redisCommandsPerOperation": round(sum(self.redis.values()) / ops, 2),
            "redisCommandsByName": self.per_operation(self.redis),
            "latency": summary_ms(self.latencies) if self.latencies else None,
            "p99OverP50": self.tail_ratio,
            "failures": dict(self.failures),
        }


# One operation: (thread index, iteration) -> how many ledger calls it made.
Operation = Callable[[int, int], int]


def run_phase(
    name: str, operation: Operation, clients: Clients, threads: int, seconds: float
) -> PhaseResult:
    """Run `operation` back to back on `threads` threads for `seconds`."""
    latencies: list[float] = []
    failures: Counter = Counter()
    done = Counter()
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        start.wait()
        deadline = time.perf_counter() + seconds
        iteration = 0
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                calls = operation(index, iteration)
            except Exception as exc:  # counted and reported, the run goes on
                with lock:
                    failures[type(exc).__name__] += 1
            else:
                with lock:
                    latencies.append(time.perf_counter() - began)
                    done["operations"] += 1
                    done["calls"] += calls
            iteration += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    clients.reset_counts()
    start.wait()
    began = time.perf_counter()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - began
    return PhaseResult(
        name,
        done["operations"],
        done["calls"],
        elapsed,
        latencies,
        failures,
        clients.mongo_tally.take(),
        clients.redis_tally.take(),
    )


# ---- what is measured -----------------------------------------------------------------


def raw_transaction(db: Database) -> Operation:
    """The cheapest transactional write: one update_one in a transaction, each thread on
    a document of its own so they never conflict."""
    collection = db["raw_transactions"]

    def write(index: int, _iteration: int) -> int:
        with db.client.start_session() as session, session.start_transaction():
            collection.update_one({"_id": index}, {"$inc": {"n": 1}}, session=session)
        return 0

    return write


def fund(ledger: Ledger, wallets: list[str], run: str) -> None:
    """Give every wallet more than the run can spend, a few wallets per entry."""
    for start in range(0, len(wallets), FUNDING_CHUNK):
        chunk = wallets[start : start + FUNDING_CHUNK]
        postings = [Posting(w, FUNDS_PER_WALLET) for w in chunk]
        ledger.post(
            f"{run}:fund:{start}",
            [Posting(CLEARING, -FUNDS_PER_WALLET * len(chunk)), *postings],
            kind="credit",
        )


def ledger_operations(ledger: Ledger, run: str) -> dict[str, Callable[[str, str], int]]:
    """Each operation on one wallet, with a unique key prefix; returns its ledger calls."""
    expires = datetime.now(UTC) + timedelta(hours=1)

    def credit(wallet: str, key: str) -> int:
        ledger.credit(key, wallet, 100)
        return 1

    def debit(wallet: str, key: str) -> int:
        ledger.debit(key, wallet, 100)
        return 1

    def hold_and_capture(wallet: str, key: str) -> int:
        hold = ledger.hold(f"{key}:hold", wallet, 500, expires)
        # Releases the other 200. Callers know the hold's wallet, as the calls code does.
        ledger.capture(f"{key}:capture", hold.hold_id, 300, account=wallet)
        return 2

    return {"credit": credit, "debit": debit, "hold+capture": hold_and_capture}


def on_wallets(action: Callable[[str, str], int], wallets: list[str], label: str) -> Operation:
    """The action on a wallet picked round-robin per thread, with a fresh key each time."""

    def operation(index: int, iteration: int) -> int:
        wallet = wallets[(index * 7919 + iteration) % len(wallets)]
        return action(wallet, f"{label}:{index}:{iteration}")

    return operation


def bench(database_url: str, redis_url: str, seconds: float, threads: int, wallets: int):
    clients = Clients.connect(database_url, redis_url)
    clients.db.client.drop_database(DATABASE)
    ensure_indexes(clients.db)
    ledger = Ledger(clients.db, clients.redis)
    run = f"bench:{uuid.uuid4().hex[:8]}"
    phase_seconds = seconds / PHASES

    hot = [make_wallet_id(ObjectId(), "NGN")]
    spread = [make_wallet_id(ObjectId(), "NGN") for _ in range(wallets)]
    funding_began = time.perf_counter()
    fund(ledger, hot + spread, run)
    funding_seconds = time.perf_counter() - funding_began

    clients.db["raw_transactions"].insert_many([{"_id": i, "n": 0} for i in range(threads)])
    raw = [
        run_phase(f"raw: {n} thread(s)", raw_transaction(clients.db), clients, n, phase_seconds)
        for n in sorted({1, threads})
    ]
    best_raw = max(r.rate for r in raw)
    measured = []
    for name, action in ledger_operations(ledger, run).items():
        for where, targets in (("one hot wallet", hot), (f"{wallets} wallets", spread)):
            label = f"{run}:{name}:{len(targets)}"
            operation = on_wallets(action, targets, label)
            phase_name = f"{name} on {where}"
            measured.append(run_phase(phase_name, operation, clients, threads, phase_seconds))

    violations = [v.as_dict() for v in check_invariants(clients.db)]
    clients.db.client.drop_database(DATABASE)
    return {
        "generatedAt": datetime.now(UTC).isoformat(),
        "settings": {
            "threads": threads,
            "secondsPerPhase": round(phase_seconds, 2),
            "spreadWallets": wallets,
            "fundingSeconds": round(funding_seconds, 2),
        },
        "machine": {"python": platform.python_version(), "cpuCount": os.cpu_count()},
        "rawTransactionRate": {
            "operationsPerSecondBest": round(best_raw, 1),
            "phases": [r.as_dict(best_raw) for r in raw],
        },
        "operations": [m.as_dict(best_raw) for m in measured],
        "invariantViolations": violations,
    }


def print_summary(report: dict[str, Any]) -> None:
    print(f"servers: {report['servers']}; threads: {report['settings']['threads']}")
    header = (
        f"{'':44} {'ops/s':>8} {'of raw':>7} {'mongo/op':>9} {'redis/op':>9} {'p50 ms':>7}"
        f" {'p99 ms':>7} {'p99/p50':>7}"
    )
    print(header)
    rows = [*report["rawTransactionRate"]["phases"], *report["operations"]]
    for row in rows:
        latency = row["latency"] or {}
        failures = f"  failures: {row['failures']}" if row["failures"] else ""
        print(
            f"{row['name']:44} {row['operationsPerSecond']:>8} "
            f"{row['fractionOfRawTransactionRate']:>7} {row['mongoCommandsPerOperation']:>9} "
            f"{row['redisCommandsPerOperation']:>9} {latency.get('p50_ms', '-'):>7}"
            f" {latency.get('p99_ms', '-'):>7} {row.get('p99OverP50') or '-':>7}{failures}"
        )
    print(f"invariant violations: {len(report['invariantViolations'])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=36.0, help="total measuring time")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--wallets", type=int, default=1000, help="wallets of the spread runs")
    args = parser.parse_args()
    configure_logging(json=False, level="WARNING")  # not a line per ledger operation
    with servers() as (database_url, redis_url, source):
        report = bench(database_url, redis_url, args.seconds, args.threads, args.wallets)
    report = {"servers": source, **report}
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print_summary(report)
    print(f"report written to {REPORT}")
    return 1 if report["invariantViolations"] else 0


if __name__ == "__main__":
    sys.exit(main())
