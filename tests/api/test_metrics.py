"""Metrics: GET /metrics in Prometheus text format with requests by route template,
method and status; task and business metrics after a funding journey; one consistent
total across several gunicorn workers; the worker's own exporter."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests
import yaml
from bson import ObjectId
from celery import Celery
from prometheus_client.metrics import MetricWrapperBase

from services.embedded import free_port
from services.worker.metrics import StateCollector
from shared import audit, metrics
from shared.monnify.signature import compute_signature
from shared.task_queues import HOUSEKEEPING, configure_queues
from tests.support.funding_support import pay, post_signed
from tests.support.metrics_support import (
    REPO_ROOT,
    samples,
    scrape,
    service,
    value,
    wait_until_answering,
)
from tests.support.server_urls import redis_database
from tests.support.users import signup


def test_requests_are_counted_by_route_template_never_the_raw_path(client, signup):
    headers, _ = signup()
    call_id = str(ObjectId())
    before = client.get("/metrics").get_data(as_text=True)
    assert client.get(f"/calls/{call_id}", headers=headers).status_code == 404
    assert client.get(f"/no-such-page/{call_id}").status_code == 404
    assert client.post("/wallet/balance").status_code == 405
    after = client.get("/metrics").get_data(as_text=True)

    counted = "http_requests_total"
    route = {"route": "/calls/<call_id>", "method": "GET", "status": "404"}
    assert value(after, counted, **route) == value(before, counted, **route) + 1
    unmatched = {"route": "<unmatched>", "method": "GET", "status": "404"}
    assert value(after, counted, **unmatched) == value(before, counted, **unmatched) + 1
    assert value(after, counted, route="<unmatched>", method="POST", status="405") >= 1
    assert call_id not in after
    latency = "http_request_duration_seconds_count"
    timed = {"route": "/calls/<call_id>", "method": "GET"}
    assert value(after, latency, **timed) == value(before, latency, **timed) + 1
    assert value(after, "http_request_duration_seconds_bucket", le="+Inf", **timed) >= 1


def test_a_funding_journey_shows_in_task_and_business_metrics(gateway, monnify_sim):
    before = scrape(f"{gateway}/metrics")
    user = signup(gateway)
    pay(monnify_sim, user.fund(5000))
    user.wait_for_balance(5000)
    forged = b'{"eventType":"SUCCESSFUL_TRANSACTION","eventData":{}}'
    assert post_signed(gateway, forged, "not-the-secret").status_code == 401
    after = _scrape_until_task_counted(gateway, before)

    def grew(name: str, by: float | None = None, **labels: str) -> None:
        change = value(after, name, **labels) - value(before, name, **labels)
        assert change == by if by is not None else change > 0, (name, labels, change)

    grew("fundings_initiated_total", 1, currency="NGN")
    grew("fundings_confirmed_total", 1, currency="NGN", status="paid")
    grew("funding_credited_minor_total", 500000, currency="NGN")
    grew("webhooks_rejected_total", 1, reason="signature")
    process_event = {"task": "payments.process_event"}
    grew("celery_tasks_total", outcome="success", **process_event)
    grew("celery_task_duration_seconds_count", **process_event)
    grew("http_requests_total", 1, route="/wallet/fund", method="POST", status="201")
    grew("http_requests_total", 1, route="/auth/signup", method="POST", status="201")


def _scrape_until_task_counted(gateway: str, before: str) -> str:
    """The balance shows before the task's postrun signal counts it: wait for that."""
    deadline = time.monotonic() + 10
    labels = {"task": "payments.process_event", "outcome": "success"}
    while True:
        after = scrape(f"{gateway}/metrics")
        counted = value(after, "celery_tasks_total", **labels) > value(
            before, "celery_tasks_total", **labels
        )
        if counted or time.monotonic() > deadline:
            return after
        time.sleep(0.1)


def test_forged_signature_and_refused_source_are_counted_apart(client):
    before = client.get("/metrics").get_data(as_text=True)
    body = b'{"eventType":"SUCCESSFUL_TRANSACTION"}'
    signature = compute_signature(body, "not-the-secret")
    response = client.post(
        "/payments/monnify/webhook",
        data=body,
        headers={"Content-Type": "application/json", "monnify-signature": signature},
    )
    assert response.status_code == 401
    after = client.get("/metrics").get_data(as_text=True)
    name = "webhooks_rejected_total"
    assert value(after, name, reason="signature") == value(before, name, reason="signature") + 1
    assert value(after, name, reason="source_ip") == value(before, name, reason="source_ip")


def test_several_gunicorn_workers_report_one_total(test_env, db, tmp_path: Path):
    """Workers recycled every few requests: many processes, some dead, each wrote its
    own samples, and every scrape, whichever worker answers it, adds up all of them;
    the files of exited workers do not pile up."""
    port = free_port()
    env = {
        **test_env,
        "PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_CMD_ARGS": "--max-requests 4 --max-requests-jitter 0",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    argv = ["gunicorn", "-c", "deploy/gunicorn.conf.py", "services.api.wsgi:app"]
    base = f"http://127.0.0.1:{port}"
    with service(argv, env, tmp_path / "gunicorn.log") as process:
        wait_until_answering(f"{base}/healthz", process)
        baseline = value(scrape(f"{base}/metrics"), "http_requests_total", **_HEALTHZ)
        for _ in range(20):
            requests.get(f"{base}/healthz", timeout=30)
        totals = {
            value(scrape(f"{base}/metrics"), "http_requests_total", **_HEALTHZ) for _ in range(6)
        }
        files = [path.stem for path in (tmp_path / "metrics").glob("counter_*.db")]
    assert totals == {baseline + 20}
    # 28 requests, 4 per worker's life: at least 6 workers have exited, and their files
    # were folded into the archive. Left: the archive and the live workers' (2, plus
    # perhaps one whose exit gunicorn is handling).
    assert "counter_archive" in files
    assert len(files) <= 4, files


_HEALTHZ = {"route": "/healthz", "method": "GET", "status": "200"}


@pytest.fixture()
def isolated_redis_url(servers) -> str:
    """A Redis database of the test's own: a second worker on the session's queue would
    take other tests' tasks."""
    url = redis_database(servers["redis_url"], "metrics")
    redis.Redis.from_url(url).flushdb()
    return url


def test_the_worker_exports_task_metrics_of_its_pool_processes(
    test_env, isolated_redis_url, tmp_path: Path
):
    port = free_port()
    env = {
        **test_env,
        "REDIS_URL": isolated_redis_url,
        "WORKER_METRICS_PORT": str(port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    (tmp_path / "metrics").mkdir()
    argv = ["celery", "-A", "services.worker.celery_app", "worker", "--pool", "prefork"]
    argv += ["--concurrency", "1", "--without-gossip", "--without-mingle", "-E", "-Q", HOUSEKEEPING]
    url = f"http://127.0.0.1:{port}/metrics"
    with service(argv, env, tmp_path / "worker.log") as process:
        wait_until_answering(url, process)
        sender = Celery("test-sender", broker=isolated_redis_url, backend=isolated_redis_url)
        configure_queues(sender)
        sender.send_task("ledger.expire_holds").get(timeout=60)
        sender.send_task("ledger.check_invariants").get(timeout=60)
        exported = scrape(url)
    task = {"task": "ledger.expire_holds"}
    assert value(exported, "celery_tasks_total", outcome="success", **task) == 1
    assert value(exported, "celery_task_duration_seconds_count", **task) == 1
    assert value(exported, "ledger_invariant_violations") == 0
    # Only the queue it drains: another worker's exporter reports the others.
    assert {queue for name, queue in _gauges(exported) if name == "celery_queue_length"} == {
        HOUSEKEEPING
    }
    assert "calls_active" in exported and "audit_outbox_pending" in exported


def _gauges(text: str) -> set[tuple[str, str]]:
    return {(name, dict(labels).get("queue", "")) for name, labels in samples(text)}


def test_queue_length_counts_every_priority_list(db, isolated_redis_url):
    client = redis.Redis.from_url(isolated_redis_url)
    queue = f"q-{uuid.uuid4().hex[:8]}"
    client.lpush(queue, "a", "b", "c")
    client.lpush(f"{queue}\x06\x169", "d", "e")
    collected = {m.name: m for m in StateCollector(client, db, [queue]).collect()}
    (sample,) = collected["celery_queue_length"].samples
    assert sample.labels == {"queue": queue} and sample.value == 5
    pending = collected["audit_outbox_pending"].samples[0].value
    assert pending == audit.pending_count(db)


# ---- deploy/: every metric an alert or a panel uses is one the services export --------

_PROMQL_WORDS = {
    "sum", "max", "min", "rate", "increase", "deriv", "absent", "histogram_quantile",
    "clamp_min", "by", "and", "or", "up", "le", "inf",
}  # fmt: skip


def _promql_metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|by \([^)]*\)|\"[^\"]*\"|\d+(\.\d+)?(e-?\d+)?", " ", expr)
    return {word for word in re.findall(r"[a-z_][a-z0-9_]*", expr) if word not in _PROMQL_WORDS}


def _deploy_expressions() -> list[str]:
    alerts = yaml.safe_load((REPO_ROOT / "deploy/prometheus/alerts.yml").read_text())
    exprs = [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    dashboard = json.loads((REPO_ROOT / "deploy/grafana/dashboard.json").read_text())
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return exprs


def _defined_series() -> set[str]:
    """The series names of every metric shared.metrics defines, whether or not any
    sample exists yet."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    names = set()
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def test_alerts_and_dashboard_use_only_exported_metrics(db, redis_client):
    state = StateCollector(redis_client, db, ["celery"]).collect()
    exported = _defined_series() | {metric.name for metric in state}
    used = set().union(*(_promql_metric_names(expr) for expr in _deploy_expressions()))
    assert {"http_requests_total", "celery_queue_length", "calls_active"} <= used
    assert used <= exported, sorted(used - exported)
