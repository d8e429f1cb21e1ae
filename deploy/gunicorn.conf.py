"""gunicorn settings for the gateway: `gunicorn -c deploy/gunicorn.conf.py services.api.wsgi:app`.

Used unchanged by `make run` (services/devstack.py) and by docker-compose. Reads PORT
through shared.settings, so a bad value stops gunicorn with one line naming it.
"""

import os
import sys
import tempfile

from gunicorn.glogging import Logger

from shared.logs import configure_logging
from shared.settings import ConfigError, load_settings


def _positive_int_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    if not raw.isdigit() or int(raw) == 0:
        sys.exit(f"configuration error: {name} is malformed: must be a positive integer")
    return int(raw)


try:
    _settings = load_settings()
except ConfigError as exc:
    sys.exit(f"configuration error: {exc}")

# Metrics in multi-process mode: every worker writes its samples to this directory and
# a scrape of any worker adds them all up. Set here, before the workers import the app
# (and with it prometheus-client), and emptied at start.
_METRICS_DIR = _settings.prometheus_multiproc_dir or tempfile.mkdtemp(prefix="api-metrics-")
os.makedirs(_METRICS_DIR, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _METRICS_DIR
# Only now: prometheus-client reads the variable when first imported.
from shared.metrics import mark_process_dead, reset_directory  # noqa: E402


class StructuredLogger(Logger):
    """gunicorn's own lines (master and access log) in the same shape as the app's."""

    def setup(self, cfg):
        super().setup(cfg)
        configure_logging(json=_settings.log_json, level=_settings.log_level)


# 0.0.0.0 in a container; the dev launcher sets BIND_HOST=127.0.0.1.
bind = [f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{_settings.port}"]
workers = _positive_int_from_env("WEB_CONCURRENCY", 2)
# Threads, not processes, per connection: long-lived SSE streams hold a thread each
# without blocking the other requests of their worker.
worker_class = "gthread"
threads = _positive_int_from_env("GUNICORN_THREADS", 8)
# Recycle workers now and then so a slow leak cannot grow without bound; the jitter
# keeps them from all restarting at once. Not too often: a worker's start (imports, app,
# index checks) costs about a second of CPU and stalls the connections it held, which
# at 1,000 requests was every few seconds under load and the whole p99.
max_requests = 50_000
max_requests_jitter = 5_000
# With gthread this is the worker heartbeat, not a per-request limit.
timeout = 30
graceful_timeout = 10
keepalive = 5
# gunicornc's control socket sits at one path per user; two stacks on a machine (a test
# beside `make run`) would fight over it, and nothing here uses it.
control_socket_disable = True
logger_class = StructuredLogger
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()


def on_starting(_server):
    reset_directory(_METRICS_DIR)


def child_exit(_server, worker):
    """A worker exited (recycled, or died): its live samples go with it."""
    mark_process_dead(worker.pid)
