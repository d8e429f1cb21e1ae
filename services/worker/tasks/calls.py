"""Call tasks: renew a call's reservation, cut it off when the money runs out, settle
it, and the beat sweeper. Each may run twice or late; the domain code re-reads state."""

from __future__ import annotations

from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from services.worker.celery_app import celery
from services.worker.periodic import periodic
from services.worker.runtime import runtime
from shared.calls import Followup, billing
from shared.errors import Conflict

# Per-call tasks retry, with backoff (BaseTask), a busy wallet (its lock or the ledger's
# retries ran out) or a database or Redis hiccup; a renewal given up on is the sweeper's
# to end. Nobody reads their results: storing them would only cost Redis writes.
PER_CALL = {"autoretry_for": (Conflict, PyMongoError, RedisError), "ignore_result": True}


def _schedule(followups: list[Followup]) -> None:
    for step in followups:
        celery.send_task(step.task, kwargs=step.kwargs, eta=step.eta)


@celery.task(name="calls.renew", **PER_CALL)
def renew(call_id: str, reserved_seconds: int) -> None:
    _schedule(billing.renew(runtime.calls(), call_id, reserved_seconds))


@celery.task(name="calls.cut_off", **PER_CALL)
def cut_off(call_id: str) -> None:
    _schedule(billing.cut_off(runtime.calls(), call_id))


@celery.task(name="calls.settle", **PER_CALL)
def settle(call_id: str) -> None:
    billing.settle_call(runtime.calls(), call_id)


@periodic("calls.sweep")
def sweep() -> int:
    return billing.sweep(runtime.calls())
