"""Prometheus metrics: every metric the services export, defined once.

Multi-process safe: with PROMETHEUS_MULTIPROC_DIR set before prometheus-client is first
imported, every process (gunicorn workers, Celery pool children) writes its samples to
files in that directory, and an exporter (`registry()`) adds them up at scrape time.
The gateway and the worker each get their own directory, so nothing is counted twice.

Gauges of state that lives elsewhere (queue depth, open calls, the audit outbox) are not
here: the worker's exporter reads them at scrape time (services/worker/metrics.py), so
they stay right even when no task runs to update them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# ---- HTTP (the gateway) ------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "Requests answered, by route template (not raw path), method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer a request (to the first byte of a streamed response)",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# ---- Celery (the worker) -----------------------------------------------------------

TASKS = Counter(
    "celery_tasks_total",
    "Tasks run, by name and outcome (success, failure, retry, ...)",
    ["task", "outcome"],
)
TASK_RETRIES = Counter("celery_task_retries_total", "Retries requested, by task", ["task"])
TASK_DURATION = Histogram(
    "celery_task_duration_seconds",
    "Time a task ran, by name",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)

# ---- business ----------------------------------------------------------------------

FUNDINGS_INITIATED = Counter("fundings_initiated_total", "Fundings opened at Monnify", ["currency"])
FUNDINGS_CONFIRMED = Counter(
    "fundings_confirmed_total",
    "Fundings confirmed by Monnify's status API and credited, by outcome",
    ["currency", "status"],
)
AMOUNT_CREDITED = Counter(
    "funding_credited_minor_total",
    "Money credited to wallets by fundings, in minor units (kobo, cents)",
    ["currency"],
)
CONFIRMATION_FAILURES = Counter(
    "funding_confirmation_failures_total",
    "Webhook events whose confirmation was given up after the retry window",
    ["status"],
)
CONFIRMATION_BATCH_SIZE = Histogram(
    "funding_confirmation_batch_size",
    "Webhook events one worker task claimed and confirmed together",
    buckets=(1, 2, 5, 10, 20, 35, 50),
)
WEBHOOKS_REJECTED = Counter(
    "webhooks_rejected_total", "Webhook posts refused, by reason", ["reason"]
)
# Not an error: the caller gets Conflict ("busy; retry shortly") and tries again (a task
# with backoff, a client on its 409). A rising rate means a hot wallet; a task that runs
# out of its own retries is logged as an error by Celery.
LEDGER_BUSY = Counter(
    "ledger_busy_total",
    "Ledger operations answered busy after their transaction retries ran out, by operation",
    ["op"],
)
CALLS_CUT_OFF = Counter("calls_cut_off_total", "Calls ended because the caller's money ran out")
RECONCILIATION_DISCREPANCIES = Counter(
    "reconciliation_discrepancies_total",
    "Disagreements between Monnify and the ledger that a person must look at, by where "
    "they were found (confirmation, reconciliation)",
    ["source"],
)
# The latest check's finding, whichever process ran it: stays up until a check is clean.
INVARIANT_VIOLATIONS = Gauge(
    "ledger_invariant_violations",
    "Violations the latest ledger invariant check found",
    multiprocess_mode="mostrecent",
)
AUDIT_SEALED = Counter("audit_records_sealed_total", "Audit records added to the hash chain")
LIVE_EVENT_FAILURES = Counter(
    "live_event_publish_failures_total", "Live events that could not be published"
)


# Known labels start at 0, so an alert on `increase()` sees their first event too.
for _reason in ("signature", "source_ip"):
    WEBHOOKS_REJECTED.labels(_reason)
for _status in ("unconfirmed", "failed"):
    CONFIRMATION_FAILURES.labels(_status)


def multiprocess_dir() -> str | None:
    """The directory prometheus-client shares samples through, if this process has one."""
    return os.environ.get(MULTIPROC_ENV) or None


def registry() -> CollectorRegistry:
    """What an exporter serves: every process's samples in multi-process mode, else this
    process's own."""
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected, path=directory)
    return collected


def reset_directory(path: str) -> None:
    """Empty the directory at start: files of an earlier run would add stale samples."""
    shutil.rmtree(path, ignore_errors=True)
    Path(path).mkdir(parents=True, exist_ok=True)


def mark_process_dead(pid: int) -> None:
    """A process exited: drop its live-gauge files (counters stay, as they must)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)
