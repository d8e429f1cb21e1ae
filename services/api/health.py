"""Liveness and readiness."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from marshmallow import Schema, fields

from services.api.blueprint import Blueprint
from services.api.errors import error_response
from services.api.queue import celery_client
from services.api.runtime import runtime
from shared.errors import ErrorCode
from shared.mongo import check_transactions
from shared.task_queues import QUEUES

blp = Blueprint("health", __name__, description="Liveness and readiness")

WORKER_PING_SECONDS = 1.0


class LivenessSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ReadinessSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ready"})
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


@blp.route("/healthz", methods=["GET"])
@blp.response(200, LivenessSchema)
def healthz():
    """The process is alive."""
    return {"status": "ok"}


def _check_mongo() -> None:
    runtime.db().command("ping")


def _check_transactions() -> None:
    check_transactions(runtime.db())


def _check_redis() -> None:
    runtime.redis_client().ping()


CHECKS: dict[str, Callable[[], None]] = {
    "mongo": _check_mongo,
    "transactions": _check_transactions,
    "redis": _check_redis,
}


def _run_checks(checks: dict[str, Callable[[], None]]):
    """200 with every check's state, or the common 503 error naming what fails."""
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means not ready; the name says where
            results[name] = f"failing: {type(exc).__name__}"
    failing = [name for name, state in results.items() if state != "ok"]
    if failing:
        message = f"Not ready: {', '.join(failing)} failing"
        return error_response(503, message, results, code=ErrorCode.NOT_READY)
    return {"status": "ready", "checks": results}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, ReadinessSchema)
@blp.errors(HTTPStatus.SERVICE_UNAVAILABLE)
def readyz():
    """Ready to serve: Mongo, transactions and Redis answer. Workers are not asked: the
    gateway takes requests (webhooks above all) while they are down, and the tasks wait
    in the queue; a readiness that named them would pull every API replica out of
    service whenever the workers are."""
    return _run_checks(CHECKS)


class WorkerAbsent(RuntimeError):
    """No worker consuming the queue answered the ping."""


def _queue_checks() -> dict[str, Callable[[], None]]:
    """One check per queue, from one broadcast ping: nodes are named `<queue>@<host>`."""
    failure: Exception | None = None
    try:
        answers = celery_client().control.ping(timeout=WORKER_PING_SECONDS) or []
    except Exception as exc:  # the broker is down: every queue fails, naming why
        answers, failure = [], exc
    nodes = {name for answer in answers for name in answer}

    def check(queue: str) -> Callable[[], None]:
        def answered() -> None:
            if failure is not None:
                raise failure
            if not any(node.startswith(f"{queue}@") for node in nodes):
                raise WorkerAbsent(queue)

        return answered

    return {queue: check(queue) for queue in QUEUES}


@blp.route("/readyz/workers", methods=["GET"])
@blp.response(200, ReadinessSchema)
@blp.errors(HTTPStatus.SERVICE_UNAVAILABLE)
def readyz_workers():
    """At least one worker of every queue answers a ping: for dashboards, alerts and
    `make run`, never for the API's own readiness."""
    return _run_checks(_queue_checks())
