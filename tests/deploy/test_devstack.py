"""`make run`, driven the way a person uses it: start `python -m services.devstack` on a
machine with no Mongo or Redis configured, wait for /readyz and Flower, press Ctrl-C
(SIGINT), and check that nothing it started is left running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from services.devstack import RESTART_LIMIT
from services.embedded import free_port
from tests.support.polling import wait_until

pytestmark = pytest.mark.stack

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_WITHIN_SECONDS = 30.0  # the promise for `make run`
ANSWER_WITHIN_SECONDS = 30.0
# After a restart: the celery workers reconnect to Redis with their own backoff.
RECOVER_WITHIN_SECONDS = 120.0
EXIT_WITHIN_SECONDS = 60.0  # the launcher's own grace period is 15 s per stage
FLOWER_AUTH = ("devstack-test", "devstack-test-password")
# Variables that would make the launcher use outside servers or other ports.
CLEARED = ("DATABASE_URL", "REDIS_URL", "EMBEDDED_MONGO_PORT", "EMBEDDED_REDIS_PORT")


@dataclass
class Launched:
    process: subprocess.Popen
    data_dir: Path
    log_path: Path
    port: int
    flower_port: int
    sim_port: int

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def started_processes(self) -> list[psutil.Process]:
        """Every live process that inherited this launch's environment: its children,
        their forks, and anything orphaned by them."""
        marker = str(self.data_dir)
        found = []
        for proc in psutil.process_iter():
            try:
                if (
                    proc.pid != self.process.pid
                    and proc.environ().get("DEVSTACK_DATA_DIR") == marker
                ):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return [proc for proc in found if _alive(proc)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for(check: Callable[[], bool], seconds: float) -> bool:
    """Whether `check` came true within `seconds`: the callers assert it with the
    launcher's log, which says more than the last value seen."""
    try:
        wait_until(check, timeout=seconds, interval=0.3)
    except AssertionError:
        return False
    return True


def _launcher_env(**overrides: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in CLEARED}
    env.update({"APP_ENV": "development", **overrides})
    return env


def _run_launcher(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.devstack"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture()
def launched(tmp_path: Path) -> Iterator[Launched]:
    data_dir = tmp_path / "data"
    ports = {"PORT": free_port(), "FLOWER_PORT": free_port(), "MONNIFY_SIM_PORT": free_port()}
    env = _launcher_env(
        DEVSTACK_DATA_DIR=str(data_dir),
        FLOWER_BASIC_AUTH=":".join(FLOWER_AUTH),
        **{name: str(port) for name, port in ports.items()},
    )
    log_path = tmp_path / "devstack.log"
    stack = Launched(
        _run_launcher(env, log_path),
        data_dir,
        log_path,
        ports["PORT"],
        ports["FLOWER_PORT"],
        ports["MONNIFY_SIM_PORT"],
    )
    try:
        yield stack
    finally:
        # Still running when a test failed, or left it up on purpose: stopped as Ctrl-C
        # stops it, so it takes its servers with it (a restarted valkey-server rewrites its
        # environment, where `started_processes` looks for the launch's marker).
        if stack.process.poll() is None:
            stack.process.send_signal(signal.SIGINT)
            try:
                stack.process.wait(EXIT_WITHIN_SECONDS)
            except subprocess.TimeoutExpired:
                stack.process.kill()
        for proc in stack.started_processes():
            proc.kill()
        stack.process.wait(EXIT_WITHIN_SECONDS)


def _wait_ready(stack: Launched, seconds: float = READY_WITHIN_SECONDS) -> None:
    """/readyz (Mongo, transactions, Redis) and /readyz/workers (a worker of every queue)."""
    last: dict = {}

    def ready() -> bool:
        assert stack.process.poll() is None, f"launcher exited early:\n{stack.log_tail()}"
        for path in ("/readyz", "/readyz/workers"):
            try:
                response = requests.get(f"http://127.0.0.1:{stack.port}{path}", timeout=5)
            except requests.RequestException:
                return False
            last.update(path=path, status=response.status_code, body=response.text[:500])
            if response.status_code != 200:
                return False
        return True

    assert _wait_for(ready, seconds), (
        f"readiness not 200 within {seconds}s; last answer {last}\n{stack.log_tail()}"
    )


def _flower_status(stack: Launched, auth: tuple[str, str] | None) -> int | None:
    try:
        url = f"http://127.0.0.1:{stack.flower_port}/"
        return requests.get(url, auth=auth, timeout=5).status_code
    except requests.RequestException:
        return None


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _command_lines(processes: list[psutil.Process]) -> str:
    lines = []
    for proc in processes:
        try:
            lines.append(" ".join(proc.cmdline()))
        except psutil.NoSuchProcess:
            continue
    return "\n".join(lines)


def test_make_run_serves_then_ctrl_c_leaves_nothing_running(launched: Launched):
    _wait_ready(launched)

    assert _wait_for(lambda: _flower_status(launched, FLOWER_AUTH) == 200, ANSWER_WITHIN_SECONDS), (
        f"Flower did not answer with basic auth\n{launched.log_tail()}"
    )
    assert _flower_status(launched, None) == 401
    assert _wait_for(lambda: _listening(launched.sim_port), ANSWER_WITHIN_SECONDS), (
        f"the Monnify simulator is not listening on {launched.sim_port}\n{launched.log_tail()}"
    )

    started = launched.descendants()
    commands = _command_lines(started)
    for expected in (
        "secantusd",
        "valkey-server",
        "gunicorn",
        " worker -E --loglevel INFO -Q calls -n calls@%h ",
        " worker -E --loglevel INFO -Q payments -n payments@%h ",
        " worker -E --loglevel INFO -Q housekeeping -n housekeeping@%h ",
        " beat ",
        " flower",
        "services.monnify_sim",
    ):
        assert expected in commands, f"{expected!r} not running:\n{commands}"
    assert (launched.data_dir / "mongo").is_dir()

    launched.process.send_signal(signal.SIGINT)
    assert launched.process.wait(EXIT_WITHIN_SECONDS) == 0, launched.log_tail()

    left = [proc for proc in started if _alive(proc)] + launched.started_processes()
    assert not left, f"left running after Ctrl-C:\n{_command_lines(left)}"


def _process(stack: Launched, marker: str) -> psutil.Process | None:
    """The launcher's own child (not a fork of one) whose command line holds `marker`."""
    for proc in psutil.Process(stack.process.pid).children():
        try:
            if marker in " ".join(proc.cmdline()) and _alive(proc):
                return proc
        except psutil.NoSuchProcess:
            continue
    return None


def _restarted(stack: Launched, marker: str, old_pid: int) -> psutil.Process:
    found: list[psutil.Process] = []

    def back() -> bool:
        proc = _process(stack, marker)
        if proc is not None and proc.pid != old_pid:
            found.append(proc)
        return bool(found)

    assert _wait_for(back, ANSWER_WITHIN_SECONDS), f"{marker} not restarted\n{stack.log_tail()}"
    return found[-1]


def _logged(stack: Launched, text: str) -> bool:
    """The launcher wrote `text` (its restart line follows the new process's start)."""
    return _wait_for(
        lambda: text in stack.log_path.read_text(errors="replace"), ANSWER_WITHIN_SECONDS
    )


def test_a_killed_worker_is_restarted_and_the_stack_stays_up(launched: Launched):
    _wait_ready(launched)
    worker = _process(launched, " -Q calls ")
    assert worker is not None
    pool = worker.children()
    worker.kill()  # the celery parent only, as the OOM killer would

    again = _restarted(launched, " -Q calls ", worker.pid)
    assert launched.process.poll() is None, launched.log_tail()
    assert "worker-calls exited unexpectedly (code -9); restarting" in launched.log_tail()
    assert f"worker-calls restarted (pid {again.pid})" in launched.log_path.read_text(
        errors="replace"
    )
    # The dead parent's pool went with it, as a supervisor's killasgroup does.
    assert _wait_for(lambda: not any(_alive(proc) for proc in pool), ANSWER_WITHIN_SECONDS)
    _wait_ready(launched, RECOVER_WITHIN_SECONDS)

    launched.process.send_signal(signal.SIGINT)
    assert launched.process.wait(EXIT_WITHIN_SECONDS) == 0, launched.log_tail()
    left = launched.started_processes()
    assert not left, f"left running after Ctrl-C:\n{_command_lines(left)}"


def test_a_killed_embedded_redis_comes_back_on_its_port(launched: Launched):
    _wait_ready(launched)
    server = _process(launched, "valkey-server")
    assert server is not None
    server.kill()

    _restarted(launched, "valkey-server", server.pid)
    assert _logged(launched, "redis restarted")
    _wait_ready(launched, RECOVER_WITHIN_SECONDS)  # the services reconnect to the same URL
    assert (launched.data_dir / "redis" / "appendonlydir").is_dir()


def test_a_process_that_keeps_crashing_stops_the_stack_with_an_error(launched: Launched):
    _wait_ready(launched)
    pid = 0
    for _ in range(RESTART_LIMIT):
        simulator = _restarted(launched, "services.monnify_sim", pid)
        pid = simulator.pid
        simulator.kill()

    assert launched.process.wait(EXIT_WITHIN_SECONDS) == 1, launched.log_tail()
    assert f"monnify-sim exited unexpectedly (code -9): {RESTART_LIMIT} crashes in" in (
        launched.log_tail()
    )
    left = launched.started_processes()
    assert not left, f"left running after giving up:\n{_command_lines(left)}"


def _launch_and_wait(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    env = _launcher_env(DEVSTACK_DATA_DIR=str(tmp_path / "data"), **overrides)
    return subprocess.run(
        [sys.executable, "-m", "services.devstack"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=EXIT_WITHIN_SECONDS,
    )


def test_a_malformed_setting_stops_the_launcher_with_one_line_naming_it(tmp_path: Path):
    result = _launch_and_wait(tmp_path, PORT="eighty")

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("configuration error: PORT is malformed")
    assert not (tmp_path / "data").exists()


def test_production_refuses_embedded_servers(tmp_path: Path):
    result = _launch_and_wait(tmp_path, APP_ENV="production")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "refusing to start embedded servers with APP_ENV=production: set DATABASE_URL and REDIS_URL"
    ]


def test_the_old_worker_concurrency_variable_is_refused_naming_its_replacements(tmp_path: Path):
    result = _launch_and_wait(tmp_path, WORKER_CONCURRENCY="4")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "configuration error: WORKER_CONCURRENCY is replaced by WORKER_CALLS_CONCURRENCY, "
        "WORKER_PAYMENTS_CONCURRENCY, WORKER_HOUSEKEEPING_CONCURRENCY"
    ]
