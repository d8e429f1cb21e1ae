"""The audit sealer: moves outbox records into the hash chain (beat, every few seconds)."""

from __future__ import annotations

from services.worker import context
from services.worker.periodic import periodic
from shared import audit


@periodic(audit.SEAL_TASK)
def seal() -> int:
    """How many records this run sealed; None while the previous run is still going."""
    return audit.seal(context.db(), context.redis_client())
