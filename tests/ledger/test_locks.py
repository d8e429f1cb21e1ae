"""The wallet locks' Redis rules, on fakeredis (its Lua runs the lock's own scripts): one
key per account holding its owner, a time-to-live, a FIFO queue served in arrival order,
waiters that die in the queue dropped, and nothing left behind by a writer that gives up.
The locks against a real Redis, under real writers: tests/ledger/test_ledger_faults.py."""

from __future__ import annotations

import threading
import time
from functools import partial
from operator import eq

import fakeredis
import pytest

from shared.ledger.locks import AccountBusy, FairLock, account_locks, lock_key
from tests.support.polling import wait_until


@pytest.fixture()
def fake() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def test_the_holder_is_one_key_named_by_the_account_with_a_time_to_live(fake):
    lock = FairLock(fake, "acct-1", timeout=5, wait=0)
    assert lock.acquire()
    assert fake.get(lock_key("acct-1")) == lock.token.encode()
    assert 0 < fake.pttl(lock_key("acct-1")) <= 5000
    # One hash tag for every key of the lock: each script touches one cluster slot.
    assert lock.keys.queue.startswith(lock_key("acct-1"))
    assert lock.keys.deadlines.startswith(lock_key("acct-1"))
    assert lock.release()
    assert not fake.exists(lock_key("acct-1"))


def test_a_writer_that_gives_up_leaves_no_place_in_the_queue(fake):
    holder = FairLock(fake, "acct-1", timeout=5, wait=0)
    assert holder.acquire()
    late = FairLock(fake, "acct-1", timeout=5, wait=0.05)
    assert not late.acquire()
    assert fake.llen(late.keys.queue) == 0
    assert fake.zcard(late.keys.deadlines) == 0
    assert fake.get(lock_key("acct-1")) == holder.token.encode()


def test_an_expired_holder_cannot_release_its_successors_lock(fake):
    first = FairLock(fake, "acct-1", timeout=0.05, wait=0)
    assert first.acquire()
    time.sleep(0.1)
    second = FairLock(fake, "acct-1", timeout=5, wait=0)
    assert second.acquire()
    assert not first.release()
    assert fake.get(lock_key("acct-1")) == second.token.encode()


def test_a_waiter_that_died_in_the_queue_is_dropped_once_its_deadline_passes(fake):
    keys = FairLock(fake, "acct-1", timeout=5, wait=0).keys
    fake.rpush(keys.queue, "dead-waiter")
    fake.zadd(keys.deadlines, {"dead-waiter": int(time.time() * 1000) - 1})
    lock = FairLock(fake, "acct-1", timeout=5, wait=0)
    assert lock.acquire()
    assert fake.llen(keys.queue) == 0


def test_a_live_waiter_at_the_head_of_the_queue_is_not_overtaken(fake):
    keys = FairLock(fake, "acct-1", timeout=5, wait=0).keys
    fake.rpush(keys.queue, "waiting")
    fake.zadd(keys.deadlines, {"waiting": int(time.time() * 1000) + 60_000})
    assert not FairLock(fake, "acct-1", timeout=5, wait=0).acquire()


def test_waiters_take_the_lock_in_arrival_order(fake):
    expected = ["first", "second", "third"]
    holder = FairLock(fake, "acct-1", timeout=10, wait=0)
    assert holder.acquire()
    order: list[str] = []

    def wait_then_hold(name: str) -> None:
        lock = FairLock(fake, "acct-1", timeout=10, wait=10)
        assert lock.acquire()
        order.append(name)
        lock.release()

    threads = [threading.Thread(target=wait_then_hold, args=(name,)) for name in expected]
    for queued, thread in enumerate(threads, start=1):
        thread.start()
        # Each queues before the next starts: arrival order is this order.
        wait_until(lambda: fake.llen(holder.keys.queue), partial(eq, queued))
    holder.release()
    for thread in threads:
        thread.join(timeout=15)
    assert order == expected


def test_account_locks_hold_every_account_and_free_them_all_when_one_is_busy(fake):
    with account_locks(fake, ["acct-b", "acct-a"], timeout=5, wait=0):
        assert fake.exists(lock_key("acct-a"), lock_key("acct-b")) == 2
    assert fake.exists(lock_key("acct-a"), lock_key("acct-b")) == 0

    busy = FairLock(fake, "acct-b", timeout=5, wait=0)
    assert busy.acquire()
    with (
        pytest.raises(AccountBusy),
        account_locks(fake, ["acct-a", "acct-b"], timeout=5, wait=0.05),
    ):
        pass
    # acct-a, taken first (sorted order), was let go when acct-b could not be had.
    assert not fake.exists(lock_key("acct-a"))
    assert fake.get(lock_key("acct-b")) == busy.token.encode()
