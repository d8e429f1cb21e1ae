"""Call tasks: renew a call's reservation, cut it off when the money runs out, settle
it, and the beat sweeper. Each may run twice or late; the domain code re-reads state."""

from __future__ import annotations

from functools import cache

from services.worker import context
from services.worker.celery_app import celery
from shared.calls import CallContext, Followup, billing


@cache
def _calls() -> CallContext:
    return CallContext.from_settings(context.settings())


def _schedule(followups: list[Followup]) -> None:
    for step in followups:
        celery.send_task(step.task, kwargs=step.kwargs, eta=step.eta)


@celery.task(name="calls.renew")
def renew(call_id: str, reserved_seconds: int) -> None:
    _schedule(billing.renew(_calls(), call_id, reserved_seconds))


@celery.task(name="calls.cut_off")
def cut_off(call_id: str) -> None:
    _schedule(billing.cut_off(_calls(), call_id))


@celery.task(name="calls.settle")
def settle(call_id: str) -> None:
    billing.settle_call(_calls(), call_id)


@celery.task(name="calls.sweep")
def sweep() -> int:
    return billing.sweep(_calls())
