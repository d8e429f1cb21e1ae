"""What the call domain is given by its process: the database, the ledger, Redis and the
call configuration. Each process's `Runtime` (shared/runtime.py) builds one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from pymongo.database import Database

from shared.calls.config import CallConfig
from shared.ledger import Ledger


def _now_millis() -> datetime:
    """Now, at the millisecond precision MongoDB stores, so what we compute from a time
    and what we read back of it agree."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class CallContext:
    db: Database
    ledger: Ledger
    redis: redis.Redis
    config: CallConfig
    currency: str
    lock_timeout: float = 10.0
    lock_wait: float = 5.0
    clock: Callable[[], datetime] = field(default=_now_millis)
