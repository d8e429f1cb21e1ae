"""`make run`: the whole stack in the foreground, on embedded servers where none are given.

    python -m services.devstack

Starts SecantusDB and Valkey when DATABASE_URL / REDIS_URL are unset, runs the
migrations (`python -m services.manage migrate`), then the gateway
under gunicorn, one Celery worker per queue (shared/task_queues.py), Celery beat, Flower
and the Monnify simulator, each in
its own process group with its output prefixed by its name. Ctrl-C or SIGTERM stops
every child (SIGTERM to each group, SIGKILL after a grace period) and then the servers.

A supervisor: a process that dies on its own (a service, or an embedded server) is
restarted after an exponential backoff, each restart logged; one that dies
RESTART_LIMIT times within RESTART_WINDOW_SECONDS brings the whole stack down with a
non-zero exit, since restarting it again would only hide the fault.

Launcher-only variables (the services never read them): DEVSTACK_DATA_DIR,
EMBEDDED_MONGO_PORT, EMBEDDED_REDIS_PORT, WORKER_CALLS_CONCURRENCY,
WORKER_PAYMENTS_CONCURRENCY, WORKER_HOUSEKEEPING_CONCURRENCY. Flower reads FLOWER_PORT,
FLOWER_BASIC_AUTH and FLOWER_ADDRESS itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests

from services.embedded import (
    EmbeddedServer,
    EmbeddedServerError,
    free_port,
    start_mongo,
    start_redis,
)
from shared.metrics import MULTIPROC_ENV, reset_directory
from shared.settings import ConfigError, Settings, load_settings
from shared.task_queues import CALLS, HOUSEKEEPING, PAYMENTS, QUEUES

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_DIR = Path(sys.executable).parent
NAME_WIDTH = len("worker-housekeeping") + 1
STOP_GRACE_SECONDS = 15.0
SUPERVISE_INTERVAL_SECONDS = 0.5
READY_REPORT_INTERVAL_SECONDS = 15.0
# Restarts: 1 s, 2 s, 4 s, ... up to 30 s after each crash; the fifth crash within two
# minutes stops the stack (a process that can't stay up needs a person, not a loop).
RESTART_BACKOFF_SECONDS = 1.0
RESTART_BACKOFF_MAX_SECONDS = 30.0
RESTART_LIMIT = 5
RESTART_WINDOW_SECONDS = 120.0
CELERY = ("celery", "-A", "services.worker.celery_app")
# Development defaults; the README documents them. Never printed by the launcher.
DEV_DEFAULTS = {
    "FLOWER_PORT": "5555",
    "FLOWER_BASIC_AUTH": "flower:flower-dev-password",
    "FLOWER_ADDRESS": "127.0.0.1",
    "BIND_HOST": "127.0.0.1",
}


class LaunchError(Exception):
    """The stack cannot start; the message is the one line the user sees."""


# Each queue's worker: the variable naming its pool processes, and their number when it
# is unset (small enough for a 2-core machine to run them all; README, Running it).
CONCURRENCY = {
    CALLS: ("WORKER_CALLS_CONCURRENCY", 2),
    PAYMENTS: ("WORKER_PAYMENTS_CONCURRENCY", 2),
    HOUSEKEEPING: ("WORKER_HOUSEKEEPING_CONCURRENCY", 1),
}


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    # Its own PROMETHEUS_MULTIPROC_DIR, emptied at each start (README, Operations).
    metrics_dir: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LaunchConfig:
    data_dir: Path
    mongo_port: int | None
    redis_port: int | None
    worker_concurrency: Mapping[str, int]  # queue -> pool processes


def worker_metrics_ports(base: int) -> dict[str, int]:
    """One exporter per worker, on consecutive ports from WORKER_METRICS_PORT (0: none)."""
    return {queue: base + index if base else 0 for index, queue in enumerate(QUEUES)}


def worker_spec(config: LaunchConfig, queue: str, metrics_port: int) -> ProcessSpec:
    """The worker that drains one queue, named after it (Flower shows calls@host...)."""
    options = ("-E", "--loglevel", "INFO", "-Q", queue, "-n", f"{queue}@%h")
    concurrency = ("--concurrency", str(config.worker_concurrency[queue]))
    return ProcessSpec(
        f"worker-{queue}",
        (*CELERY, "worker", *options, *concurrency),
        metrics_dir=config.data_dir / "metrics" / f"worker-{queue}",
        env={"WORKER_METRICS_PORT": str(metrics_port)},
    )


MIGRATE = ProcessSpec("migrate", ("python", "-m", "services.manage", "migrate"))


def process_specs(config: LaunchConfig, worker_metrics_port: int) -> list[ProcessSpec]:
    """The stack's processes; docker-compose runs the same entry points."""
    ports = worker_metrics_ports(worker_metrics_port)
    workers = [worker_spec(config, queue, ports[queue]) for queue in QUEUES]
    beat_options = (
        "--loglevel",
        "INFO",
        "--schedule",
        str(config.data_dir / "celerybeat-schedule"),
    )
    return [
        ProcessSpec(
            "api",
            ("gunicorn", "-c", "deploy/gunicorn.conf.py", "services.api.wsgi:app"),
            metrics_dir=config.data_dir / "metrics" / "api",
        ),
        *workers,
        ProcessSpec("beat", (*CELERY, "beat", *beat_options)),
        ProcessSpec("flower", (*CELERY, "flower")),
        ProcessSpec("monnify-sim", ("python", "-m", "services.monnify_sim")),
    ]


# ---------------------------------------------------------------- configuration


def _optional_port(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "")
    if raw == "":
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise LaunchError(f"configuration error: {name} is malformed: must be a TCP port")
    return int(raw)


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    if not raw.isdigit() or int(raw) == 0:
        raise LaunchError(f"configuration error: {name} is malformed: must be a positive integer")
    return int(raw)


def read_launch_config(env: Mapping[str, str]) -> LaunchConfig:
    if env.get("WORKER_CONCURRENCY"):
        # Replaced by one variable per queue; ignoring it would silently drop a tuning.
        replacements = ", ".join(name for name, _ in CONCURRENCY.values())
        raise LaunchError(f"configuration error: WORKER_CONCURRENCY is replaced by {replacements}")
    return LaunchConfig(
        data_dir=Path(env.get("DEVSTACK_DATA_DIR") or ".data").resolve(),
        mongo_port=_optional_port(env, "EMBEDDED_MONGO_PORT"),
        redis_port=_optional_port(env, "EMBEDDED_REDIS_PORT"),
        worker_concurrency={
            queue: _positive_int(env, name, default)
            for queue, (name, default) in CONCURRENCY.items()
        },
    )


def validate_settings(env: Mapping[str, str]) -> Settings:
    """Refuse embedded servers in production, then validate what every service will read."""
    if env.get("APP_ENV") == "production":
        missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not env.get(name)]
        if missing:
            raise LaunchError(
                "refusing to start embedded servers with APP_ENV=production: "
                f"set {' and '.join(missing)}"
            )
        if not env.get("FLOWER_BASIC_AUTH"):
            raise LaunchError("configuration error: FLOWER_BASIC_AUTH is required in production")
    try:
        return load_settings(env)
    except ConfigError as exc:
        raise LaunchError(f"configuration error: {exc}") from None


# ---------------------------------------------------------------- output


class Output:
    """Writes whole lines, each prefixed with the name of the process that wrote it."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.lock = threading.Lock()

    def line(self, name: str, text: str) -> None:
        with self.lock:
            self.stream.write(f"{name:<{NAME_WIDTH}}| {text}\n")
            self.stream.flush()

    def pump(self, name: str, pipe: IO[bytes]) -> threading.Thread:
        """Copy a child's output in a background thread until the child closes it."""

        def copy() -> None:
            with pipe:
                for raw in pipe:
                    self.line(name, raw.decode(errors="replace").rstrip("\n"))

        thread = threading.Thread(target=copy, name=f"pump-{name}", daemon=True)
        thread.start()
        return thread


# ---------------------------------------------------------------- processes


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    own_group: bool

    def exited(self) -> bool:
        return self.process.poll() is not None

    def signal(self, signum: int) -> None:
        try:
            if self.own_group:
                os.killpg(self.process.pid, signum)
            elif not self.exited():
                self.process.send_signal(signum)
        except ProcessLookupError:
            pass

    def gone(self) -> bool:
        """The child and, for a group leader, everything left in its group have exited."""
        if not self.exited():
            return False
        if not self.own_group:
            return True
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return True
        return False


def _resolve(argv: tuple[str, ...]) -> list[str]:
    """Run the venv's own python / console scripts, whatever PATH says."""
    program = sys.executable if argv[0] == "python" else str(BIN_DIR / argv[0])
    return [program, *argv[1:]]


def _process_environment(spec: ProcessSpec, env: Mapping[str, str]) -> dict[str, str]:
    child_env = {k: v for k, v in env.items() if k != MULTIPROC_ENV} | dict(spec.env)
    if spec.metrics_dir is not None:
        reset_directory(str(spec.metrics_dir))
        child_env[MULTIPROC_ENV] = str(spec.metrics_dir)
    return child_env


def spawn(spec: ProcessSpec, env: Mapping[str, str], output: Output) -> Child:
    process = subprocess.Popen(
        _resolve(spec.argv),
        cwd=REPO_ROOT,
        env=_process_environment(spec, env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # Its own group: Ctrl-C reaches the launcher only, which stops children in
        # order, and a signal to the group also reaches gunicorn's and celery's forks.
        process_group=0,
    )
    output.pump(spec.name, process.stdout)
    return Child(spec.name, process, own_group=True)


@contextmanager
def _interrupts_blocked() -> Iterator[None]:
    """Embedded servers share the launcher's process group, so a terminal Ctrl-C would
    reach them before the services that use them stop. A child inherits the blocked
    mask; the launcher still stops them with SIGTERM, last."""
    blocked = {signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)


def start_embedded_servers(
    env: dict[str, str], config: LaunchConfig, output: Output, started: list[Supervised]
) -> None:
    """Start the servers that DATABASE_URL / REDIS_URL don't name, exporting their URLs.
    Appends each to `started` as soon as it runs, so a later failure still stops it. A
    restart reuses the port (every service has the URL) and the data folder."""
    if not env.get("DATABASE_URL"):
        mongo_dir = config.data_dir / "mongo"
        mongo_port = config.mongo_port or free_port()
        url = _supervise_server(
            lambda: start_mongo(mongo_dir, mongo_port, stdout=subprocess.PIPE), output, started
        )
        env["DATABASE_URL"] = url
        output.line("devstack", f"embedded SecantusDB at {url} (data in {mongo_dir})")
    if not env.get("REDIS_URL"):
        redis_dir = config.data_dir / "redis"
        redis_port = config.redis_port or free_port()
        url = _supervise_server(
            lambda: start_redis(redis_port, stdout=subprocess.PIPE, data_dir=redis_dir),
            output,
            started,
        )
        env["REDIS_URL"] = url
        output.line("devstack", f"embedded Valkey at {url} (append-only file in {redis_dir})")


def _supervise_server(
    start: Callable[[], EmbeddedServer], output: Output, started: list[Supervised]
) -> str:
    """Start an embedded server and keep it supervised; returns its URL."""
    url = ""

    def begin() -> Child:
        nonlocal url
        with _interrupts_blocked():
            server = start()
        url = server.url
        return _adopt(server.name, server.process, output)

    child = begin()
    started.append(Supervised(child.name, begin, child))
    return url


def _adopt(name: str, process: subprocess.Popen, output: Output) -> Child:
    output.pump(name, process.stdout)
    return Child(name, process, own_group=False)


def stop_all(children: list[Child], output: Output) -> None:
    """SIGTERM to every child, SIGKILL to whatever is left after the grace period."""
    for child in children:
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and not all(child.gone() for child in children):
        time.sleep(0.1)
    for child in children:
        if not child.gone():
            output.line(
                "devstack", f"{child.name} did not stop in {STOP_GRACE_SECONDS:.0f}s; killing"
            )
            child.signal(signal.SIGKILL)
            child.process.wait()


def run_migrations(env: Mapping[str, str], output: Output) -> None:
    """What a release does before it rolls out: the services refuse to start without
    the indexes `manage migrate` builds."""
    child = spawn(MIGRATE, env, output)
    if child.process.wait() != 0:
        raise LaunchError("migrations failed: see the migrate lines above")


# ---------------------------------------------------------------- supervision


class StopRequest:
    """Set by SIGINT / SIGTERM; the main loop polls it."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.event.set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)


@dataclass
class Supervised:
    """A process the launcher keeps running: how to start it, its current run, the times
    it crashed lately, and when it is due to start again after one."""

    name: str
    start: Callable[[], Child]
    child: Child | None
    crashes: list[float] = field(default_factory=list)
    restart_at: float | None = None

    def tend(self, output: Output, now: float) -> bool:
        """Notice a crash, or restart after one once its backoff is over. False when it
        keeps crashing and the stack must stop."""
        if self.restart_at is not None:
            return self._restart(output, now) if now >= self.restart_at else True
        if self.child is None or not self.child.exited():
            return True
        code = self.child.process.returncode
        # What is left of its group (a killed celery parent's pool, gunicorn's workers)
        # goes with it, as a supervisor's killasgroup does.
        self.child.signal(signal.SIGKILL)
        return self._crashed(output, now, f"exited unexpectedly (code {code})")

    def _crashed(self, output: Output, now: float, what: str) -> bool:
        self.crashes = [t for t in self.crashes if now - t < RESTART_WINDOW_SECONDS] + [now]
        count = len(self.crashes)
        if count >= RESTART_LIMIT:
            output.line(
                "devstack",
                f"{self.name} {what}: {count} crashes in {RESTART_WINDOW_SECONDS:.0f}s; stopping",
            )
            return False
        delay = min(RESTART_BACKOFF_SECONDS * 2 ** (count - 1), RESTART_BACKOFF_MAX_SECONDS)
        output.line(
            "devstack",
            f"{self.name} {what}; restarting in {delay:.0f}s "
            f"(crash {count} of {RESTART_LIMIT} allowed in {RESTART_WINDOW_SECONDS:.0f}s)",
        )
        self.restart_at = now + delay
        return True

    def _restart(self, output: Output, now: float) -> bool:
        self.restart_at = None
        try:
            self.child = self.start()
        except (OSError, EmbeddedServerError) as exc:
            self.child = None
            return self._crashed(output, now, f"failed to start ({exc})")
        output.line("devstack", f"{self.name} restarted (pid {self.child.process.pid})")
        return True


def running(entries: list[Supervised]) -> list[Child]:
    return [entry.child for entry in entries if entry.child is not None]


READINESS_PATHS = ("/readyz", "/readyz/workers")  # the API's own, then every queue's worker


def readiness(port: int) -> tuple[bool, str]:
    """The whole stack is ready: the API and a worker of every queue."""
    for path in READINESS_PATHS:
        try:
            response = requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
        except requests.RequestException as exc:
            return False, f"API not answering ({type(exc).__name__})"
        if response.status_code != 200:
            try:
                return False, response.json().get("message", response.text)
            except ValueError:
                return False, f"HTTP {response.status_code}"
    return True, "ready"


def print_urls(output: Output, settings: Settings, env: Mapping[str, str]) -> None:
    api = f"http://127.0.0.1:{settings.port}"
    exporters = [
        f"{queue} http://127.0.0.1:{port}"
        for queue, port in worker_metrics_ports(settings.worker_metrics_port).items()
        if port
    ]
    lines = [
        f"ready: API        {api}",
        f"       API docs   {api}/docs",
        f"       Flower     http://127.0.0.1:{env['FLOWER_PORT']} (basic auth: FLOWER_BASIC_AUTH)",
        f"       Simulator  http://127.0.0.1:{settings.monnify_sim_port}",
        f"       Metrics    {api}/metrics; workers: {', '.join(exporters) or 'off'}",
        "       Ctrl-C stops everything",
    ]
    for text in lines:
        output.line("devstack", text)


def supervise(
    entries: list[Supervised],
    stop: StopRequest,
    settings: Settings,
    env: Mapping[str, str],
    output: Output,
) -> int:
    """Wait for readiness, then for Ctrl-C / SIGTERM (exit 0), restarting what crashes,
    or for a process that keeps crashing (exit 1)."""
    ready = False
    next_report = time.monotonic() + READY_REPORT_INTERVAL_SECONDS
    while not stop.wait(SUPERVISE_INTERVAL_SECONDS):
        now = time.monotonic()
        if not all(entry.tend(output, now) for entry in entries):
            return 1
        if ready:
            continue
        ready, status = readiness(settings.port)
        if ready:
            print_urls(output, settings, env)
        elif time.monotonic() >= next_report:
            output.line("devstack", f"waiting for readiness: {status}")
            next_report = time.monotonic() + READY_REPORT_INTERVAL_SECONDS
    output.line("devstack", "stopping")
    return 0


# ---------------------------------------------------------------- entry point


def child_environment(env: Mapping[str, str]) -> dict[str, str]:
    merged = {**DEV_DEFAULTS, **env}
    merged["PYTHONUNBUFFERED"] = "1"  # lines appear as they are written, not per buffer
    return merged


def run(env: Mapping[str, str], output: Output) -> int:
    config = read_launch_config(env)
    settings = validate_settings(env)
    child_env = child_environment(env)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    stop = StopRequest()
    stop.install()
    servers: list[Supervised] = []
    services: list[Supervised] = []
    try:
        start_embedded_servers(child_env, config, output, servers)
        run_migrations(child_env, output)
        for spec in process_specs(config, settings.worker_metrics_port):
            if stop.event.is_set():
                return 0
            services.append(_supervise_service(spec, child_env, output))
        return supervise(services + servers, stop, settings, child_env, output)
    finally:
        stop_all(running(services), output)
        stop_all(running(servers), output)
        output.line("devstack", "stopped")


def _supervise_service(spec: ProcessSpec, env: Mapping[str, str], output: Output) -> Supervised:
    def start() -> Child:
        return spawn(spec, env, output)

    return Supervised(spec.name, start, start())


def main() -> int:
    output = Output(sys.stdout)
    try:
        return run(os.environ, output)
    except (LaunchError, EmbeddedServerError) as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
