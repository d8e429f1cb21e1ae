"""Reads benchmark: the authenticated reads every app screen makes, against the gateway's
own ceiling, with many keep-alive clients for a fixed time.

    python -m bench.reads [--rounds 5] [--slice 2] [--connections 16] [--users 16]
                          [--client auto|wrk|python]

Starts the whole stack with the launcher (as bench/harness does: embedded SecantusDB and
Valkey, gunicorn with its defaults, a Celery worker and beat) on free ports in a
temporary directory, signs users up over HTTP and credits each wallet through the ledger
(`Ledger.credit`, so every history page is full and has a next page). Then
`--connections` concurrent keep-alive connections hit, one after the other,

    GET /healthz                          the gateway's ceiling: no auth, no database
    GET /wallet/balance                   auth + one wallet read
    GET /wallet/transactions?limit=20     auth + one history page

for `--slice` seconds each, every request carrying the token of one of the users in
turn, and that `--rounds` times (after an unmeasured warm-up round): interleaved, so
that whatever else the machine is doing weighs on the three alike. Reports per endpoint
requests per second (all rounds), latency p50/p90/p99 (the median of the rounds' own),
max, the non-2xx count, and `balanceVsHealthz` (the balance rate over the healthz rate),
to bench/reports/reads.json.

The client shares the machine's cores with the server, so it must be cheap: `wrk` when it
is on PATH (apt-get install wrk), else a single-threaded asyncio client over raw
sockets (`--client python`, always available).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from bench.harness import Stack, percentile, start_stack, stop_stack, summary_ms, wait_ready
from shared.ledger import Ledger, wallet_id
from shared.logs import configure_logging
from shared.mongo import get_db
from shared.redis_conn import get_redis

REPORT = Path(__file__).resolve().parent / "reports" / "reads.json"
ENDPOINTS = ("/healthz", "/wallet/balance", "/wallet/transactions?limit=20")
CREDITS_PER_USER = 25  # more than a page of 20, so history pages are full
CREDIT_KOBO = 10_000
LATENCIES = ("p50_ms", "p90_ms", "p99_ms")


@dataclass
class Result:
    """One slice of one endpoint: what the client saw."""

    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds
    non_2xx: int = 0
    errors: int = 0  # connections lost, timeouts


def slice_report(result: Result) -> dict[str, Any]:
    values = result.latencies or [0.0]
    return {
        "requests": len(result.latencies),
        "seconds": result.seconds,
        **summary_ms(values),
        "p90_ms": round(percentile(values, 0.90) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
        "non2xx": result.non_2xx,
        "socketErrors": result.errors,
    }


def endpoint_report(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds of one endpoint together: totals, and the median of their percentiles."""
    requests_ = sum(one["requests"] for one in slices)
    return {
        "requests": requests_,
        "requestsPerSecond": round(requests_ / sum(one["seconds"] for one in slices), 1),
        **{name: statistics.median(one[name] for one in slices) for name in LATENCIES},
        "max_ms": max(one["max_ms"] for one in slices),
        "non2xx": sum(one["non2xx"] for one in slices),
        "socketErrors": sum(one["socketErrors"] for one in slices),
        "roundsRequestsPerSecond": [round(one["requests"] / one["seconds"]) for one in slices],
    }


# ---------------------------------------------------------------- setup


def sign_up_users(api: str, count: int) -> list[dict[str, str]]:
    """`count` users signed up over HTTP: their ids and access tokens."""
    users = []
    with requests.Session() as session:
        for _ in range(count):
            email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
            response = session.post(
                f"{api}/auth/signup", json={"email": email, "password": "bench-password"}
            )
            response.raise_for_status()
            body = response.json()
            users.append({"id": body["user"]["id"], "token": body["access_token"]})
    return users


def fund_history(stack: Stack, users: list[dict[str, str]]) -> None:
    """Credits through the ledger's public API, so each wallet has a history to page."""
    ledger = Ledger(get_db(stack.database_url), get_redis(stack.redis_url))
    for user in users:
        account = wallet_id(user["id"], "NGN")
        for n in range(CREDITS_PER_USER):
            ledger.credit(f"bench:reads:{user['id']}:{n}", account, CREDIT_KOBO)


# ---------------------------------------------------------------- the wrk client

# Each request carries the next user's token; done() prints the figures as one JSON line.
WRK_SCRIPT = """
local tokens = {%(tokens)s}
local next_token = 0
request = function()
  next_token = next_token %% #tokens + 1
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. tokens[next_token]})
end
done = function(summary, latency, _requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%%d,"duration_us":%%d,"non2xx":%%d,"errors":%%d,' ..
    '"p50":%%d,"p90":%%d,"p99":%%d,"max":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def run_wrk(url: str, tokens: list[str], connections: int, seconds: float, workdir: Path) -> dict:
    script = workdir / "reads.lua"  # tokens stay in a file, off the command line
    quoted = ", ".join(json.dumps(token) for token in tokens)
    script.write_text(WRK_SCRIPT % {"tokens": quoted})
    command = [
        "wrk",
        f"--threads={min(2, connections)}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=10s",
        f"--script={script}",
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    return {
        "requests": figures["requests"],
        "seconds": figures["duration_us"] / 1e6,
        **{f"{name}_ms": round(figures[name] / 1000, 1) for name in ("p50", "p90", "p99", "max")},
        "non2xx": figures["non2xx"],
        "socketErrors": figures["errors"],
    }


# ---------------------------------------------------------------- the pure-Python client


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Reads one HTTP/1.1 response (the gateway always sends Content-Length); its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(lines[0].split(" ", 2)[1])


async def _connection(host: str, port: int, requests_: list[bytes], deadline: float, out: Result):
    reader = writer = None
    sent = 0
    while time.perf_counter() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            writer.write(requests_[sent % len(requests_)])
            sent += 1
            status = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            out.errors += 1  # the server closed a keep-alive connection: open another
            writer = None
            continue
        out.latencies.append(time.perf_counter() - started)
        out.non_2xx += not 200 <= status < 300
    if writer is not None:
        writer.close()


async def _run_python(url: str, tokens: list[str], connections: int, seconds: float) -> Result:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    requests_ = [
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
        for token in tokens
    ]
    result = Result(seconds)
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _connection(parts.hostname, parts.port, requests_[i:] + requests_[:i], deadline, result)
            for i in range(connections)
        )
    )
    result.seconds = time.perf_counter() - started
    return result


def run_python(url: str, tokens: list[str], connections: int, seconds: float, _w: Path) -> dict:
    return slice_report(asyncio.run(_run_python(url, tokens, connections, seconds)))


Client = Callable[[str, list[str], int, float, Path], dict]


def pick_client(name: str) -> tuple[str, Client]:
    if name == "wrk" or (name == "auto" and shutil.which("wrk")):
        return "wrk", run_wrk
    return "python", run_python


# ---------------------------------------------------------------- the run


def measure(stack: Stack, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    users = sign_up_users(stack.api, args.users)
    fund_history(stack, users)
    tokens = [user["token"] for user in users]
    client_name, client = pick_client(args.client)
    slices: dict[str, list[dict[str, Any]]] = {path: [] for path in ENDPOINTS}
    for round_ in range(args.rounds + 1):
        for path in ENDPOINTS:
            one = client(stack.api + path, tokens, args.connections, args.slice, workdir)
            if round_:  # the first round only warms up
                slices[path].append(one)
    endpoints = {f"GET {path}": endpoint_report(slices[path]) for path in ENDPOINTS}
    healthz = endpoints["GET /healthz"]["requestsPerSecond"]
    balance = endpoints["GET /wallet/balance"]["requestsPerSecond"]
    return {
        "client": client_name,
        "connections": args.connections,
        "users": args.users,
        "rounds": args.rounds,
        "sliceSeconds": args.slice,
        "endpoints": endpoints,
        "balanceVsHealthz": round(balance / healthz, 2) if healthz else None,
        "config": {
            "webConcurrency": os.environ.get("WEB_CONCURRENCY", "default"),
            "gunicornThreads": os.environ.get("GUNICORN_THREADS", "default"),
            "cpuCount": os.cpu_count(),
        },
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-reads-") as workdir:
        stack = start_stack(Path(workdir))
        try:
            wait_ready(stack)
            return measure(stack, args, Path(workdir))
        finally:
            stop_stack(stack)


def main() -> int:
    configure_logging(json=False, level="WARNING")  # not a line per ledger credit
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slice", type=float, default=2.0, help="seconds per endpoint a round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    report = bench(parser.parse_args())
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"report written to {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
