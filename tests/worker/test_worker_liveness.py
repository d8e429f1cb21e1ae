"""The workers' liveness check (compose's healthcheck, Kubernetes' liveness probe): it
answers for the worker of its own node, and leaves no metrics file behind however often
it runs."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.server_urls import redis_database

REPO_ROOT = Path(__file__).resolve().parents[2]


def _healthcheck(service: str) -> list[str]:
    """The compose service's healthcheck, as the container's shell would run it."""
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    test = compose["services"][service]["healthcheck"]["test"]
    command = test[1] if test[0] == "CMD-SHELL" else shlex.join(test[1:])
    return ["sh", "-c", command.replace("$$", "$")]


def _env(test_env: dict[str, str], metrics_dir: Path) -> dict[str, str]:
    # Its own Redis database: no other worker of the session answers there.
    redis_url = redis_database(test_env["REDIS_URL"], "worker_liveness")
    env = {**os.environ, **test_env, "REDIS_URL": redis_url}
    # `python` is the image's interpreter in a container; this test's one here.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return env | {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PATH": path}


def test_the_healthcheck_fails_without_its_worker_and_writes_no_metrics(test_env, tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    result = subprocess.run(
        _healthcheck("worker-calls"), env=_env(test_env, metrics), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.strip() == f"calls@{socket.gethostname()}: no answer"
    assert list(metrics.iterdir()) == []


def test_the_healthcheck_passes_when_its_worker_answers(test_env, db, tmp_path):
    env = _env(test_env, tmp_path / "worker-metrics")
    (tmp_path / "worker-metrics").mkdir()
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "services.worker.celery_app", "worker",
         "--pool", "solo", "-Q", "calls", "-n", "calls@%h"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    check_metrics = tmp_path / "check-metrics"
    check_metrics.mkdir()
    try:
        for _ in range(12):  # each run waits up to its ping timeout for the worker to be up
            result = subprocess.run(
                _healthcheck("worker-calls"), env={**env, "PROMETHEUS_MULTIPROC_DIR":
                str(check_metrics)}, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if result.returncode == 0:
                break
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert result.returncode == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert list(check_metrics.iterdir()) == []
