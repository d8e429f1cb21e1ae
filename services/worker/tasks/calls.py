"""Call tasks: renew a call's reservation, cut it off when the money runs out, settle
it, and the beat sweeper. Each may run twice or late; the domain code re-reads state."""

from __future__ import annotations

from functools import cache

from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from services.worker import context
from services.worker.celery_app import celery
from shared.calls import CallContext, Followup, billing
from shared.errors import Conflict

# A busy wallet (its lock or the ledger's retries ran out) or a database or Redis hiccup:
# retried with backoff (BaseTask). A renewal given up on is the sweeper's to end.
TRANSIENT = (Conflict, PyMongoError, RedisError)


@cache
def _calls() -> CallContext:
    return CallContext.from_settings(context.settings())


def _schedule(followups: list[Followup]) -> None:
    for step in followups:
        celery.send_task(step.task, kwargs=step.kwargs, eta=step.eta)


@celery.task(name="calls.renew", autoretry_for=TRANSIENT)
def renew(call_id: str, reserved_seconds: int) -> None:
    _schedule(billing.renew(_calls(), call_id, reserved_seconds))


@celery.task(name="calls.cut_off", autoretry_for=TRANSIENT)
def cut_off(call_id: str) -> None:
    _schedule(billing.cut_off(_calls(), call_id))


@celery.task(name="calls.settle", autoretry_for=TRANSIENT)
def settle(call_id: str) -> None:
    billing.settle_call(_calls(), call_id)


@celery.task(name="calls.sweep")
def sweep() -> int:
    return billing.sweep(_calls())
