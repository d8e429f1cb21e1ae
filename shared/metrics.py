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

import fcntl
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Created here, before the metrics below write their first file: in a container the
# directory sits in a fresh tmpfs or emptyDir (/tmp/metrics) that nothing else creates.
if os.environ.get(MULTIPROC_ENV):
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)

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
# Refunds open at Monnify past REFUND_REVIEW_AFTER_SECONDS, as the latest poll found them.
REFUNDS_OVERDUE = Gauge(
    "refunds_overdue",
    "Refunds still open past REFUND_REVIEW_AFTER_SECONDS: their money stays held",
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
    collected.register(MergingCollector(directory))
    return collected


class MergingCollector:
    """Every process's samples, after folding the files of exited ones into the archive,
    so the directory holds files of live processes only (plus one archive per kind)."""

    def __init__(self, directory: str):
        self.directory = directory
        self.collector = multiprocess.MultiProcessCollector(None, path=directory)

    def collect(self) -> Iterator[Metric]:
        merge_dead_processes(self.directory)
        with _directory_lock(self.directory, fcntl.LOCK_SH):
            metrics = list(self.collector.collect())
        yield from metrics


# ---- the multi-process directory's files -------------------------------------------
#
# prometheus-client writes one file per process and kind (counter_<pid>.db,
# gauge_<mode>_<pid>.db, ...) and never removes them: recycled gunicorn workers and
# replaced Celery pool processes would grow the directory (and every scrape's work)
# without bound. An exited process's files are folded into one `<kind>_archive.db`,
# which the collector reads like any other: counters and histograms keep their totals.

ARCHIVE = "archive"
_PROCESS_FILE = re.compile(r"^(?P<kind>counter|histogram|summary|gauge_[a-z]+)_(?P<pid>\d+)\.db$")
_LOCK_FILE = ".merge.lock"


def _combine(kind: str, old: tuple[float, float], new: tuple[float, float]) -> tuple[float, float]:
    """Two processes' (value, timestamp) of one sample, as the collector would add them."""
    if kind == "gauge_max":
        return max(old, new)
    if kind == "gauge_min":
        return min(old, new)
    if kind == "gauge_mostrecent":
        return max(old, new, key=lambda sample: sample[1])
    return old[0] + new[0], 0.0


def _is_process_gauge(kind: str) -> bool:
    """Gauges of one process's own state (live*, all): meaningless once it has exited."""
    return kind == "gauge_all" or kind.startswith("gauge_live")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _directory_lock(directory: str, operation: int) -> Iterator[None]:
    """Merges take it exclusively, collections shared: no scrape sees a sample twice."""
    with open(os.path.join(directory, _LOCK_FILE), "a") as lock:
        fcntl.flock(lock, operation)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _dead_files(directory: str) -> dict[str, list[Path]]:
    """Files of exited processes, by kind."""
    dead: dict[str, list[Path]] = {}
    for path in Path(directory).glob("*.db"):
        match = _PROCESS_FILE.match(path.name)
        if match and not _alive(int(match["pid"])):
            dead.setdefault(match["kind"], []).append(path)
    return dead


def _fold(kind: str, files: list[Path], archive: Path) -> None:
    """Add the files' samples to the archive's, then remove the files."""
    values: dict[str, tuple[float, float]] = {}
    for path in ([archive] if archive.exists() else []) + files:
        for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(path)):
            sample = (value, timestamp)
            values[key] = _combine(kind, values[key], sample) if key in values else sample
    merged = MmapedDict(str(archive))
    try:
        for key, (value, timestamp) in values.items():
            merged.write_value(key, value, timestamp)
    finally:
        merged.close()
    for path in files:
        path.unlink()


def merge_dead_processes(directory: str) -> int:
    """Fold the files of exited processes into the archive; returns how many went."""
    with _directory_lock(directory, fcntl.LOCK_EX):
        dead = _dead_files(directory)
        for kind, files in dead.items():
            if _is_process_gauge(kind):
                for path in files:
                    path.unlink()
            else:
                _fold(kind, files, Path(directory) / f"{kind}_{ARCHIVE}.db")
    return sum(len(files) for files in dead.values())


def reset_directory(path: str) -> None:
    """Empty the directory at start: files of an earlier run would add stale samples."""
    shutil.rmtree(path, ignore_errors=True)
    Path(path).mkdir(parents=True, exist_ok=True)


def mark_process_dead(pid: int) -> None:
    """A process exited: drop its live-gauge files, fold its counters into the archive."""
    directory = multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(pid)
        merge_dead_processes(directory)
