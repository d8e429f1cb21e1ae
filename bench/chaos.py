"""Chaos benchmark: fundings and calls from many users while processes die, then a check
that every kobo is where it belongs.

    python -m bench.chaos [--seconds 90] [--callers 24] [--receivers 6]
    (or CHAOS_SECONDS=90 make chaos)

Starts SecantusDB with its test commands on (`--enable-test-commands`, for
`configureFailPoint`) and the launcher's stack on it (`python -m services.devstack`, as
bench/harness does: embedded Valkey with its append-only file, gunicorn, a Celery worker
per queue, beat, the Monnify simulator), on free ports in a temporary directory. Calls are
billed per second in 4-second blocks (CHAOS_ENV) so renewals and cut-offs happen every
few seconds; the simulator retries a refused webhook after 5 s instead of Monnify's 5
minutes, so a webhook refused during a fault is redelivered within the run.

For `--seconds`, each caller loops: start a call to a random receiver; when the wallet
is short (402), open a funding (`POST /wallet/fund`) and pay it at the simulator, which
posts its signed webhook to the gateway; talk 1-8 s and hang up, or (one call in three)
talk until the money runs out and the call is cut off. Meanwhile, on a schedule:

- a Celery pool process is SIGKILLed every 2 s (any queue's worker);
- the calls worker's main process is SIGKILLed once (the launcher restarts it);
- a gunicorn worker is SIGKILLed twice, during intake;
- Redis is SIGSTOPped for 5 s, and later SIGKILLed once (the launcher restarts it);
- SecantusDB fails every commitTransaction (WriteConflict) for 4 s, then every write
  (insert, update, findAndModify, delete) with NoSuchTransaction for 3 s.

Then the callers hang up, and the benchmark waits until the system converges: every
paid funding credited, every call ended and settled, every wallet exactly what its owner
paid in less what it spent (callers) or earned (receivers), nothing left held. It runs
the ledger's full invariant check and writes bench/reports/chaos.json: webhooks
acknowledged vs fundings credited, credited twice, calls started vs settled once, each
call's cost vs its hold, balance mismatches, invariant violations, seconds to converge
after the last fault (target: INBOX_REQUEUE_AFTER_SECONDS + one sweep), the gateway's
5xx answers while faults were on, and the faults injected. Exits non-zero when anything
was lost or doubled, a balance or the ledger is wrong, or it did not converge.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psutil
import pymongo
import requests
from bson import ObjectId
from pymongo.database import Database

from bench.harness import (
    Party,
    Stack,
    Timings,
    sign_up,
    start_stack,
    stop_stack,
    wait_ready,
    worker_concurrency,
)
from bench.payments import Funding
from services.embedded import EmbeddedServer, start_mongo
from shared.calls.rating import split_cost
from shared.funding.confirmation import credit_key
from shared.ledger import LedgerReads, check_invariants, wallet_id
from shared.settings import Settings, load_settings

REPORT = Path(__file__).resolve().parent / "reports" / "chaos.json"
REQUEST_TIMEOUT_SECONDS = 30.0
CONVERGE_TIMEOUT_SECONDS = 600.0
POLL_SECONDS = 2.0
FUNDING_AMOUNTS_NGN = (20, 30, 50)
FUND_AGAIN_AFTER_SECONDS = 8.0  # a funding's webhook may be held up by a fault
CUT_OFF_SHARE = 1 / 3
CUT_OFF_WAIT_SECONDS = 60.0
POOL_KILL_EVERY_SECONDS = 2.0
REDIS_STOP_SECONDS = 5.0
DB_COMMIT_FAULT_SECONDS = 4.0
DB_WRITE_FAULT_SECONDS = 3.0
WRITE_CONFLICT, NO_SUCH_TRANSACTION = 112, 251
CHAOS_ENV = {
    # 2 NGN a second, billed per second in 4-second blocks: renewals every 4 s, and a
    # 20-50 NGN funding lasts 10-25 s of talk.
    "CALL_DEFAULT_RATE_PER_MINUTE": "120",
    "CALL_CONNECT_FEE": "1",
    "CALL_BILLING_INCREMENT_SECONDS": "1",
    "CALL_HOLD_BLOCK_SECONDS": "4",
    "CALL_RENEW_LEAD_SECONDS": "1",
    "SIM_WEBHOOK_RETRY_SECONDS": "5",
    "SIM_WEBHOOK_MAX_TRIES": "100",
}


# ---------------------------------------------------------------- faults


@dataclass
class FaultLog:
    """What was injected and when (seconds since the drive started); the window from the
    first fault's start to the last one's end is 'during faults'."""

    started: float = field(default_factory=time.monotonic)
    counts: Counter = field(default_factory=Counter)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    first: float | None = None
    last_end: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def fault(self, name: str, detail: str = "") -> Iterator[None]:
        begin = time.monotonic()
        try:
            yield
        finally:
            end = time.monotonic()
            with self.lock:
                self.counts[name] += 1
                self.first = begin if self.first is None else min(self.first, begin)
                self.last_end = end if self.last_end is None else max(self.last_end, end)
                self.timeline.append(
                    {"at": round(begin - self.started, 1), "fault": name, "detail": detail}
                )

    def during(self, moment: float) -> bool:
        with self.lock:
            return self.first is not None and moment >= self.first


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""


class Chaos:
    """Finds the stack's processes under the launcher and hurts them on a schedule."""

    def __init__(self, stack: Stack, mongo_url: str, seconds: float, log: FaultLog):
        self.stack = stack
        self.mongo = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
        self.seconds = seconds
        self.log = log
        self.stop = threading.Event()

    def launched(self, marker: str) -> list[psutil.Process]:
        """The launcher's own children whose command line holds `marker`."""
        return [p for p in _children(self.stack.process.pid) if marker in _cmdline(p)]

    def _kill_one_of(self, processes: list[psutil.Process], name: str) -> None:
        if not processes:
            return
        victim = random.choice(processes)
        command = _cmdline(victim)
        if not command:
            return  # already gone (a pool process the parent is replacing)
        # suppress: it may die on its own meanwhile.
        with self.log.fault(name, command[-40:]), suppress(psutil.NoSuchProcess):
            victim.send_signal(signal.SIGKILL)

    def kill_pool_process(self) -> None:
        pools = [child for w in self.launched(" worker ") for child in _children(w.pid)]
        self._kill_one_of(pools, "poolProcessKills")

    def kill_worker_main(self) -> None:
        self._kill_one_of(self.launched(" -Q calls "), "workerMainKills")

    def kill_gunicorn_worker(self) -> None:
        workers = [child for m in self.launched("gunicorn") for child in _children(m.pid)]
        self._kill_one_of(workers, "gunicornWorkerKills")

    def stop_redis(self) -> None:
        for server in self.launched("valkey-server"):
            with self.log.fault("redisStops", f"{REDIS_STOP_SECONDS:.0f} s"):
                server.send_signal(signal.SIGSTOP)
                try:
                    self.stop.wait(REDIS_STOP_SECONDS)
                finally:
                    server.send_signal(signal.SIGCONT)

    def restart_redis(self) -> None:
        self._kill_one_of(self.launched("valkey-server"), "redisRestarts")

    def fail_db(self, name: str, seconds: float, commands: list[str], code: int) -> None:
        """A failCommand failpoint on `commands` for `seconds`, then off."""
        data = {"failCommands": commands, "errorCode": code}
        with self.log.fault(name, f"{','.join(commands)} -> {code} for {seconds:.0f} s"):
            self.mongo.admin.command(
                "configureFailPoint", "failCommand", mode="alwaysOn", data=data
            )
            try:
                self.stop.wait(seconds)
            finally:
                self.mongo.admin.command("configureFailPoint", "failCommand", mode="off")

    def schedule(self) -> list[tuple[float, Callable[[], None]]]:
        """The one-off faults, at fractions of the run (the pool kills run throughout)."""
        writes = ["insert", "update", "findAndModify", "delete"]
        return [
            (0.20, self.kill_gunicorn_worker),
            (0.30, self.kill_worker_main),
            (0.40, self.stop_redis),
            (0.55, self.restart_redis),
            (0.65, self.kill_gunicorn_worker),
            (
                0.70,
                lambda: self.fail_db(
                    "dbCommitFailures",
                    DB_COMMIT_FAULT_SECONDS,
                    ["commitTransaction"],
                    WRITE_CONFLICT,
                ),
            ),
            (
                0.80,
                lambda: self.fail_db(
                    "dbWriteAborts", DB_WRITE_FAULT_SECONDS, writes, NO_SUCH_TRANSACTION
                ),
            ),
        ]

    def run_schedule(self) -> None:
        for fraction, action in self.schedule():
            if self.stop.wait(
                max(0.0, self.log.started + fraction * self.seconds - time.monotonic())
            ):
                return
            action()

    def run_pool_kills(self) -> None:
        """Every 2 s from 2 s in until 2 s before the end."""
        end = self.log.started + self.seconds - POOL_KILL_EVERY_SECONDS
        while not self.stop.wait(POOL_KILL_EVERY_SECONDS) and time.monotonic() < end:
            self.kill_pool_process()

    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self.run_schedule, name="chaos-schedule"),
            threading.Thread(target=self.run_pool_kills, name="chaos-pool"),
        ]
        for thread in threads:
            thread.start()
        return threads


# ---------------------------------------------------------------- the workload


@dataclass
class Drive:
    """The clients' side: what they asked for and what the gateway answered."""

    api: str
    faults: FaultLog
    simulator: str = ""
    fundings: list[Funding] = field(default_factory=list)
    calls_acknowledged: list[str] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    during_faults: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, session: requests.Session, method: str, path: str, **kwargs: Any):
        """One request to the gateway; None when it did not answer."""
        asked = time.monotonic()
        try:
            response = session.request(
                method, f"{self.api}{path}", timeout=REQUEST_TIMEOUT_SECONDS, **kwargs
            )
            outcome = str(response.status_code)
        except requests.RequestException as exc:
            response, outcome = None, type(exc).__name__
        with self.lock:
            self.statuses[outcome] += 1
            if self.faults.during(asked):
                self.during_faults["5xx" if outcome.startswith("5") else outcome] += 1
        return response

    def fund(self, caller: Party) -> None:
        amount = random.choice(FUNDING_AMOUNTS_NGN)
        opened = self.request(caller.session, "POST", "/wallet/fund", json={"amount": amount})
        if opened is None or opened.status_code != 201:
            return
        body = opened.json()
        self.simulator = self.simulator or _origin(body["checkoutUrl"])
        reference = quote(body["transactionReference"], safe="")
        paid = requests.post(
            f"{self.simulator}/sim/transactions/{reference}/pay", json={}, timeout=30
        )
        paid.raise_for_status()  # the simulator is not faulted: a refusal is a bench bug
        funding = Funding(
            caller.user_id, body["paymentReference"], body["transactionReference"], amount * 100
        )
        with self.lock:
            self.fundings.append(funding)

    def initiate(self, caller: Party, receiver: Party) -> tuple[str | None, int | None]:
        started = self.request(
            caller.session, "POST", "/calls/initiate", json={"receiverId": receiver.user_id}
        )
        if started is None:
            return None, None
        if started.status_code != 201:
            return None, started.status_code
        call_id = started.json()["callId"]
        with self.lock:
            self.calls_acknowledged.append(call_id)
        return call_id, 201

    def end(self, caller: Party, call_id: str) -> None:
        """Hang up, trying again while the gateway is down (every end answers the same)."""
        for _ in range(20):
            ended = self.request(caller.session, "POST", f"/calls/{call_id}/end")
            if ended is not None and ended.status_code < 500:
                return
            time.sleep(1)

    def talk(self, caller: Party, call_id: str, deadline: float) -> None:
        if random.random() < CUT_OFF_SHARE:
            # Until the money runs out and the call is cut off (or the run ends).
            until = min(deadline, time.monotonic() + CUT_OFF_WAIT_SECONDS)
            while time.monotonic() < until:
                seen = self.request(caller.session, "GET", f"/calls/{call_id}")
                if seen is not None and seen.ok and seen.json()["status"] == "ended":
                    return
                time.sleep(1)
        else:
            time.sleep(min(random.uniform(1, 8), max(0.0, deadline - time.monotonic())))
        self.end(caller, call_id)

    def caller_loop(self, caller: Party, receivers: list[Party], deadline: float) -> None:
        funded_at = float("-inf")
        while time.monotonic() < deadline:
            call_id, status = self.initiate(caller, random.choice(receivers))
            if call_id is not None:
                self.talk(caller, call_id, deadline)
                continue
            if status == 402 and time.monotonic() - funded_at > FUND_AGAIN_AFTER_SECONDS:
                self.fund(caller)
                funded_at = time.monotonic()
            time.sleep(1)

    def run(self, callers: list[Party], receivers: list[Party], seconds: float) -> None:
        deadline = self.faults.started + seconds
        threads = [
            threading.Thread(target=self.caller_loop, args=(caller, receivers, deadline))
            for caller in callers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# ---------------------------------------------------------------- the books


@dataclass
class Books:
    """The database's state of the run's users, and what is wrong with it."""

    credited: set[str]  # transaction references with their credit entry
    uncredited: set[str]  # paid at the simulator, no credit entry (yet)
    calls: list[dict[str, Any]]
    captured: set[str]  # call ids with their capture entry
    holds: dict[str, dict[str, Any]]
    # Open holds of calls never recorded (the initiate died between its hold and its
    # insert, and could not give the hold back): held, not lost, until they expire.
    stranded: list[dict[str, Any]]
    mismatches: list[str]

    def unsettled(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["status"] != "ended" or not c.get("settled")]


def read_books(
    db: Database,
    fundings: list[Funding],
    callers: list[Party],
    receivers: list[Party],
    settings: Settings,
) -> Books:
    reads = LedgerReads(db)
    credit_keys = {credit_key(f.transaction_reference): f.transaction_reference for f in fundings}
    credited = {credit_keys[key] for key in reads.keys_present(list(credit_keys))}
    calls = list(db.calls.find({"callerId": {"$in": [ObjectId(c.user_id) for c in callers]}}))
    capture_keys = {f"call:{c['_id']}:capture": str(c["_id"]) for c in calls}
    captured = {capture_keys[key] for key in reads.keys_present(list(capture_keys))}
    hold_ids = [c["holdId"] for c in calls]
    holds = reads.holds(hold_ids)
    stranded = stranded_holds(reads, callers, set(hold_ids))
    expected = expected_balances(fundings, calls, settings)
    mismatches = []
    for party in [*callers, *receivers]:
        wallet = reads.wallet(wallet_id(party.user_id, "NGN"))
        want = expected.get(party.user_id, 0)
        held = sum(int(h["amount"]) for h in stranded if h["account"] == wallet.account)
        if (wallet.balance, wallet.held) != (want, held):
            mismatches.append(
                f"{wallet.account}: balance {wallet.balance} held {wallet.held}, "
                f"expected {want} held {held}"
            )
    uncredited = set(credit_keys.values()) - credited
    return Books(credited, uncredited, calls, captured, holds, stranded, mismatches)


def stranded_holds(
    reads: LedgerReads, callers: list[Party], recorded: set[str]
) -> list[dict[str, Any]]:
    """Open call holds of the callers' wallets that belong to no recorded call."""
    wallets = [wallet_id(c.user_id, "NGN") for c in callers]
    return [hold for hold in reads.open_holds(wallets) if hold["_id"] not in recorded]


def expected_balances(
    fundings: list[Funding], calls: list[dict[str, Any]], settings: Settings
) -> dict[str, int]:
    """What each user paid in (every paid funding: the simulator took the money), less
    what the settled calls cost (callers), plus what they earned (receivers)."""
    balances: Counter = Counter()
    for funding in fundings:
        balances[funding.user_id] += funding.amount_minor
    for call in calls:
        if call.get("settled"):
            cost = int(call["cost"])
            earned, _ = split_cost(cost, settings.calls.platform_fee_percent)
            balances[str(call["callerId"])] -= cost
            balances[str(call["receiverId"])] += earned
    return dict(balances)


def converged(books: Books) -> bool:
    return not books.uncredited and not books.unsettled() and not books.mismatches


def cost_vs_held(books: Books) -> list[str]:
    """Each settled call captured exactly its cost, never more than its hold held."""
    problems = []
    for call in books.calls:
        hold = books.holds.get(call["holdId"])
        if not call.get("settled") or hold is None:
            continue
        cost, held = int(call["cost"]), int(hold["amount"])
        captured = int(hold.get("captured", -1))
        if hold["status"] != "captured" or captured != cost or cost > held:
            problems.append(
                f"call {call['_id']}: cost {cost}, hold {hold['status']}, "
                f"captured {captured} of {held}"
            )
    return problems


def acknowledged(simulator: str, fundings: list[Funding]) -> set[str]:
    """Transaction references whose webhook the gateway answered 200 (the simulator's log)."""
    deliveries = requests.get(f"{simulator}/sim/webhooks", timeout=30).json()["deliveries"]
    by_reference = {f.transaction_reference for f in fundings} | {
        f.payment_reference for f in fundings
    }
    done = {d["reference"] for d in deliveries if d["state"] == "delivered"} & by_reference
    return {
        f.transaction_reference
        for f in fundings
        if {f.transaction_reference, f.payment_reference} & done
    }


def delivery_attempts(simulator: str) -> Counter:
    deliveries = requests.get(f"{simulator}/sim/webhooks", timeout=30).json()["deliveries"]
    return Counter(str(a.get("status", a.get("error"))) for d in deliveries for a in d["attempts"])


def _pending(books: Books) -> dict[str, int]:
    return {
        "uncredited": len(books.uncredited),
        "unsettledCalls": len(books.unsettled()),
        "balanceMismatches": len(books.mismatches),
    }


def wait_converged(
    read: Callable[[], Books], since: float
) -> tuple[Books, float | None, list[dict[str, Any]]]:
    """Poll the books until they balance. Returns them, when that was (None: never), and
    what was still pending each time it changed (seconds after `since`)."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT_SECONDS
    trace: list[dict[str, Any]] = []
    while True:
        try:
            books = read()
        except pymongo.errors.PyMongoError:
            books = None  # the database is still recovering; ask again
        if books is not None:
            pending = _pending(books)
            if not trace or {k: v for k, v in trace[-1].items() if k != "at"} != pending:
                trace.append({"at": round(time.monotonic() - since, 1), **pending})
            if converged(books):
                return books, time.monotonic(), trace
        if time.monotonic() >= deadline:
            return books or read(), None, trace
        time.sleep(POLL_SECONDS)


# ---------------------------------------------------------------- the run


def bench(seconds: float, callers: int, receivers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as workdir:
        mongo = start_mongo(Path(workdir) / "mongo", test_commands=True)
        try:
            stack = start_stack(Path(workdir), CHAOS_ENV, database_url=mongo.url)
            try:
                wait_ready(stack)
                return measure(stack, mongo, seconds, callers, receivers)
            finally:
                stop_stack(stack)
        finally:
            mongo.stop()


def measure(
    stack: Stack, mongo: EmbeddedServer, seconds: float, callers: int, receivers: int
) -> dict[str, Any]:
    settings = load_settings({**os.environ, **CHAOS_ENV, "DATABASE_URL": mongo.url})
    db = pymongo.MongoClient(stack.database_url).get_default_database()
    timings = Timings()
    paying = [sign_up(stack.api, timings) for _ in range(callers)]
    earning = [sign_up(stack.api, timings) for _ in range(receivers)]

    faults = FaultLog()
    chaos = Chaos(stack, mongo.url, seconds, faults)
    drive = Drive(stack.api, faults)
    threads = chaos.start()
    try:
        drive.run(paying, earning, seconds)
    finally:
        chaos.stop.set()
        for thread in threads:
            thread.join()
    last_fault = faults.last_end or time.monotonic()

    books, at, trace = wait_converged(
        lambda: read_books(db, drive.fundings, paying, earning, settings), last_fault
    )
    acked = acknowledged(drive.simulator, drive.fundings) if drive.simulator else set()
    references = [f.transaction_reference for f in drive.fundings]
    reads = LedgerReads(db)
    credits = reads.entries_per_reference("credit", references)
    captures = reads.entries_per_reference("capture", [f"call:{c['_id']}" for c in books.calls])
    cut_off = [c for c in books.calls if c.get("endReason") == "insufficient_funds"]
    target = settings.inbox_requeue_after_seconds + settings.calls.sweep_interval_seconds
    return {
        "secondsRequested": seconds,
        "callers": callers,
        "receivers": receivers,
        "fundingsPaid": len(drive.fundings),
        "webhooksAcknowledged": len(acked),
        "fundingsCredited": len(books.credited),
        "lost": len(acked - books.credited),
        "paidNotCredited": sorted(books.uncredited),
        "creditedTwice": sorted(r for r, n in credits.items() if n > 1),
        "callsAcknowledged": len(drive.calls_acknowledged),
        "callsStarted": len(books.calls),
        "callsSettledOnce": sum(
            1
            for c in books.calls
            if c.get("settled")
            and str(c["_id"]) in books.captured
            and captures[f"call:{c['_id']}"] == 1
        ),
        "callsCapturedTwice": sorted(r for r, n in captures.items() if n > 1),
        "callsUnsettled": [str(c["_id"]) for c in books.unsettled()],
        "callsCutOff": len(cut_off),
        "strandedHolds": [
            {"hold": h["_id"], "amount": int(h["amount"]), "expiresAt": h["expiresAt"].isoformat()}
            for h in books.stranded
        ],
        "endReasons": dict(Counter(c.get("endReason") or "open" for c in books.calls)),
        "costVsHeldProblems": cost_vs_held(books),
        "balanceMismatches": books.mismatches,
        "invariantViolations": [v.as_dict() for v in check_invariants(db)],
        "converged": at is not None,
        "convergenceSeconds": None if at is None else round(max(0.0, at - last_fault), 1),
        "convergenceTargetSeconds": target,
        "convergedWithinTarget": at is not None and at - last_fault <= target,
        # What was still pending, each time that changed, in seconds after the last fault.
        "convergenceTrace": trace,
        "http": {
            "answers": dict(drive.statuses),
            "http5xxDuringFaults": drive.during_faults["5xx"],
            "gateway500Causes": gateway_500_causes(stack.log),
            "duringFaults": dict(drive.during_faults),
        },
        "webhookAttempts": dict(delivery_attempts(drive.simulator)) if drive.simulator else {},
        "faults": dict(faults.counts),
        "launcherRestarts": launcher_restarts(stack.log),
        "faultTimeline": sorted(faults.timeline, key=lambda f: f["at"]),
        "config": {
            "env": CHAOS_ENV,
            "brokerVisibilityTimeoutSeconds": settings.broker_visibility_timeout_seconds,
            "inboxRequeueAfterSeconds": settings.inbox_requeue_after_seconds,
            "callSweepIntervalSeconds": settings.calls.sweep_interval_seconds,
            "workerConcurrency": worker_concurrency(),
            "cpuCount": os.cpu_count(),
        },
    }


def launcher_restarts(log: Path) -> dict[str, int]:
    """The processes the launcher restarted, from its log lines ("<name> restarted")."""
    restarted: Counter = Counter()
    for line in log.read_text(errors="replace").splitlines():
        words = line.split("| ", 1)
        if words[0].strip() == "devstack" and len(words) == 2 and " restarted (pid " in words[1]:
            restarted[words[1].split()[0]] += 1
    return dict(restarted)


def gateway_500_causes(log: Path) -> dict[str, int]:
    """The exception types behind the gateway's 500s (its `unhandled_error` lines)."""
    causes: Counter = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if "unhandled_error" in line and "error_type=" in line:
            causes[line.split("error_type=", 1)[1].split()[0]] += 1
    return dict(causes)


def failures(report: dict[str, Any]) -> list[str]:
    checks = {
        "lost": report["lost"],
        "paid but not credited": len(report["paidNotCredited"]),
        "credited twice": len(report["creditedTwice"]),
        "captured twice": len(report["callsCapturedTwice"]),
        "unsettled calls": len(report["callsUnsettled"]),
        "cost vs held": len(report["costVsHeldProblems"]),
        "balance mismatches": len(report["balanceMismatches"]),
        "invariant violations": len(report["invariantViolations"]),
        "not converged": int(not report["converged"]),
    }
    return [f"{name}: {count}" for name, count in checks.items() if count]


def summary(report: dict[str, Any]) -> str:
    faults = ", ".join(f"{name} {count}" for name, count in report["faults"].items())
    return "\n".join(
        [
            f"fundings: {report['fundingsPaid']} paid, {report['webhooksAcknowledged']} "
            f"webhooks acknowledged, {report['fundingsCredited']} credited, "
            f"{report['lost']} lost, {len(report['creditedTwice'])} credited twice",
            f"calls: {report['callsStarted']} started, {report['callsSettledOnce']} settled "
            f"once, {report['callsCutOff']} cut off, {len(report['callsUnsettled'])} unsettled, "
            f"{len(report['strandedHolds'])} holds of unrecorded calls left to expire",
            f"balances: {len(report['balanceMismatches'])} mismatches; cost vs held: "
            f"{len(report['costVsHeldProblems'])} problems; invariant violations: "
            f"{len(report['invariantViolations'])}",
            f"converged {report['convergenceSeconds']} s after the last fault "
            f"(target {report['convergenceTargetSeconds']} s); "
            f"5xx during faults: {report['http']['http5xxDuringFaults']}",
            f"faults: {faults}; restarted by the launcher: {report['launcherRestarts']}",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("CHAOS_SECONDS") or 90)
    )
    parser.add_argument("--callers", type=int, default=24)
    parser.add_argument("--receivers", type=int, default=6)
    args = parser.parse_args()
    report = bench(args.seconds, args.callers, args.receivers)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(summary(report))
    problems = failures(report)
    verdict = "; ".join(problems) if problems else "nothing lost or doubled"
    print(f"report written to {REPORT}; {verdict}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
