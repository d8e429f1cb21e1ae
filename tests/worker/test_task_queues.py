"""Every task lands on the queue of its urgency, whoever sends it: the worker (follow-ups,
retries), the gateway's client (webhooks, call follow-ups) and beat (periodic jobs)."""

from __future__ import annotations

import pytest
from celery import Celery

from services.api.queue import celery_client_for
from services.worker.schedule import DAY_SECONDS, beat_schedule
from shared.settings import load_settings
from shared.task_queues import CALLS, HOUSEKEEPING, PAYMENTS, QUEUES, TASK_QUEUES

# The spec, written out rather than read from the table it checks.
EXPECTED = {
    CALLS: {"calls.renew", "calls.cut_off", "calls.settle", "calls.sweep"},
    PAYMENTS: {"payments.process_event", "payouts.send"},
    HOUSEKEEPING: {
        "payments.requeue_inbox",
        "payments.reconcile_pending",
        "payments.daily_report",
        "ledger.expire_holds",
        "ledger.check_invariants",
        "audit.seal",
        "payouts.poll",
    },
}
EXPECTED_QUEUE = {name: queue for queue, names in EXPECTED.items() for name in names}


@pytest.fixture(scope="module")
def worker_app(worker_celery: Celery) -> Celery:
    worker_celery.loader.import_default_modules()  # registers the task modules
    return worker_celery


@pytest.fixture(scope="module")
def tasks(worker_app) -> dict:
    return {name: task for name, task in worker_app.tasks.items() if not name.startswith("celery.")}


@pytest.fixture(scope="module")
def gateway_app() -> Celery:
    return celery_client_for("redis://127.0.0.1:1/0")  # never connects: routing is local


def queue_of(app: Celery, task_name: str) -> str:
    """The queue send_task would publish to, as the app's router decides."""
    return app.amqp.router.route({}, task_name)["queue"].name


@pytest.mark.parametrize("app_name", ["worker", "gateway"])
def test_each_task_routes_to_its_queue(app_name, worker_app, gateway_app):
    app = worker_app if app_name == "worker" else gateway_app
    assert {name: queue_of(app, name) for name in EXPECTED_QUEUE} == EXPECTED_QUEUE


def test_every_registered_task_is_in_the_route_table(tasks):
    assert set(tasks) == set(TASK_QUEUES) == set(EXPECTED_QUEUE)


def test_a_task_nobody_routed_goes_to_housekeeping(worker_app, gateway_app):
    assert queue_of(worker_app, "celery.ping") == HOUSEKEEPING
    assert queue_of(gateway_app, "no.such_task") == HOUSEKEEPING


def test_both_apps_declare_the_same_queues(worker_app, gateway_app):
    for app in (worker_app, gateway_app):
        declared = {q.name: q.routing_key for q in app.conf.task_queues}
        assert declared == {name: name for name in QUEUES}


def test_beat_jobs_route_to_housekeeping_except_the_call_sweeper(worker_app):
    schedule = beat_schedule(load_settings({}))
    queues = {entry["task"]: queue_of(worker_app, entry["task"]) for entry in schedule.values()}
    assert queues.pop("calls.sweep") == CALLS
    assert set(queues.values()) == {HOUSEKEEPING}


def test_a_beat_run_left_waiting_expires_before_the_next_is_sent():
    schedule = beat_schedule(load_settings({}))
    for name, entry in schedule.items():
        interval = entry["schedule"]
        seconds = interval if isinstance(interval, float) else DAY_SECONDS  # the daily crontab
        assert 0 < entry["options"]["expires"] <= seconds, name


def test_beat_jobs_are_periodic_tasks_with_a_time_limit(tasks):
    """Only `periodic` sets the time limit; what its lock does is tested with a worker."""
    from services.worker.periodic import TIME_LIMIT_SECONDS

    scheduled = {entry["task"] for entry in beat_schedule(load_settings({})).values()}
    for name in scheduled:
        assert tasks[name].time_limit == TIME_LIMIT_SECONDS, name
    per_call = {"calls.renew", "calls.cut_off", "calls.settle", "payments.process_event"}
    assert all(tasks[name].time_limit is None for name in per_call)
