"""Payments benchmark: signed Monnify webhooks driven at the gateway for a fixed time.

    python -m bench.payments [--seconds 10] [--fundings 800] [--senders 8] [--duplicates 0.1]
                             [--calls 8]

Starts the whole stack with the launcher (`python -m services.devstack`, as bench/harness
does: embedded SecantusDB and Valkey, gunicorn, a Celery worker per queue and beat, the
Monnify simulator) on free ports in a temporary directory, with calls billed in short
blocks (CALL_ENV) so their renewals fall due every few seconds. Signs users up and opens fundings
over HTTP, and has the simulator mark each one paid without notifying anyone. Then,
for the fixed time, `--senders` threads post one signed SUCCESSFUL_TRANSACTION per
funding (and, for a `--duplicates` share of them, the same bytes again at once, as
Monnify's redeliveries do) until the time or the fundings run out. `--calls` calls are
in progress from just before the burst until every funding is confirmed.

Reports intake requests per second and p50/p99 intake latency, the time from a
webhook's post to its funding's confirmation (credit committed) p50/p99, the worker's
confirmations per second (a burst queues up behind it: that is the wait), and MongoDB
commands per confirmed payment (the server's opcounters over the run, every process
included, less the benchmark's own polling), and the sizes of the batches the worker
confirmed the events in (`confirmationBatches`). Waits until every notified funding is
confirmed, checks that each was credited exactly once and every wallet holds exactly
what was paid into it, runs the ledger invariants, and writes bench/reports/payments.json.

Renewal lateness, the figure the queues by urgency are for: for each renewal of those
calls, the time its hold extension committed (the ledger operation's createdAt) less the
time it was due (the reservation's end less CALL_RENEW_LEAD_SECONDS, the task's eta).
It counts everything between due and done: waiting for a worker, the task itself and
its wait for the wallet's lock.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pymongo
import requests
import simplejson
from bson import ObjectId
from pymongo import monitoring
from pymongo.database import Database

from bench.harness import (
    Party,
    Stack,
    Timings,
    end_call,
    funded_pairs,
    initiate_call,
    percentile,
    start_stack,
    stop_stack,
    summary_ms,
    wait_ready,
    worker_concurrency,
)
from shared.ledger import LedgerReads, check_invariants, wallet_id
from shared.monnify.signature import SIGNATURE_HEADER, compute_signature
from shared.queries import in_chunks
from shared.settings import load_settings

REPORT = Path(__file__).resolve().parent / "reports" / "payments.json"
CONFIRM_TIMEOUT_SECONDS = 300.0
FUNDINGS_PER_USER = 10
AMOUNT_NGN = 5000
SETUP_THREADS = 8
RENEW_LEAD_SECONDS = 1
# Per-second billing in 4-second blocks: each call's hold is renewed every 4 s, 1 s
# before its reservation runs out.
CALL_ENV = {
    "CALL_BILLING_INCREMENT_SECONDS": "1",
    "CALL_HOLD_BLOCK_SECONDS": "4",
    "CALL_RENEW_LEAD_SECONDS": str(RENEW_LEAD_SECONDS),
}


@dataclass(frozen=True)
class Funding:
    user_id: str
    payment_reference: str
    transaction_reference: str
    amount_minor: int


@dataclass
class Sent:
    """One funding's notification: when it was first posted, and each post's latency."""

    funding: Funding
    posted_at: float  # wall clock, to compare with the server's confirmedAt
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


class CommandCounter(monitoring.CommandListener):
    """Counts the benchmark's own commands, to take them out of the server's totals."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        with self._lock:
            self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


# ---------------------------------------------------------------- setup


def sign_up(api: str) -> tuple[str, dict[str, str]]:
    email = f"bench-{random.getrandbits(64):016x}@example.com"
    response = requests.post(
        f"{api}/auth/signup", json={"email": email, "password": "password123"}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    return body["user"]["id"], {"Authorization": f"Bearer {body['access_token']}"}


def open_paid_fundings(api: str, count: int) -> tuple[list[Funding], str]:
    """`count` fundings, each paid at the simulator with no notification sent; returns
    them and the simulator's URL."""
    users = [sign_up(api) for _ in range(-(-count // FUNDINGS_PER_USER))]
    owners = list(itertools.islice(itertools.cycle(users), count))
    with ThreadPoolExecutor(SETUP_THREADS) as pool:
        opened = list(pool.map(lambda owner: _open(api, *owner), owners))
    # The checkout page lives on the simulator: its URL is the simulator's public URL.
    parts = urlsplit(opened[0][1])
    simulator = f"{parts.scheme}://{parts.netloc}"
    fundings = [funding for funding, _ in opened]
    with ThreadPoolExecutor(SETUP_THREADS) as pool:
        list(pool.map(lambda funding: _pay_silently(simulator, funding), fundings))
    return fundings, simulator


def _open(api: str, user_id: str, headers: dict[str, str]) -> tuple[Funding, str]:
    response = requests.post(
        f"{api}/wallet/fund", json={"amount": AMOUNT_NGN}, headers=headers, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    funding = Funding(
        user_id, body["paymentReference"], body["transactionReference"], AMOUNT_NGN * 100
    )
    return funding, body["checkoutUrl"]


def _pay_silently(simulator: str, funding: Funding) -> None:
    reference = quote(funding.transaction_reference, safe="")
    response = requests.post(
        f"{simulator}/sim/transactions/{reference}/pay", json={"notify": False}, timeout=30
    )
    response.raise_for_status()


def notification_body(funding: Funding) -> bytes:
    """What Monnify would post, compact as it writes it."""
    payload = {
        "eventType": "SUCCESSFUL_TRANSACTION",
        "eventData": {
            "transactionReference": funding.transaction_reference,
            "paymentReference": funding.payment_reference,
            "amountPaid": AMOUNT_NGN,
            "totalPayable": AMOUNT_NGN,
            "paymentStatus": "PAID",
            "paymentMethod": "ACCOUNT_TRANSFER",
            "currency": "NGN",
        },
    }
    return simplejson.dumps(payload, separators=(",", ":")).encode()


# ---------------------------------------------------------------- the drive


class Driver:
    def __init__(self, api: str, secret: str, fundings: list[Funding], duplicates: float):
        self.url = f"{api}/payments/monnify/webhook"
        self.secret = secret
        self.duplicates = duplicates
        self._next = iter(fundings)
        self._lock = threading.Lock()
        self.sent: list[Sent] = []

    def run(self, seconds: float, senders: int) -> float:
        """Post until the time or the fundings run out; returns the seconds it took."""
        deadline = time.monotonic() + seconds
        started = time.perf_counter()
        threads = [
            threading.Thread(target=self._send_until, args=(deadline,)) for _ in range(senders)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started

    def _take(self) -> Funding | None:
        with self._lock:
            return next(self._next, None)

    def _send_until(self, deadline: float) -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            funding = self._take()
            if funding is None:
                return
            body = notification_body(funding)
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: compute_signature(body, self.secret),
            }
            sent = Sent(funding, time.time())
            copies = 2 if random.random() < self.duplicates else 1
            for _ in range(copies):
                began = time.perf_counter()
                response = session.post(self.url, data=body, headers=headers, timeout=30)
                sent.latencies.append(time.perf_counter() - began)
                sent.statuses.append(response.status_code)
            with self._lock:
                self.sent.append(sent)


# ---------------------------------------------------------------- results


def server_commands(db: Database) -> int:
    counters = db.command("serverStatus")["opcounters"]
    return sum(int(value) for value in counters.values())


def wait_confirmed(db: Database, sent: list[Sent]) -> dict[str, datetime]:
    """confirmedAt of every notified funding, once all are confirmed. Asks only about
    those not yet seen confirmed: the database serves the system under test too, and a
    poll of every reference twice a second took a large share of it."""
    references = [s.funding.payment_reference for s in sent]
    confirmed: dict[str, datetime] = {}
    deadline = time.monotonic() + CONFIRM_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        waiting = [reference for reference in references if reference not in confirmed]
        for row in db.fundings.find(
            {"_id": {"$in": waiting}, "confirmedAt": {"$exists": True}}, {"confirmedAt": 1}
        ):
            confirmed[row["_id"]] = row["confirmedAt"]
        if len(confirmed) == len(references):
            return confirmed
        time.sleep(0.5)
    raise SystemExit(f"not every funding was confirmed within {CONFIRM_TIMEOUT_SECONDS:.0f} s")


def exactly_once_problems(db: Database, fundings: list[Funding], sent: list[Sent]) -> list[str]:
    """Every notified funding credited once; nothing else credited; each wallet holds
    exactly the fundings notified for it."""
    problems = []
    reads = LedgerReads(db)
    notified = {s.funding.payment_reference for s in sent}
    expected: dict[str, int] = {}
    for funding in fundings:
        credits = int(reads.entry(f"monnify:{funding.transaction_reference}") is not None)
        wanted = 1 if funding.payment_reference in notified else 0
        if credits != wanted:
            problems.append(f"{funding.payment_reference}: credited {credits} times, not {wanted}")
        expected[funding.user_id] = expected.get(funding.user_id, 0) + wanted * funding.amount_minor
    for user_id, amount in expected.items():
        wallet = reads.wallet(wallet_id(user_id, "NGN"))
        if wallet.balance != amount:
            problems.append(f"{wallet.account}: balance {wallet.balance} != {amount}")
    return problems


# ---------------------------------------------------------------- calls during the burst


def start_calls(stack: Stack, count: int) -> list[tuple[Party, str]]:
    """`count` calls in progress, one per funded caller: (caller, call id)."""
    timings = Timings()
    pairs = funded_pairs(stack, count, timings)
    return [
        (caller, initiate_call(stack.api, caller, receiver, timings)) for caller, receiver in pairs
    ]


def end_calls(stack: Stack, calls: list[tuple[Party, str]]) -> None:
    for caller, call_id in calls:
        end_call(stack.api, caller, call_id, Timings())


def renewal_lateness(db: Database, call_ids: list[str]) -> list[float]:
    """Seconds from each renewal's due time to its hold extension's commit."""
    late = []
    reads = LedgerReads(db)
    for call in db.calls.find({"_id": {"$in": [ObjectId(call_id) for call_id in call_ids]}}):
        prefix = f"call:{call['_id']}:extend:"
        # The ledger's journal entry of each extension, keyed by the seconds held before it.
        for done in reads.entries_keyed(prefix):
            reserved = int(done["key"].removeprefix(prefix))
            due = call["startedAt"] + timedelta(seconds=reserved - RENEW_LEAD_SECONDS)
            late.append((done["createdAt"] - due).total_seconds())
    return late


def lateness_summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    return {**summary_ms(values), "max_ms": round(percentile(values, 1.0) * 1000, 1)}


def batch_sizes(db: Database, sent: list[Sent]) -> dict[str, Any]:
    """How the worker grouped the notified events: each settled event keeps its batch."""
    references = [s.funding.payment_reference for s in sent]
    batches: Counter = Counter(
        event.get("batch")
        for chunk in in_chunks(references)
        for event in db.webhook_events.find({"paymentReference": {"$in": chunk}}, {"batch": 1})
    )
    sizes = list(batches.values())
    return {
        "count": len(sizes),
        "mean": round(sum(sizes) / len(sizes), 1) if sizes else 0,
        "p50": percentile(sizes, 0.5) if sizes else 0,
        "max": max(sizes, default=0),
    }


def _confirming_seconds(driver: Driver, confirmed: dict[str, datetime]) -> float:
    first_post = min(s.posted_at for s in driver.sent)
    return max(at.timestamp() for at in confirmed.values()) - first_post


def bench(
    seconds: float, fundings: int, senders: int, duplicates: float, calls: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-payments-") as workdir:
        stack = start_stack(Path(workdir), CALL_ENV)
        try:
            wait_ready(stack)
            return measure(stack, seconds, fundings, senders, duplicates, calls)
        finally:
            stop_stack(stack)


def measure(
    stack: Stack, seconds: float, count: int, senders: int, duplicates: float, calls: int
) -> dict[str, Any]:
    own = CommandCounter()
    db = pymongo.MongoClient(stack.database_url, event_listeners=[own]).get_default_database()
    setup_started = time.perf_counter()
    fundings, _ = open_paid_fundings(stack.api, count)
    in_progress = start_calls(stack, calls)
    setup_seconds = time.perf_counter() - setup_started

    driver = Driver(stack.api, load_settings().monnify_secret_key, fundings, duplicates)
    commands_before, own_before = server_commands(db), own.count
    wall = driver.run(seconds, senders)
    confirmed = wait_confirmed(db, driver.sent)
    commands = server_commands(db) - commands_before - (own.count - own_before)
    end_calls(stack, in_progress)
    lateness = renewal_lateness(db, [call_id for _, call_id in in_progress])

    latencies = [latency for s in driver.sent for latency in s.latencies]
    statuses = [status for s in driver.sent for status in s.statuses]
    to_credit = [
        confirmed[s.funding.payment_reference].timestamp() - s.posted_at for s in driver.sent
    ]
    return {
        "secondsRequested": seconds,
        "driveSeconds": round(wall, 2),
        "fundingsPrepared": len(fundings),
        "fundingsNotified": len(driver.sent),
        "ranOutOfFundings": len(driver.sent) == len(fundings),
        "webhookPosts": len(latencies),
        "duplicatePosts": len(latencies) - len(driver.sent),
        "non200": len([s for s in statuses if s != 200]),
        "intakeRequestsPerSecond": round(len(latencies) / wall, 1),
        "intakeLatency": summary_ms(latencies),
        "webhookToCredit": summary_ms(to_credit),
        "webhookToCreditMaxMs": round(percentile(to_credit, 1.0) * 1000, 1),
        # The worker's pace: confirmations from the first post to the last confirmation.
        "confirmationsPerSecond": round(
            len(driver.sent) / _confirming_seconds(driver, confirmed), 1
        ),
        "mongoCommandsPerConfirmedPayment": round(commands / len(driver.sent), 1),
        # Calls in progress through the burst; the commands above include their renewals.
        "callsDuringBurst": len(in_progress),
        "renewalLateness": lateness_summary(lateness),
        # Events confirmed together by one worker task (one group commit each).
        "confirmationBatches": batch_sizes(db, driver.sent),
        "exactlyOnceProblems": exactly_once_problems(db, fundings, driver.sent),
        "invariantViolations": [v.as_dict() for v in check_invariants(db)],
        "config": {
            "senders": senders,
            "duplicateShare": duplicates,
            "setupSeconds": round(setup_seconds, 1),
            "gunicorn": "WEB_CONCURRENCY / GUNICORN_THREADS defaults",
            "workerConcurrency": worker_concurrency(),
            "callHoldBlockSeconds": int(CALL_ENV["CALL_HOLD_BLOCK_SECONDS"]),
            "cpuCount": os.cpu_count(),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fundings", type=int, default=800)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--duplicates", type=float, default=0.1)
    parser.add_argument("--calls", type=int, default=8)
    args = parser.parse_args()
    report = bench(args.seconds, args.fundings, args.senders, args.duplicates, args.calls)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    healthy = not report["exactlyOnceProblems"] and not report["invariantViolations"]
    verdict = "every funding credited exactly once" if healthy else "BROKEN"
    print(f"report written to {REPORT}; {verdict}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
