"""The harness the benchmarks share: the whole stack started with the launcher, timed
HTTP requests, and the signed-up, funded users a benchmark drives.

`start_stack` runs the launcher (`python -m services.devstack`: embedded SecantusDB and
Valkey, gunicorn, a Celery worker per queue and beat) on free ports in a temporary
directory; `wait_ready` waits for the API and every queue's worker; `stop_stack` stops
it. Users sign up over HTTP; `funded_pairs` funds callers directly through the ledger
(funding is not what the call benchmarks measure). A connect fee of 1 NGN makes every call
move money (a zero-second call costs only it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from services.devstack import read_launch_config, readiness
from services.embedded import free_port
from shared.ledger import Ledger, wallet_id
from shared.mongo import get_db
from shared.redis_conn import get_redis

READY_TIMEOUT_SECONDS = 120.0
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


# ---------------------------------------------------------------- the users and calls


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
    # Signing everyone up can outlast gunicorn's keep-alive (5 s): a session reusing a
    # connection the server is closing that moment gets "connection reset" on its next
    # request. They start the measured part on fresh connections.
    for party in (party for pair in pairs for party in pair):
        party.session.close()
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
