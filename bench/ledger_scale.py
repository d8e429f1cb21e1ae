"""The ledger as its data grows: does a credit, or a page of history, slow down with more
wallets and more journal entries?

    python -m bench.ledger_scale [--seconds 4] [--threads 4] [--postings 1000000]

Against DATABASE_URL / REDIS_URL when set (a database of its own, `ledger_bench_scale`,
dropped before and after), else embedded SecantusDB and Valkey started here.

Grows one database stage by stage: 1,000 wallets with 10,000 postings, then 10,000 and
100,000 wallets, then 100,000 wallets with --postings postings. Wallets and entries are
bulk-inserted in the shapes the ledger writes (`shared/ledger/seeding.py`), each loaded
entry a credit or debit between a wallet and the clearing account, in pairs that net to
zero so every wallet's balance stays right. At each stage it measures credits on random
wallets for --seconds (rate, and that rate as a fraction of the first stage's) and the
latency of a wallet's first history page and of the page after it.

Writes bench/reports/ledger_scale.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bson import ObjectId
from pymongo.database import Database

from bench.harness import summary_ms
from bench.ledger import Clients, on_wallets, run_phase, servers
from shared.indexes import ensure_indexes
from shared.ledger import Ledger, LedgerReads, Posting, SystemAccount, seeding, system_account_id
from shared.ledger import wallet_id as make_wallet_id
from shared.ledger.journal import entry_document
from shared.logs import configure_logging

REPORT = Path(__file__).resolve().parent / "reports" / "ledger_scale.json"
DATABASE = "ledger_bench_scale"
CLEARING = system_account_id(SystemAccount.GATEWAY_CLEARING, "NGN")
LOAD_CHUNK = 5_000
HISTORY_READS = 40
LOADED_AMOUNT = 1_000


@dataclass(frozen=True)
class Stage:
    wallets: int
    postings: int

    @property
    def name(self) -> str:
        return f"{self.wallets:,} wallets, {self.postings:,} postings"


class Loader:
    """Grows the database to a stage's size by bulk inserts."""

    def __init__(self, db: Database):
        self.db = db
        self.wallets: list[str] = []
        self.versions: dict[str, int] = {}
        self.postings = 0
        self.started = datetime.now(UTC) - timedelta(days=365)

    def grow_to(self, stage: Stage) -> float:
        began = time.perf_counter()
        self._add_wallets(stage.wallets - len(self.wallets))
        self._add_postings(stage.postings - self.postings)
        return time.perf_counter() - began

    def _add_wallets(self, count: int) -> None:
        new = [make_wallet_id(ObjectId(), "NGN") for _ in range(max(count, 0))]
        for start in range(0, len(new), LOAD_CHUNK):
            chunk = new[start : start + LOAD_CHUNK]
            seeding.insert_accounts(self.db, [seeding.account_document(w, "NGN") for w in chunk])
        self.wallets += new

    def _add_postings(self, count: int) -> None:
        """Credit-then-debit pairs of entries (4 postings a pair) on random wallets."""
        pairs = max(count, 0) // 4
        documents: list[dict[str, Any]] = []
        for _ in range(pairs):
            documents += self._pair(random.choice(self.wallets))
            if len(documents) >= LOAD_CHUNK:
                seeding.insert_entries(self.db, documents)
                documents = []
        seeding.insert_entries(self.db, documents)
        self.postings += pairs * 4

    def _pair(self, wallet: str) -> list[dict[str, Any]]:
        self.started += timedelta(milliseconds=20)
        return [
            self._entry(wallet, LOADED_AMOUNT, LOADED_AMOUNT, "credit"),
            self._entry(wallet, -LOADED_AMOUNT, 0, "debit"),
        ]

    def _entry(self, wallet: str, amount: int, after: int, kind: str) -> dict[str, Any]:
        version = self.versions[wallet] = self.versions.get(wallet, 0) + 1
        entry = entry_document(
            ObjectId(),
            f"load:{uuid.uuid4().hex}",
            kind,
            "loaded",
            {},
            {wallet: {"balance": after, "held": 0, "version": version}},
            self.started,
            postings=[Posting(CLEARING, -amount), Posting(wallet, amount)],
        )
        return seeding.sealed(entry)


def history_latency(reads: LedgerReads, wallets: list[str]) -> dict[str, Any]:
    """A random wallet's first page of 20, and the page after it when there is one."""
    first, second = [], []
    for wallet in random.sample(wallets, min(HISTORY_READS, len(wallets))):
        began = time.perf_counter()
        page = reads.history(wallet, 20)
        first.append(time.perf_counter() - began)
        if page:
            last = page[-1]
            began = time.perf_counter()
            reads.history(wallet, 20, after=(last.created_at, last.id))
            second.append(time.perf_counter() - began)
    return {"firstPage": summary_ms(first), "nextPage": summary_ms(second) if second else None}


def measure(clients: Clients, stages: list[Stage], seconds: float, threads: int) -> list[dict]:
    ledger, reads = Ledger(clients.db, clients.redis), LedgerReads(clients.db)
    loader = Loader(clients.db)

    def credit(wallet: str, key: str) -> int:
        ledger.credit(key, wallet, 100)
        return 1

    results: list[dict[str, Any]] = []
    for number, stage in enumerate(stages):
        load_seconds = loader.grow_to(stage)
        label = f"scale:{number}:{uuid.uuid4().hex[:6]}"
        credits = on_wallets(credit, random.sample(loader.wallets, len(loader.wallets)), label)
        phase = run_phase(f"credit at {stage.name}", credits, clients, threads, seconds)
        first_rate = results[0]["creditsPerSecond"] if results else phase.rate
        results.append(
            {
                "stage": stage.name,
                "wallets": stage.wallets,
                "postings": stage.postings,
                "loadSeconds": round(load_seconds, 1),
                "creditsPerSecond": round(phase.rate, 1),
                "creditRateVsFirstStage": round(phase.rate / first_rate, 2) if first_rate else None,
                "creditLatency": summary_ms(phase.latencies) if phase.latencies else None,
                "mongoCommandsPerCredit": round(
                    sum(phase.mongo.values()) / max(phase.operations, 1), 2
                ),
                "history": history_latency(reads, loader.wallets),
                "failures": dict(phase.failures),
            }
        )
        print_stage(results[-1])
    return results


def print_stage(row: dict[str, Any]) -> None:
    history = row["history"]["firstPage"]
    print(
        f"{row['stage']:42} load {row['loadSeconds']:>6}s  credits/s {row['creditsPerSecond']:>7}"
        f" (x{row['creditRateVsFirstStage']})  history p50 {history['p50_ms']} ms"
        f" p99 {history['p99_ms']} ms",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="credit phase per stage")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--postings", type=int, default=1_000_000, help="postings at the end")
    args = parser.parse_args()
    configure_logging(json=False, level="WARNING")
    stages = [
        Stage(1_000, 10_000),
        Stage(10_000, 10_000),
        Stage(100_000, 10_000),
        Stage(100_000, args.postings),
    ]
    with servers() as (database_url, redis_url, source):
        clients = Clients.connect(database_url, redis_url, DATABASE)
        clients.db.client.drop_database(DATABASE)
        ensure_indexes(clients.db)
        try:
            results = measure(clients, stages, args.seconds, args.threads)
        finally:
            clients.db.client.drop_database(DATABASE)
    report = {
        "servers": source,
        "generatedAt": datetime.now(UTC).isoformat(),
        "settings": {"threads": args.threads, "secondsPerStage": args.seconds},
        "stages": results,
        "creditRateAt100kWalletsVs1k": results[2]["creditRateVsFirstStage"],
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report written to {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
