"""Call tasks: renew a call's reservation, cut it off when the money runs out, settle
it, and the beat sweeper. Each may run twice or late; the domain code re-reads state."""

from __future__ import annotations

from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from services.worker.celery_app import celery
from services.worker.periodic import periodic
from services.worker.runtime import runtime
from shared.calls import renewals, settlement, sweeper
from shared.calls.followups import schedule
from shared.calls.model import CUT_OFF_TASK, RENEW_TASK, SETTLE_TASK, SWEEP_TASK
from shared.errors import Conflict

# Per-call tasks retry, with backoff (BaseTask), a busy wallet (its lock or the ledger's
# retries ran out) or a database or Redis hiccup; a renewal given up on is the sweeper's
# to end. Nobody reads their results: storing them would only cost Redis writes.
PER_CALL = {"autoretry_for": (Conflict, PyMongoError, RedisError), "ignore_result": True}


@celery.task(name=RENEW_TASK, **PER_CALL)
def renew(call_id: str, reserved_seconds: int) -> None:
    schedule(celery.send_task, renewals.renew(runtime.calls(), call_id, reserved_seconds))


@celery.task(name=CUT_OFF_TASK, **PER_CALL)
def cut_off(call_id: str) -> None:
    schedule(celery.send_task, renewals.cut_off(runtime.calls(), call_id))


@celery.task(name=SETTLE_TASK, **PER_CALL)
def settle(call_id: str) -> None:
    settlement.settle_call(runtime.calls(), call_id)


@periodic(SWEEP_TASK)
def sweep() -> int:
    return sweeper.sweep(runtime.calls())
