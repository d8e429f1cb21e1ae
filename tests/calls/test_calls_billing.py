"""Calls billed by the real worker (in-process, on threads): renewals block by block, the
cut-off when the money runs out, settlement with the receiver's share and the platform
fee, and every race that must still settle exactly once. Test timings
(tests/conftest.py): per-second billing at 50 NGN a minute (83.33 kobo a second),
2-second blocks renewed 1 second before they end, a 2-second sweeper grace."""

from __future__ import annotations

import time
import uuid
from contextlib import nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from bson import ObjectId
from pymongo.collection import Collection
from pymongo.errors import AutoReconnect

from shared import live_events
from shared.calls import renewals, reservations, service, settlement
from shared.calls.deps import CallContext
from shared.calls.rating import Tariff, split_cost
from shared.errors import DomainError
from shared.runtime import Runtime
from tests.support.calls_support import (
    PLATFORM,
    call_doc,
    captures_of,
    end_call,
    hold_of,
    initiate,
    start_call,
    wait_settled,
    wallet,
)
from tests.support.ledger_support import assert_ledger_healthy
from tests.support.polling import wait_until
from tests.support.threads import run_threads

DEFAULT = Tariff(5000, 0, 1)


@pytest.fixture()
def calls(runtime) -> CallContext:
    return runtime.calls()


def assert_settled_exactly_once(db, call_id: str, caller, receiver, funded: int) -> dict:
    """The call's cost left the caller once, split between the receiver and the platform
    in one ledger entry; the rest of the hold went back; the ledger is healthy."""
    call = wait_settled(db, call_id)
    cost = int(call["cost"])
    earned, fee = split_cost(cost, Decimal(20))  # PLATFORM_FEE_PERCENT's default
    (entry,) = captures_of(db, call_id)  # one journal entry, even for a free call
    amounts = {p["account"]: int(p["amount"]) for p in entry["postings"]}
    paid = {caller.wallet: -cost, receiver.wallet: earned, PLATFORM: fee}
    assert amounts == (paid if cost else {})
    assert hold_of(db, call_id)["status"] == "captured"
    assert int(hold_of(db, call_id)["captured"]) == cost
    assert wallet(db, caller.wallet) == {
        "balance": funded - cost,
        "held": 0,
        "available": funded - cost,
    }
    assert wallet(db, receiver.wallet)["balance"] == earned
    assert_ledger_healthy(db)
    return call


def test_a_call_is_cut_off_when_the_money_runs_out(client, db, party, celery_worker):
    funded = 450  # 4.50 NGN pays for 5 whole seconds (416.67 -> 417 kobo), not 6
    caller, receiver = party(funded), party()
    call_id = start_call(client, caller, receiver)

    lowest_available, deadline = funded, time.monotonic() + 30
    while call_doc(db, call_id)["status"] != "ended":
        assert time.monotonic() < deadline, "the call was never cut off"
        state = wallet(db, caller.wallet)
        assert state["balance"] == funded  # nothing is taken while the call runs
        lowest_available = min(lowest_available, state["available"])
        time.sleep(0.05)

    call = assert_settled_exactly_once(db, call_id, caller, receiver, funded)
    assert lowest_available >= 0
    assert call["endReason"] == "insufficient_funds"
    assert call["durationSeconds"] == 5 and call["billedSeconds"] == 5
    assert int(call["cost"]) == DEFAULT.cost(5) == 417 == int(hold_of(db, call_id)["amount"])
    assert call["endedAt"] == call["startedAt"] + timedelta(seconds=5)
    shown = client.get(f"/calls/{call_id}", headers=caller.headers).get_json()
    assert shown["endReason"] == "insufficient_funds" and shown["cost"] == Decimal("4.17")


def test_renewals_keep_a_funded_call_running_block_after_block(client, db, party, celery_worker):
    funded = 100_000
    caller, receiver = party(funded), party()
    call_id = start_call(client, caller, receiver)

    # Renewals run a second before each 2-second block ends: at 1 s, 3 s and 5 s.
    wait_until(lambda: call_doc(db, call_id)["reservedSeconds"] >= 8, timeout=20)
    assert wallet(db, caller.wallet)["held"] >= DEFAULT.cost(8)
    body = end_call(client, caller, call_id).get_json()

    assert body["endReason"] == "caller_hangup" and body["durationSeconds"] >= 5
    assert body["cost"] * 100 == DEFAULT.cost(body["durationSeconds"])
    assert_settled_exactly_once(db, call_id, caller, receiver, funded)


def test_concurrent_ends_settle_once_and_answer_alike(app, db, party, celery_worker):
    funded = 100_000
    caller, receiver = party(funded), party()
    call_id = start_call(app.test_client(), caller, receiver)
    time.sleep(1.2)

    responses = run_threads(
        lambda who: end_call(app.test_client(), who, call_id),
        [(caller,), (receiver,)] * 5,
    )

    assert {r.status_code for r in responses} == {200}
    bodies = [r.get_json() for r in responses]
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["endReason"] in ("caller_hangup", "receiver_hangup")
    assert_settled_exactly_once(db, call_id, caller, receiver, funded)


def test_an_end_racing_the_cut_off_settles_once(app, db, party, celery_worker):
    funded = 250  # exactly 3 seconds
    caller, receiver = party(funded), party()
    call_id = start_call(app.test_client(), caller, receiver)
    cut_off_at = call_doc(db, call_id)["startedAt"] + timedelta(seconds=3)
    wait_until(lambda: call_doc(db, call_id).get("finalReason"), timeout=10)

    def end_later(delay: float):
        """End `delay` seconds after 0.2 s before the cut-off second."""
        until = (cut_off_at - datetime.now(UTC)).total_seconds() - 0.2 + delay
        time.sleep(max(until, 0))
        return end_call(app.test_client(), caller, call_id)

    responses = run_threads(end_later, [(d / 10,) for d in range(5)])

    bodies = [r.get_json() for r in responses]
    assert {r.status_code for r in responses} == {200}
    assert all(body == bodies[0] for body in bodies)
    call = assert_settled_exactly_once(db, call_id, caller, receiver, funded)
    assert int(call["cost"]) == DEFAULT.cost(call["billedSeconds"]) <= funded
    if call["endReason"] == "insufficient_funds":
        assert call["durationSeconds"] == 3 and int(call["cost"]) == funded
    else:
        assert call["endReason"] == "caller_hangup" and call["durationSeconds"] <= 3


def test_an_end_racing_wallet_credits_settles_once(app, db, ledger, party, celery_worker):
    funded = 100_000
    caller, receiver = party(funded), party()
    call_id = start_call(app.test_client(), caller, receiver)
    time.sleep(1.5)
    credits = [(f"test:credit:{uuid.uuid4().hex}", 1000 + i) for i in range(6)]

    def act(kind: str, arg):
        if kind == "end":
            return end_call(app.test_client(), caller, call_id).status_code
        return ledger.credit(arg[0], caller.wallet, arg[1]).replayed

    results = run_threads(act, [("end", None), *[("credit", c) for c in credits], ("end", None)])

    assert results[0] == results[-1] == 200
    assert results[1:-1] == [False] * len(credits)
    total = funded + sum(amount for _, amount in credits)
    assert_settled_exactly_once(db, call_id, caller, receiver, total)


def initiate_as_a_client_would(app, caller, receiver, attempts: int = 100):
    """Initiate, retrying the 'busy, retry shortly' answer (the caller's initiates are
    serialised, and a slow machine can keep one waiting past the lock's wait)."""
    for _ in range(attempts):
        response = initiate(app.test_client(), caller, receiver)
        if response.status_code != 409 or "retry shortly" not in response.get_json()["message"]:
            return response
        time.sleep(0.05)
    return response


def test_simultaneous_initiates_never_over_reserve(app, db, party, celery_worker):
    funded = 200  # the first block (167) fits; what is left (33) buys no second
    caller = party(funded)
    receivers = [party() for _ in range(8)]

    responses = run_threads(
        lambda r: initiate_as_a_client_would(app, caller, r), [(r,) for r in receivers]
    )

    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1 and set(codes) <= {201, 402, 409}
    state = wallet(db, caller.wallet)
    assert state["held"] == DEFAULT.cost(2) and state["available"] == funded - DEFAULT.cost(2)
    started = next(r.get_json()["callId"] for r in responses if r.status_code == 201)
    end_call(app.test_client(), caller, started)
    wait_settled(db, started)
    assert_ledger_healthy(db)


def test_simultaneous_initiates_respect_the_concurrency_limit(app, db, party, celery_worker):
    caller = party(1_000_000)
    receivers = [party() for _ in range(8)]

    responses = run_threads(
        lambda r: initiate_as_a_client_would(app, caller, r), [(r,) for r in receivers]
    )

    assert sorted(r.status_code for r in responses) == [201, 201] + [409] * 6
    refused = [r.get_json() for r in responses if r.status_code == 409]
    assert all(body["details"] == {"maxConcurrent": 2} for body in refused)
    assert db.calls.count_documents({"callerId": ObjectId(caller.id), "open": True}) == 2
    assert wallet(db, caller.wallet)["held"] == 2 * DEFAULT.cost(2)
    for response in responses:
        if response.status_code == 201:
            end_call(app.test_client(), caller, response.get_json()["callId"])
    assert_ledger_healthy(db)


def test_the_sweeper_settles_a_call_whose_renewals_never_ran(calls, db, party, celery_worker):
    """The worker 'died': the call was started without enqueuing its renewal."""
    funded = 100_000
    caller, receiver = party(funded), party()
    started = service.initiate(calls, ObjectId(caller.id), ObjectId(receiver.id), None)
    call_id = str(started.call["_id"])  # started.followups deliberately dropped
    time.sleep(2 + 2 + 0.5)  # past the reservation and the sweeper's grace

    celery_worker.send_task("calls.sweep").get(timeout=30)

    call = assert_settled_exactly_once(db, call_id, caller, receiver, funded)
    assert call["endReason"] == "renewal_missing"
    assert call["billedSeconds"] == 2 and int(call["cost"]) == DEFAULT.cost(2)


def test_renewal_and_settlement_run_twice_do_the_work_once(calls, db, party):
    funded = 100_000
    caller, receiver = party(funded), party()
    started = service.initiate(calls, ObjectId(caller.id), ObjectId(receiver.id), None)
    call_id = str(started.call["_id"])

    first = renewals.renew(calls, call_id, 2)
    second = renewals.renew(calls, call_id, 2)  # redelivered

    assert first == second and first[0].kwargs == {"call_id": call_id, "reserved_seconds": 4}
    assert int(hold_of(db, call_id)["amount"]) == DEFAULT.cost(4)
    assert wallet(db, caller.wallet)["held"] == DEFAULT.cost(4)
    service.end(calls, ObjectId(call_id), ObjectId(caller.id))
    settlement.settle_call(calls, call_id)
    settlement.settle_call(calls, call_id)
    assert_settled_exactly_once(db, call_id, caller, receiver, funded)


def test_a_call_reaching_the_maximum_duration_is_cut_off_there(settings, db, party):
    config = replace(settings.calls, max_duration_seconds=3)
    short = Runtime(lambda: replace(settings, calls=config)).calls()
    funded = 100_000
    caller, receiver = party(funded), party()
    started = service.initiate(short, ObjectId(caller.id), ObjectId(receiver.id), None)
    call_id = str(started.call["_id"])
    assert started.max_duration_seconds == 3

    (step,) = renewals.renew(short, call_id, 2)

    assert step.task == "calls.cut_off"
    assert call_doc(db, call_id)["finalReason"] == "max_duration"
    assert step.eta == call_doc(db, call_id)["startedAt"] + timedelta(seconds=3)
    assert renewals.cut_off(short, call_id) == [step]  # too early: comes back at the second
    time.sleep(max((step.eta - short.clock()).total_seconds(), 0) + 0.05)
    assert renewals.cut_off(short, call_id) == []
    call = assert_settled_exactly_once(db, call_id, caller, receiver, funded)
    assert call["endReason"] == "max_duration" and int(call["cost"]) == DEFAULT.cost(3)


def test_a_live_calls_hold_outlives_expire_holds(calls, db, ledger, party):
    caller, receiver = party(100_000), party()
    started = service.initiate(calls, ObjectId(caller.id), ObjectId(receiver.id), None)
    call_id = str(started.call["_id"])

    ledger.expire_holds(now=started.call["startedAt"] + timedelta(seconds=120))

    assert hold_of(db, call_id)["status"] == "open"
    service.end(calls, ObjectId(call_id), ObjectId(caller.id))
    settlement.settle_call(calls, call_id)
    assert hold_of(db, call_id)["status"] == "captured"


def test_ended_calls_answer_the_same_after_settlement(client, db, party, celery_worker):
    caller, receiver = party(100_000), party()
    call_id = start_call(client, caller, receiver)
    before = end_call(client, caller, call_id).get_json()
    wait_settled(db, call_id)

    after = end_call(client, receiver, call_id).get_json()

    assert after == before


def _initiate_outcome(calls: CallContext, caller, receiver) -> int:
    try:
        service.initiate(calls, ObjectId(caller.id), ObjectId(receiver.id), None)
        return 201
    except DomainError as exc:
        return exc.status


@pytest.mark.parametrize(("funded", "most"), [(200, 1), (1_000_000, 2)])
def test_without_the_caller_lock_the_slot_index_and_ledger_still_hold(
    calls, db, party, monkeypatch, funded, most
):
    """A lost Redis lock (expired, evicted) must not let initiates exceed the limit or
    the balance: the lock only keeps the race rare."""
    monkeypatch.setattr(service, "_caller_lock", lambda *_: nullcontext())
    caller = party(funded)
    receivers = [party() for _ in range(8)]

    outcomes = run_threads(_initiate_outcome, [(calls, caller, r) for r in receivers])

    assert 1 <= outcomes.count(201) <= most and set(outcomes) <= {201, 402, 409}
    open_calls = list(db.calls.find({"callerId": ObjectId(caller.id), "open": True}))
    assert len(open_calls) == outcomes.count(201)
    state = wallet(db, caller.wallet)
    assert state["held"] == sum(int(hold_of(db, str(c["_id"]))["amount"]) for c in open_calls)
    assert state["available"] >= 0
    for call in open_calls:
        service.end(calls, call["_id"], ObjectId(caller.id))
        settlement.settle_call(calls, str(call["_id"]))
    assert_ledger_healthy(db)


class _Killed(BaseException):
    """The gateway's process dying: nothing of it runs afterwards."""


def _killed(*_args, **_kwargs):
    raise _Killed


def _recording_a_call_raises(monkeypatch, error: BaseException) -> None:
    """Inserting a call raises `error`; every other insert goes through."""
    insert_one = Collection.insert_one

    def insert(collection: Collection, document, *args, **kwargs):
        if collection.name == "calls":
            raise error
        return insert_one(collection, document, *args, **kwargs)

    monkeypatch.setattr(Collection, "insert_one", insert)


def test_a_call_that_cannot_be_recorded_gives_its_hold_back(calls, db, party, monkeypatch):
    funded = 100_000
    caller, receiver = party(funded), party()
    _recording_a_call_raises(monkeypatch, AutoReconnect("the database went away after the hold"))

    with pytest.raises(AutoReconnect):
        service.initiate(calls, ObjectId(caller.id), ObjectId(receiver.id), None)

    assert db.calls.count_documents({"callerId": ObjectId(caller.id)}) == 0
    (hold,) = db.holds.find({"account": caller.wallet})
    assert hold["status"] == "released"
    assert wallet(db, caller.wallet) == {"balance": funded, "held": 0, "available": funded}
    assert_ledger_healthy(db)


def test_a_hold_left_by_a_gateway_killed_before_recording_its_call_expires(
    calls, db, party, monkeypatch
):
    """The gateway died between placing the first hold and recording the call: no call
    exists, and the hold gives the money back when it expires, billing nothing."""
    funded = 100_000
    caller, receiver = party(funded), party()
    with monkeypatch.context() as dying, pytest.raises(_Killed):
        _recording_a_call_raises(dying, _Killed())
        dying.setattr(calls.ledger, "release", _killed)  # nor does it give the hold back
        service.initiate(calls, ObjectId(caller.id), ObjectId(receiver.id), None)
    assert db.calls.count_documents({"callerId": ObjectId(caller.id)}) == 0
    (hold,) = db.holds.find({"account": caller.wallet})
    call_id = hold["_id"].removeprefix("call:")

    calls.ledger.expire_holds(now=hold["expiresAt"])

    assert hold_of(db, call_id)["status"] == "expired"
    assert wallet(db, caller.wallet) == {"balance": funded, "held": 0, "available": funded}
    assert_ledger_healthy(db)


def test_a_fee_changed_mid_call_neither_reprices_it_nor_conflicts_a_retried_settlement(
    calls, settings, db, party
):
    """The call keeps the fee in force when it started (20 %): a settlement run under a
    new PLATFORM_FEE_PERCENT splits at 20 %, and a retry whose first run captured but
    never recorded it (the process died in between) replays the capture, whatever the
    setting says by then."""
    funded = 100_000
    caller, receiver = party(funded), party()
    started = service.initiate(calls, ObjectId(caller.id), ObjectId(receiver.id), None)
    call_id = str(started.call["_id"])
    config = replace(settings.calls, platform_fee_percent=Decimal(50))
    repriced = Runtime(lambda: replace(settings, calls=config)).calls()
    time.sleep(1.1)
    service.end(calls, ObjectId(call_id), ObjectId(caller.id))

    settlement.settle_call(repriced, call_id)
    assert_settled_exactly_once(db, call_id, caller, receiver, funded)
    db.calls.update_one({"_id": ObjectId(call_id)}, {"$set": {"settled": False}})
    settlement.settle_call(calls, call_id)

    call = assert_settled_exactly_once(db, call_id, caller, receiver, funded)
    assert call["platformFeeBasisPoints"] == 2000


def test_the_low_funds_warning_is_published_once_however_many_renewals_race(
    calls, db, redis_client, party
):
    """Renewals racing on one call each read it unwarned; the first to mark it publishes."""
    caller, receiver = party(450), party()  # 5 s: not low at the start
    started = service.initiate(calls, ObjectId(caller.id), ObjectId(receiver.id), None)
    unwarned = call_doc(db, str(started.call["_id"]))
    assert "lowFundsWarnedAt" not in unwarned

    with live_events.subscribe(redis_client, caller.id) as events:
        run_threads(lambda: reservations.warn_low_funds(calls, unwarned), [()] * 4)
        states = []
        while (event := events.next_event(timeout=0.5)) is not None:
            states.append(event["data"]["state"])

    assert states == ["low_funds"]
    assert "lowFundsWarnedAt" in call_doc(db, str(started.call["_id"]))
    service.end(calls, started.call["_id"], ObjectId(caller.id))
    settlement.settle_call(calls, str(started.call["_id"]))


def test_a_call_short_of_its_next_block_is_renewed_early_to_warn_in_time(
    settings, db, redis_client, party
):
    """6-second blocks, a warning 3 seconds before the end, money for the first block
    only: the call's renewal comes at 3 s (not 5 s) to warn both participants, then
    again at 5 s, the last chance to buy more; nothing came, so it is cut off at 6 s."""
    config = replace(settings.calls, hold_block_seconds=6, low_funds_warning_seconds=3)
    short = Runtime(lambda: replace(settings, calls=config)).calls()
    caller, receiver = party(DEFAULT.cost(6)), party()
    started = service.initiate(short, ObjectId(caller.id), ObjectId(receiver.id), None)
    call_id, start = str(started.call["_id"]), started.call["startedAt"]

    def at(seconds: int) -> CallContext:
        return replace(short, clock=lambda: start + timedelta(seconds=seconds))

    (warn_step,) = started.followups
    assert (warn_step.task, warn_step.eta) == ("calls.renew", start + timedelta(seconds=3))
    assert "lowFundsWarnedAt" not in call_doc(db, call_id)
    with live_events.subscribe(redis_client, receiver.id) as events:
        (last_chance,) = renewals.renew(at(3), call_id, 6)
        warning = events.next_event(timeout=5)
    assert warning["data"]["state"] == "low_funds" and warning["data"]["secondsLeft"] == 3
    assert (last_chance.task, last_chance.eta) == ("calls.renew", start + timedelta(seconds=5))
    assert "finalReason" not in call_doc(db, call_id)

    (cut_off,) = renewals.renew(at(5), call_id, 6)

    assert (cut_off.task, cut_off.eta) == ("calls.cut_off", start + timedelta(seconds=6))
    assert call_doc(db, call_id)["finalReason"] == "insufficient_funds"
    service.end(short, ObjectId(call_id), ObjectId(caller.id))
    settlement.settle_call(short, call_id)
