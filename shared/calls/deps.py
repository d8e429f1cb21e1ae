"""What the call domain needs from its process: the database, the ledger, Redis and the
call settings, built once per process by the gateway or the worker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from pymongo.database import Database

from shared.ledger import Ledger
from shared.mongo import get_db
from shared.redis_conn import get_redis
from shared.settings import CallSettings, Settings


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
    config: CallSettings
    currency: str
    lock_timeout: float = 10.0
    lock_wait: float = 5.0
    clock: Callable[[], datetime] = field(default=_now_millis)

    @classmethod
    def from_settings(cls, settings: Settings) -> CallContext:
        return cls(
            db=get_db(settings.database_url),
            ledger=Ledger.from_settings(settings),
            redis=get_redis(settings.redis_url),
            config=settings.calls,
            currency=settings.default_currency,
            lock_timeout=settings.lock_timeout_seconds,
            lock_wait=settings.lock_wait_seconds,
        )
