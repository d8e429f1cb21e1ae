"""The audit sealer: moves outbox records into the hash chain (beat, every few seconds)."""

from __future__ import annotations

from services.worker import context
from services.worker.celery_app import celery
from shared import audit


@celery.task(name="audit.seal")
def seal() -> int:
    """How many records this run sealed; 0 when another sealer holds the lock."""
    return audit.seal(context.db(), context.redis_client())
