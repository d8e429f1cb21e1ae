"""Processes that move money refuse to start without a database that runs transactions,
with one line naming the problem instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from services.embedded import free_port


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "celery", "-A", "services.worker.celery_app", "worker",
         "--pool", "solo", "--loglevel", "ERROR"],
        [sys.executable, "-c", "import services.api.wsgi"],
        [sys.executable, "-m", "services.manage", "grant-admin", "someone@example.com"],
    ],
    ids=["worker", "gateway", "manage"],
)  # fmt: skip
def test_unreachable_database_stops_start_up_with_one_line(test_env, command):
    dead = f"mongodb://127.0.0.1:{free_port()}/payment_calls?serverSelectionTimeoutMS=500"
    env = {**os.environ, **test_env, "DATABASE_URL": dead}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("configuration error: the database at DATABASE_URL is unreachable")
    assert "Traceback" not in result.stderr
