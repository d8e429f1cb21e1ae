"""Liveness checks for the Celery processes, exit 0 when alive:

    python -m services.worker.alive QUEUE              the worker named QUEUE@<this host>
                                                       (compose's and Kubernetes' node
                                                       name) answers a ping
    python -m services.worker.alive --beat SCHEDULE    beat saved its schedule file lately

Run by compose's healthcheck and Kubernetes' liveness probe every few seconds, so it
imports neither the worker's tasks nor prometheus-client: `celery -A
services.worker.celery_app inspect ping` did both, and every run left a metrics file in
the worker's PROMETHEUS_MULTIPROC_DIR (thousands a day).
"""

from __future__ import annotations

import glob
import os
import socket
import sys
import time

from celery import Celery

from shared.redis_url import celery_connection
from shared.settings import settings_or_report

PING_TIMEOUT_SECONDS = 5.0
# Beat saves its schedule every 3 minutes while jobs run (they run every 30 s or so).
BEAT_STALE_SECONDS = 600


def node_name(queue: str) -> str:
    """The worker's node name, as `-n QUEUE@%h` sets it."""
    return f"{queue}@{socket.gethostname()}"


def ping(redis_url: str, node: str) -> bool:
    broker_url, sentinel_options = celery_connection(redis_url)
    app = Celery("alive", broker=broker_url)
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_transport_options = sentinel_options
    with app.connection_for_write() as connection:
        answers = app.control.ping(
            destination=[node], timeout=PING_TIMEOUT_SECONDS, connection=connection
        )
    return any(node in answer for answer in answers or [])


def beat_alive(schedule: str) -> bool:
    """The schedule file (shelve adds a suffix on some platforms) was saved lately."""
    saved = [os.path.getmtime(path) for path in glob.glob(f"{glob.escape(schedule)}*")]
    return bool(saved) and time.time() - max(saved) < BEAT_STALE_SECONDS


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--beat":
        alive = beat_alive(argv[1])
        print(f"beat: {'alive' if alive else 'schedule not saved lately'}")
        return 0 if alive else 1
    if len(argv) != 1:
        print("usage: python -m services.worker.alive QUEUE | --beat SCHEDULE", file=sys.stderr)
        return 2
    settings = settings_or_report()
    if settings is None:
        return 2
    node = node_name(argv[0])
    try:
        alive = ping(settings.redis_url, node)
    except Exception as exc:  # the broker is unreachable: not alive, one line saying why
        print(f"{node}: broker unreachable ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(f"{node}: {'alive' if alive else 'no answer'}")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
