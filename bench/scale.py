"""Scale benchmark: the user journey and each periodic job, on the empty stack and again
once its database holds a year of history.

    python -m bench.scale [--users 100000] [--postings 1000000] [--call-share 0.5]
                          [--repetitions 20] [--quick]

Starts the whole stack with the launcher (bench/harness: embedded SecantusDB and
Valkey, gunicorn, a Celery worker per queue, beat, the Monnify simulator) on free ports
in a temporary directory, and measures it empty. Then, stopping nothing, bulk-loads the
same database (bench/scale_data.py: users with wallets, fundings, webhook events, calls,
holds, journal entries with --postings postings, their audit chain) and measures again.

The journey, --repetitions times, one fresh user at a time, each step timed over HTTP:
signup; POST /wallet/fund; paid -> credited (the simulator's /sim pay control sends the
signed webhook; until GET /wallet/balance shows the money); GET /wallet/balance; the
first page of GET /wallet/transactions?limit=20 and the next page from its Link header;
POST /calls/initiate; POST /calls/<id>/end; end -> receiver paid (until the receiver's
balance shows its share); GET /calls/history?limit=20. So that a second history page
exists, each journey user first gets HISTORY_SEED small credits straight through the
ledger (untimed, the same in both phases).

The periodic jobs, one run each, the way beat runs them: sent by name to the stack's
broker (celery send_task) and timed until their result is back. The bench holds every
job's run-alone lock (services/worker/periodic.py) except while it runs that job, so
beat's own runs skip instead of overlapping a measurement or the load.

A step or job slower than its cap (minutes) is reported as timed out; a job is then
revoked, and the journey phase stops at that repetition. Targets: every journey step
loaded within 2x of empty at p50 and 3x at p90, every job under 1 s loaded. Writes
bench/reports/scale.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import redis
import requests
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from redis.lock import Lock

from bench import scale_data
from bench.harness import (
    CONNECT_FEE,
    REQUEST_TIMEOUT_SECONDS,
    Party,
    Stack,
    Timings,
    end_call,
    initiate_call,
    percentile,
    sign_up,
    start_stack,
    stop_stack,
    wait_ready,
    worker_concurrency,
)
from services.worker.periodic import LOCK_PREFIX
from shared.audit import SEAL_TASK
from shared.calls.model import SWEEP_TASK
from shared.funding.jobs import DAILY_REPORT_TASK, RECONCILE_TASK, REQUEUE_INBOX_TASK
from shared.ledger import Ledger, wallet_id
from shared.ledger.jobs import CHECK_INVARIANTS_TASK, EXPIRE_HOLDS_TASK
from shared.logs import configure_logging
from shared.mongo import get_db
from shared.redis_conn import get_redis
from shared.settings import load_settings
from shared.task_queues import TASK_QUEUES, configure_queues

REPORT = Path(__file__).resolve().parent / "reports" / "scale.json"
FUND_AMOUNT_NGN = 5000
HISTORY_SEED = 24  # credits before the journey: more than a page of 20
SEED_AMOUNT = 100  # minor units each
POLL_SECONDS = 0.02
WAIT_TIMEOUT_SECONDS = REQUEST_TIMEOUT_SECONDS  # paid -> credited, end -> paid
JOB_TIMEOUT_SECONDS = 600.0
LOCK_HOLD_SECONDS = 4 * 3600
DRAIN_SECONDS = 0.5  # the bench's whole run, load included
P50_TARGET, P90_TARGET, JOB_TARGET_MS, LOAD_TARGET_SECONDS = 2.0, 3.0, 1000.0, 900.0
QUICK = {"users": 5_000, "postings": 50_000}
JOBS = (
    EXPIRE_HOLDS_TASK,
    CHECK_INVARIANTS_TASK,
    SEAL_TASK,
    REQUEUE_INBOX_TASK,
    RECONCILE_TASK,
    SWEEP_TASK,
    DAILY_REPORT_TASK,
)
SIGNUP = "POST /auth/signup"
STEPS = (
    SIGNUP,
    "POST /wallet/fund",
    "paid -> credited",
    "GET /wallet/balance",
    "GET /wallet/transactions?limit=20",
    "GET /wallet/transactions (next page)",
    "POST /calls/initiate",
    "POST /calls/<id>/end",
    "end -> receiver paid",
    "GET /calls/history?limit=20",
)


class TimedOut(Exception):
    """A step or job ran past its cap; the message names it."""


@dataclass
class Phase:
    """What one phase (empty or loaded) measured."""

    timings: Timings = field(default_factory=Timings)
    timed_out: str | None = None  # the journey step that hit its cap, if one did
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)


# ---------------------------------------------------------------- the journey


class Journey:
    def __init__(self, stack: Stack):
        self.api = stack.api
        self.ledger = Ledger(get_db(stack.database_url), get_redis(stack.redis_url))
        self.simulator: str | None = None  # learnt from the first checkout URL

    def run(self, timings: Timings) -> None:
        caller = sign_up(self.api, timings)
        receiver = sign_up(self.api, Timings())  # only the caller's signup is a sample
        self._seed_history(caller)
        self._fund(caller, timings)
        self._read_wallet(caller, timings)
        call_id = initiate_call(self.api, caller, receiver, timings)
        began = time.perf_counter()
        end_call(self.api, caller, call_id, timings)
        _wait_until(lambda: self._balance(receiver) > 0, "end -> receiver paid")
        timings.samples.setdefault("end -> receiver paid", []).append(time.perf_counter() - began)
        self._get(caller, "GET /calls/history?limit=20", "/calls/history?limit=20", timings)

    def _seed_history(self, party: Party) -> None:
        account = wallet_id(party.user_id, "NGN")
        for number in range(HISTORY_SEED):
            self.ledger.credit(f"scale:seed:{party.user_id}:{number}", account, SEED_AMOUNT)

    def _fund(self, party: Party, timings: Timings) -> None:
        opened = timings.timed(
            "POST /wallet/fund",
            lambda: party.session.post(
                f"{self.api}/wallet/fund",
                json={"amount": FUND_AMOUNT_NGN},
                timeout=REQUEST_TIMEOUT_SECONDS,
            ),
        )
        opened.raise_for_status()
        body = opened.json()
        if self.simulator is None:  # the checkout page lives on the simulator
            parts = urlsplit(body["checkoutUrl"])
            self.simulator = f"{parts.scheme}://{parts.netloc}"
        expected = self._balance(party) + FUND_AMOUNT_NGN * 100
        began = time.perf_counter()
        reference = quote(body["transactionReference"], safe="")
        paid = requests.post(
            f"{self.simulator}/sim/transactions/{reference}/pay",
            json={},  # pays in full and sends the signed webhook
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        paid.raise_for_status()
        _wait_until(lambda: self._balance(party) >= expected, "paid -> credited")
        timings.samples.setdefault("paid -> credited", []).append(time.perf_counter() - began)

    def _read_wallet(self, party: Party, timings: Timings) -> None:
        self._get(party, "GET /wallet/balance", "/wallet/balance", timings)
        first = self._get(
            party, "GET /wallet/transactions?limit=20", "/wallet/transactions?limit=20", timings
        )
        next_url = first.links["next"]["url"]
        self._get(party, "GET /wallet/transactions (next page)", next_url, timings)

    def _get(self, party: Party, step: str, path: str, timings: Timings) -> requests.Response:
        url = path if path.startswith("http") else f"{self.api}{path}"
        response = timings.timed(
            step, lambda: party.session.get(url, timeout=REQUEST_TIMEOUT_SECONDS)
        )
        response.raise_for_status()
        return response

    def _balance(self, party: Party) -> int:
        response = party.session.get(f"{self.api}/wallet/balance", timeout=REQUEST_TIMEOUT_SECONDS)
        response.raise_for_status()
        return round(response.json()["balance"] * 100)


def _wait_until(done: Callable[[], bool], step: str) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_SECONDS
    while not done():
        if time.monotonic() > deadline:
            raise TimedOut(step)
        time.sleep(POLL_SECONDS)


def run_journeys(journey: Journey, repetitions: int, phase: Phase) -> None:
    """The journey `repetitions` times; stops at the first step that hits its cap."""
    for _ in range(repetitions):
        try:
            journey.run(phase.timings)
        except TimedOut as exc:
            phase.timed_out = str(exc)
            return
        except requests.Timeout:
            phase.timed_out = _step_in_flight(phase.timings)
            return


def _step_in_flight(timings: Timings) -> str:
    """The step a request timed out in: the first with the fewest samples."""
    counts = {step: len(timings.samples.get(step, [])) for step in STEPS}
    return min(STEPS, key=lambda step: counts[step])


# ---------------------------------------------------------------- periodic jobs


class PeriodicJobs:
    """Runs beat's jobs on demand through the broker. Between runs the bench holds each
    job's run-alone lock, so beat's scheduled runs skip."""

    def __init__(self, stack: Stack):
        self.app = Celery("scale-bench", broker=stack.redis_url, backend=stack.redis_url)
        self.app.conf.update(task_serializer="json", result_serializer="json")
        configure_queues(self.app)
        self.redis = redis.Redis.from_url(stack.redis_url)
        self.locks = {name: self._lock(name) for name in JOBS}
        for lock in self.locks.values():
            lock.acquire(blocking_timeout=JOB_TIMEOUT_SECONDS)

    def _lock(self, name: str) -> Lock:
        return self.redis.lock(LOCK_PREFIX + name, timeout=LOCK_HOLD_SECONDS)

    def run(self, name: str) -> dict[str, Any]:
        """One run, timed from sending to its result."""
        self._drain(TASK_QUEUES[name])
        self.locks[name].release()
        try:
            seconds, value, result = self._run_once(name)
        except CeleryTimeout:
            # Revoked; the killed run's own lock keeps beat's runs out from here on.
            return {"ms": None, "outcome": "timed out", "result": None}
        self.locks[name] = self._lock(name)
        self.locks[name].acquire(blocking_timeout=JOB_TIMEOUT_SECONDS)
        outcome = "ok" if result.successful() else f"failed: {value!r}"
        return {"ms": round(seconds * 1000, 1), "outcome": outcome, "result": _jsonable(value)}

    def _drain(self, queue: str) -> None:
        """Wait until beat's runs sent while the last job ran have been taken (and have
        skipped, the lock being held): one left ahead of ours would take the lock first
        and do the work, leaving ours nothing to do and a wait for it to time."""
        deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
        while self.redis.llen(queue) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(DRAIN_SECONDS)  # the one a worker may have reserved, skipping

    def _run_once(self, name: str) -> tuple[float, Any, AsyncResult]:
        """(seconds, value, result) of a run that did the work: one that answers None
        found beat's run holding the lock, and is sent again."""
        while True:
            began = time.perf_counter()
            result = self.app.send_task(name)
            try:
                value = result.get(timeout=JOB_TIMEOUT_SECONDS, propagate=False)
            except CeleryTimeout:
                result.revoke(terminate=True)
                raise
            if value is not None or not result.successful():
                return time.perf_counter() - began, value, result
            time.sleep(1)

    def run_all(self, phase: Phase) -> None:
        for name in JOBS:
            phase.jobs[name] = self.run(name)
            print(f"  {name}: {phase.jobs[name]['ms']} ms ({phase.jobs[name]['outcome']})")


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


# ---------------------------------------------------------------- the run


def measure_phase(stack: Stack, jobs: PeriodicJobs, repetitions: int, label: str) -> Phase:
    print(f"{label}: {repetitions} journeys", flush=True)
    journey = Journey(stack)
    # One untimed journey first: the first requests of a phase pay for cold processes
    # and caches (and, once loaded, for the rebuilt indexes' first reads).
    run_journeys(journey, 1, Phase())
    phase = Phase()
    run_journeys(journey, repetitions, phase)
    print(f"{label}: periodic jobs", flush=True)
    jobs.run_all(phase)
    return phase


def bench(sizes: scale_data.Sizes, repetitions: int) -> dict[str, Any]:
    calls = load_settings({**os.environ, "CALL_CONNECT_FEE": CONNECT_FEE}).calls
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as workdir:
        stack = start_stack(Path(workdir))
        try:
            wait_ready(stack)
            jobs = PeriodicJobs(stack)
            empty = measure_phase(stack, jobs, repetitions, "empty")
            print(f"loading {sizes.users:,} users, {sizes.postings:,} postings", flush=True)
            began = time.perf_counter()
            documents = scale_data.load(
                get_db(stack.database_url), get_redis(stack.redis_url), sizes, calls
            )
            load_seconds = time.perf_counter() - began
            print(f"loaded {sum(documents.values()):,} documents in {load_seconds:.0f} s")
            loaded = measure_phase(stack, jobs, repetitions, "loaded")
        finally:
            stop_stack(stack)
    return report(sizes, repetitions, empty, loaded, load_seconds, documents)


# ---------------------------------------------------------------- the report


def _ms(values: list[float], fraction: float) -> float | None:
    return round(percentile(values, fraction) * 1000, 1) if values else None


def _ratio(loaded: float | None, empty: float | None) -> float | None:
    return round(loaded / empty, 2) if loaded is not None and empty else None


def journey_row(step: str, empty: Phase, loaded: Phase) -> dict[str, Any]:
    before = empty.timings.samples.get(step, [])
    after = loaded.timings.samples.get(step, [])
    row: dict[str, Any] = {
        "emptyP50Ms": _ms(before, 0.5),
        "loadedP50Ms": _ms(after, 0.5),
        "emptyP90Ms": _ms(before, 0.9),
        "loadedP90Ms": _ms(after, 0.9),
        "samples": {"empty": len(before), "loaded": len(after)},
        "timedOut": {"empty": empty.timed_out == step, "loaded": loaded.timed_out == step},
    }
    row["p50Ratio"] = _ratio(row["loadedP50Ms"], row["emptyP50Ms"])
    row["p90Ratio"] = _ratio(row["loadedP90Ms"], row["emptyP90Ms"])
    row["meetsTarget"] = (
        not row["timedOut"]["loaded"]
        and row["p50Ratio"] is not None
        and row["p50Ratio"] <= P50_TARGET
        and row["p90Ratio"] is not None
        and row["p90Ratio"] <= P90_TARGET
    )
    return row


def job_row(name: str, empty: Phase, loaded: Phase) -> dict[str, Any]:
    before, after = empty.jobs[name], loaded.jobs[name]
    return {
        "emptyMs": before["ms"],
        "loadedMs": after["ms"],
        "ratio": _ratio(after["ms"], before["ms"]),
        "outcome": {"empty": before["outcome"], "loaded": after["outcome"]},
        "result": {"empty": before["result"], "loaded": after["result"]},
        "meetsTarget": after["ms"] is not None and after["ms"] < JOB_TARGET_MS,
    }


def report(
    sizes: scale_data.Sizes,
    repetitions: int,
    empty: Phase,
    loaded: Phase,
    load_seconds: float,
    documents: dict[str, int],
) -> dict[str, Any]:
    journey = {step: journey_row(step, empty, loaded) for step in STEPS}
    jobs = {name: job_row(name, empty, loaded) for name in JOBS}
    invariants = loaded.jobs[CHECK_INVARIANTS_TASK]["result"]
    return {
        "generatedAt": datetime.now(UTC).isoformat(),
        "sizes": {"users": sizes.users, "postings": sizes.postings, "callShare": sizes.call_share},
        "repetitions": repetitions,
        "loadSeconds": round(load_seconds, 1),
        "documents": documents,
        "journey": journey,
        "periodicJobs": jobs,
        "periodicJobsRunAs": "celery send_task by name to the stack's broker, result awaited",
        "invariantViolations": len(invariants) if isinstance(invariants, list) else None,
        "targets": {
            "journeyP50Ratio": P50_TARGET,
            "journeyP90Ratio": P90_TARGET,
            "periodicJobLoadedMs": JOB_TARGET_MS,
            "loadSeconds": LOAD_TARGET_SECONDS,
            "missed": [f"journey: {s}" for s, r in journey.items() if not r["meetsTarget"]]
            + [f"job: {n}" for n, r in jobs.items() if not r["meetsTarget"]]
            + (["load"] if load_seconds > LOAD_TARGET_SECONDS else []),
        },
        "config": {
            "historySeedCredits": HISTORY_SEED,
            "stepCapSeconds": REQUEST_TIMEOUT_SECONDS,
            "jobCapSeconds": JOB_TIMEOUT_SECONDS,
            "workerConcurrency": worker_concurrency(),
            "cpuCount": os.cpu_count(),
        },
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{'journey step':38} {'p50 empty':>10} {'loaded':>9} {'x':>6}", end="")
    print(f" {'p90 empty':>10} {'loaded':>9} {'x':>6}  within target")
    for step, row in result["journey"].items():
        p50 = [_cell(row[k]) for k in ("emptyP50Ms", "loadedP50Ms", "p50Ratio")]
        p90 = [_cell(row[k]) for k in ("emptyP90Ms", "loadedP90Ms", "p90Ratio")]
        verdict = "TIMED OUT" if row["timedOut"]["loaded"] else _yes(row["meetsTarget"])
        print(f"{step:38} {p50[0]:>10} {p50[1]:>9} {p50[2]:>6}", end="")
        print(f" {p90[0]:>10} {p90[1]:>9} {p90[2]:>6}  {verdict}")
    print(f"\n{'periodic job':38} {'empty ms':>10} {'loaded ms':>9} {'x':>6}  under 1 s")
    for name, row in result["periodicJobs"].items():
        cells = [_cell(row[k]) for k in ("emptyMs", "loadedMs", "ratio")]
        verdict = _yes(row["meetsTarget"]) if row["loadedMs"] is not None else "TIMED OUT"
        print(f"{name:38} {cells[0]:>10} {cells[1]:>9} {cells[2]:>6}  {verdict}")
    print(
        f"\nload {result['loadSeconds']} s, {sum(result['documents'].values()):,} documents;"
        f" invariant violations: {result['invariantViolations']}"
    )


def _yes(met: bool) -> str:
    return "yes" if met else "NO"


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--postings", type=int, default=1_000_000)
    parser.add_argument("--call-share", type=float, default=0.5, help="of loaded movements")
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5,000 users, 50,000 postings")
    args = parser.parse_args()
    configure_logging(json=False, level="WARNING")  # the seeding ledger's lines are noise
    size = QUICK if args.quick else {"users": args.users, "postings": args.postings}
    sizes = scale_data.Sizes(size["users"], size["postings"], args.call_share)
    result = bench(sizes, args.repetitions)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"report written to {REPORT}")
    # Missed targets are findings, in the report; a loaded ledger that broke is a failure.
    return 0 if result["invariantViolations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
