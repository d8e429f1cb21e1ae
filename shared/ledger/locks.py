"""Redis locks that serialise writers to the same wallets.

A lock makes conflicting transactions rare; it is never what keeps money right. Every
write is also conditional on the version read, so a holder that outlives its lock
(a long GC pause, a slow network) cannot apply a stale update.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import LockError

from shared.errors import Conflict
from shared.logs import get_logger

log = get_logger(__name__)

LOCK_PREFIX = "lock:account:"


class AccountBusy(Conflict):
    """The wallet's lock could not be had in time; the operation can be retried."""


@contextmanager
def account_locks(
    client: redis.Redis, account_ids: Iterable[str], *, timeout: float, wait: float
) -> Iterator[None]:
    """Hold one lock per account, taken in sorted order so two writers can't deadlock."""
    acquired: list[redis.lock.Lock] = []
    try:
        for account_id in sorted(set(account_ids)):
            lock = client.lock(LOCK_PREFIX + account_id, timeout=timeout, blocking_timeout=wait)
            if not lock.acquire():
                raise AccountBusy(
                    "The wallet is busy with another operation; retry shortly",
                    {"account": account_id},
                )
            acquired.append(lock)
        yield
    finally:
        for lock in reversed(acquired):
            _release(lock)


def _release(lock: redis.lock.Lock) -> None:
    try:
        lock.release()
    except LockError:
        # It expired while we worked; the conditional write already protected the data.
        log.warning("lock_expired_before_release", lock=lock.name)
