"""The audit sealer: moves outbox records into the hash chain (beat, every few seconds)."""

from __future__ import annotations

from services.worker.periodic import periodic
from services.worker.runtime import runtime
from shared import audit


@periodic(audit.SEAL_TASK)
def seal() -> int:
    """How many records this run sealed; None while the previous run is still going."""
    return audit.seal(runtime.db(), runtime.redis_client())
