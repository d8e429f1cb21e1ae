"""Fair Redis locks that serialise writers to the same wallets, without polling.

A lock makes conflicting transactions rare; it is never what keeps money right. Every
write is also conditional (a wallet's `available`, a hold's `status`), so a holder
that outlives its lock (a long GC pause, a slow network) cannot apply a wrong update.

Each lock is a string holding its owner's token (with a time-to-live, so a dead owner
frees it), a FIFO list of waiting tokens, and a sorted set of each waiter's deadline.
A writer that finds the lock taken queues its token and blocks on a wake-up list of its
own (BLPOP); the owner's release wakes the waiter at the head of the queue, which alone
may take the lock next. Writers are served in arrival order and no one sleeps in a loop.
A waiter that died in the queue is dropped once its deadline passes; to notice that,
and an owner that died holding the lock, a blocked waiter looks again at least every
RECHECK_SECONDS. All keys of one lock share a hash tag, so each script touches one slot.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from shared.errors import Conflict, ErrorCode
from shared.logs import get_logger

log = get_logger(__name__)

LOCK_PREFIX = "lock:account:"
RECHECK_SECONDS = 1.0
# Queue bookkeeping outlives any waiter by this much, then Redis forgets it.
QUEUE_TTL_MS = 60_000

# KEYS: lock, queue, deadlines. ARGV: token, ttl_ms, now_ms, deadline_ms.
# 1: taken. 0: queued (or still queued) behind others.
_ACQUIRE = """
local head = redis.call('LINDEX', KEYS[2], 0)
while head do
  local deadline = redis.call('ZSCORE', KEYS[3], head)
  if deadline and tonumber(deadline) >= tonumber(ARGV[3]) then break end
  redis.call('LPOP', KEYS[2])
  redis.call('ZREM', KEYS[3], head)
  head = redis.call('LINDEX', KEYS[2], 0)
end
if redis.call('EXISTS', KEYS[1]) == 0 and (not head or head == ARGV[1]) then
  if head then
    redis.call('LPOP', KEYS[2])
    redis.call('ZREM', KEYS[3], ARGV[1])
  end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return 0
"""

# KEYS: lock, queue, deadlines. ARGV: token (or '' to only wake), wake-key prefix.
# Frees the lock if `token` owns it, drops `token` from the queue if it waits there,
# then wakes the head of the queue when the lock is free. Returns 1 if it freed it.
_RELEASE = """
local freed = 0
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  freed = 1
end
if ARGV[1] ~= '' and redis.call('ZREM', KEYS[3], ARGV[1]) == 1 then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  local head = redis.call('LINDEX', KEYS[2], 0)
  if head then
    local wake = ARGV[2] .. head
    redis.call('LPUSH', wake, 1)
    redis.call('PEXPIRE', wake, 10000)
  end
end
return freed
"""


class AccountBusy(Conflict):
    """The wallet's lock could not be had in time; the operation can be retried."""

    code = ErrorCode.BUSY


@dataclass(frozen=True)
class _Keys:
    lock: str
    queue: str
    deadlines: str
    wake_prefix: str

    @classmethod
    def of(cls, account_id: str) -> _Keys:
        tag = "{" + LOCK_PREFIX + account_id + "}"
        return cls(tag, tag + ":queue", tag + ":deadlines", tag + ":wake:")

    @property
    def all(self) -> list[str]:
        return [self.lock, self.queue, self.deadlines]


def lock_key(account_id: str) -> str:
    """The Redis key that names an account's current lock holder."""
    return _Keys.of(account_id).lock


class FairLock:
    """One account's lock, taken by one holder at a time, in arrival order."""

    def __init__(self, client: redis.Redis, account_id: str, *, timeout: float, wait: float):
        self.client = client
        self.keys = _Keys.of(account_id)
        self.token = uuid.uuid4().hex
        self.ttl_ms = max(int(timeout * 1000), 1)
        self.wait = wait
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)

    def acquire(self) -> bool:
        deadline = time.time() + self.wait
        while True:
            now = time.time()
            if self._try(now, deadline):
                return True
            if now >= deadline:
                self._leave()
                return False
            # Woken by the release before us, or at the recheck to find dead holders.
            block = min(deadline - now, RECHECK_SECONDS)
            self.client.blpop([self.keys.wake_prefix + self.token], timeout=max(block, 0.01))

    def release(self) -> bool:
        """False if the lock had expired (someone else may hold it now)."""
        return bool(self._release(keys=self.keys.all, args=[self.token, self.keys.wake_prefix]))

    def _try(self, now: float, deadline: float) -> bool:
        args = [self.token, self.ttl_ms, int(now * 1000), int(deadline * 1000), QUEUE_TTL_MS]
        return bool(self._acquire(keys=self.keys.all, args=args))

    def _leave(self) -> None:
        """Give up our place; if we were next, the one after us is woken instead."""
        self._release(keys=self.keys.all, args=[self.token, self.keys.wake_prefix])


@contextmanager
def account_locks(
    client: redis.Redis, account_ids: Iterable[str], *, timeout: float, wait: float
) -> Iterator[None]:
    """Hold one lock per account, taken in sorted order so two writers can't deadlock."""
    acquired: list[FairLock] = []
    try:
        for account_id in sorted(set(account_ids)):
            lock = FairLock(client, account_id, timeout=timeout, wait=wait)
            if not lock.acquire():
                raise AccountBusy(
                    "The wallet is busy with another operation; retry shortly",
                    {"account": account_id},
                )
            acquired.append(lock)
        yield
    finally:
        for lock in reversed(acquired):
            if not lock.release():
                # It expired while we worked; the conditional write protected the data.
                log.warning("lock_expired_before_release", lock=lock.keys.lock)
