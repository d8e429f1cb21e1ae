"""Live per-user events over Redis pub/sub: what `GET /wallet/events` streams.

Publishers (the ledger after a commit, the calls code on a state change) call
`publish`; a failure is logged and counted, never raised: an event is a courtesy to an
open screen, and the movement it reports has already happened. Pub/sub delivers only to
subscribers connected at that moment, which is what a live stream wants; a client that
reconnects reads the current balance from its first event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import redis

from shared.logs import get_logger
from shared.metrics import LIVE_EVENT_FAILURES

log = get_logger(__name__)

CHANNEL_PREFIX = "user-events:"

# Event types.
BALANCE = "balance"
CALL = "call"

# A call's states, as its participants see them.
CALL_INITIATED = "initiated"
CALL_EXTENDED = "extended"  # another block reserved
CALL_LOW_FUNDS = "low_funds"  # the money runs out soon: top up to go on (secondsLeft)
CALL_CUT_OFF = "cut_off"  # ended because the caller's money ran out
CALL_ENDED = "ended"


def channel(user_id: object) -> str:
    return f"{CHANNEL_PREFIX}{user_id}"


def publish(redis_client: redis.Redis, user_id: object, event_type: str, data: dict) -> None:
    """Send one event to the user's open streams; never raises."""
    message = json.dumps(
        {"type": event_type, "at": datetime.now(UTC).isoformat(), "data": data}, default=str
    )
    try:
        redis_client.publish(channel(user_id), message)
    except redis.RedisError as exc:
        LIVE_EVENT_FAILURES.inc()
        log.warning("live_event_not_published", event_type=event_type, error=type(exc).__name__)


def balance_data(account: str, currency: str, balance: int, held: int) -> dict[str, Any]:
    return {
        "account": account,
        "currency": currency,
        "balance": balance,
        "held": held,
        "available": balance - held,
    }


def publish_call(redis_client: redis.Redis, call: dict[str, Any], state: str, **extra: Any) -> None:
    """A call's state change, to both its participants; `extra`: what that state adds."""
    data = {
        "callId": str(call["_id"]),
        "state": state,
        "callerId": str(call["callerId"]),
        "receiverId": str(call["receiverId"]),
        "paidUntil": call.get("paidUntil"),
        "durationSeconds": call.get("durationSeconds"),
        "cost": call.get("cost"),
        "currency": call.get("currency"),
        "endReason": call.get("endReason"),
        **extra,
    }
    for user_id in (call["callerId"], call["receiverId"]):
        publish(redis_client, user_id, CALL, data)


class Subscription:
    """One user's channel, read with a timeout so the reader can send heartbeats."""

    def __init__(self, pubsub: redis.client.PubSub):
        self._pubsub = pubsub

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None if none arrived within `timeout` seconds."""
        message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        if message is None or message.get("type") != "message":
            return None
        return json.loads(message["data"])


@contextmanager
def subscribe(redis_client: redis.Redis, user_id: object) -> Iterator[Subscription]:
    """Subscribed before this yields, so nothing published afterwards is missed."""
    pubsub = redis_client.pubsub()
    try:
        pubsub.subscribe(channel(user_id))
        # Wait for the confirmation: only then does Redis route messages to us.
        pubsub.get_message(timeout=5)
        yield Subscription(pubsub)
    finally:
        pubsub.close()
