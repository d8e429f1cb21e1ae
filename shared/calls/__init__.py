"""Pay-per-minute calls: rating, reservations in blocks, cut-off and settlement.

Domain code only: no Flask, no Celery. Functions that need a worker task afterwards
return `Followup`s for the gateway or the worker to enqueue.
"""

from shared.calls.deps import CallContext
from shared.calls.model import Followup
from shared.calls.rating import Tariff

__all__ = ["CallContext", "Followup", "Tariff"]
