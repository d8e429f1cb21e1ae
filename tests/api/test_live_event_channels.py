"""Live events' Redis side, on fakeredis: one channel per user, each event a JSON message
on it, a call's events on both participants' channels and no one else's, and a publish
that can't reach Redis never raises. The stream over HTTP: test_live_events.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest

from shared.live_events import (
    BALANCE,
    CALL,
    CALL_ENDED,
    balance_data,
    channel,
    publish,
    publish_call,
)


@pytest.fixture()
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture()
def fake(server) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=server)


Subscriptions = dict[str, Any]  # user id -> that user's open pubsub


@pytest.fixture()
def subscribe(fake) -> Iterator[Callable[..., Subscriptions]]:
    """Open one subscription per user, as a stream does, before anything is published."""
    opened: list[Any] = []

    def _subscribe(*user_ids: str) -> Subscriptions:
        subscriptions = {user_id: fake.pubsub() for user_id in user_ids}
        for user_id, pubsub in subscriptions.items():
            pubsub.subscribe(channel(user_id))
            pubsub.get_message(timeout=0.1)  # the subscription's own reply
        opened.extend(subscriptions.values())
        return subscriptions

    yield _subscribe
    for pubsub in opened:
        pubsub.close()


def received(subscriptions: Subscriptions) -> dict[str, list[dict[str, Any]]]:
    """The events each user's channel carried."""
    return {user_id: _events(pubsub) for user_id, pubsub in subscriptions.items()}


def _events(pubsub: Any) -> list[dict[str, Any]]:
    events = []
    while message := pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1):
        events.append(json.loads(message["data"]))
    return events


def test_each_user_has_a_channel_of_their_own():
    assert channel("u1") != channel("u2")
    assert channel("u1").endswith("u1")


def test_an_event_is_one_json_message_on_its_users_channel_only(fake, subscribe):
    subscriptions = subscribe("u1", "u2")
    data = balance_data("wallet:u1:NGN", "NGN", balance=5000, held=1500)
    publish(fake, "u1", BALANCE, data)
    seen = received(subscriptions)
    assert seen["u2"] == []
    [event] = seen["u1"]
    assert event["type"] == BALANCE
    assert event["data"] == {**data, "available": 3500}
    assert event["at"]


def test_a_calls_event_reaches_both_participants_and_no_one_else(fake, subscribe):
    subscriptions = subscribe("caller", "receiver", "bystander")
    call = {"_id": "call-1", "callerId": "caller", "receiverId": "receiver", "cost": 250}
    publish_call(fake, call, CALL_ENDED, endReason="hangup")
    seen = received(subscriptions)
    assert seen["bystander"] == []
    for user_id in ("caller", "receiver"):
        [event] = seen[user_id]
        assert event["type"] == CALL
        assert event["data"]["callId"] == "call-1"
        assert event["data"]["state"] == CALL_ENDED
        assert event["data"]["endReason"] == "hangup"


def test_a_publish_that_cannot_reach_redis_does_not_raise(server, fake):
    server.connected = False
    publish(fake, "u1", BALANCE, balance_data("wallet:u1:NGN", "NGN", 1, 0))
