"""Payout tasks: send a withdrawal's transfer, and poll the withdrawals Monnify has
not told us about."""

from __future__ import annotations

from services.worker.celery_app import celery
from services.worker.periodic import periodic
from services.worker.runtime import runtime
from shared.monnify.errors import MonnifyProtocolError, MonnifyUnavailable
from shared.payouts.jobs import POLL_WITHDRAWALS_TASK, SEND_WITHDRAWAL_TASK
from shared.payouts.withdrawals import PENDING

# Unknown outcomes are looked up after 1, 2, 4, ... seconds, then left to the poller.
MAX_SEND_RETRIES = 8


@celery.task(name=SEND_WITHDRAWAL_TASK, bind=True, max_retries=MAX_SEND_RETRIES)
def send(self, reference: str) -> str:
    """Send the transfer; if Monnify's answer is unknown, look it up again later (never a
    second transfer: a withdrawal with an attempt counted is looked up before sending)."""
    try:
        status = runtime.withdrawals().send(reference)
    except (MonnifyUnavailable, MonnifyProtocolError):  # the look-up failed: ask again later
        status = PENDING
    if status == PENDING and self.request.retries < MAX_SEND_RETRIES:
        raise self.retry(countdown=min(60, 2**self.request.retries))
    return status


@periodic(POLL_WITHDRAWALS_TASK)
def poll() -> dict[str, int]:
    """Settle withdrawals that heard nothing for WITHDRAWAL_POLL_AFTER_SECONDS."""
    return runtime.withdrawals().poll()
