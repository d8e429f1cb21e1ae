"""Liveness and readiness."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from marshmallow import Schema, fields

from services.api import context
from services.api.blueprint import Blueprint
from services.api.errors import error_response
from services.api.queue import celery_client
from shared.errors import ErrorCode
from shared.mongo import check_transactions

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
    context.db().command("ping")


def _check_transactions() -> None:
    check_transactions(context.db())


def _check_redis() -> None:
    context.redis_client().ping()


def _check_worker() -> None:
    if not celery_client().control.ping(timeout=WORKER_PING_SECONDS):
        raise RuntimeError("no worker answered a ping")


CHECKS: dict[str, Callable[[], None]] = {
    "mongo": _check_mongo,
    "transactions": _check_transactions,
    "redis": _check_redis,
    "worker": _check_worker,
}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, ReadinessSchema)
@blp.errors(HTTPStatus.SERVICE_UNAVAILABLE)
def readyz():
    """Ready to serve: Mongo, transactions, Redis and at least one worker answer."""
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
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
