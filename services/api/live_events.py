"""GET /wallet/events: the owner's live events as Server-Sent Events.

Balance changes (published by the ledger after each commit) and call state changes
(published by the calls code) arrive through Redis pub/sub on the user's channel. The
stream opens with a `ready` event carrying the current balances, sends a heartbeat
comment every SSE_HEARTBEAT_SECONDS so proxies neither buffer nor time it out, and ends
with an `expired` event when the access token expires: the client reconnects with a
fresh one. At each heartbeat the token is checked again as a request's is (one Redis
round trip): after a logout, a logout-all or the user's disabling the stream ends with a
`revoked` event within a heartbeat.

Each open stream holds one gunicorn thread and one Redis connection for its life
(README, Operations: how it scales); a user may hold a few at once, not more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import redis
from bson import ObjectId
from flask import Response, current_app
from flask_jwt_extended import current_user, get_jwt, jwt_required

from services.api.blueprint import Blueprint
from services.api.runtime import runtime
from services.api.tokens import token_refusal
from shared import live_events
from shared.errors import DomainError, ErrorCode
from shared.ledger import LedgerReads
from shared.money import exponent_of, to_major

MAX_STREAMS_PER_USER = 3
RECONNECT_MILLISECONDS = 3000
_OPEN_STREAMS = "sse:open:"
READY = "ready"  # the first event: the current balances
EXPIRED = "expired"  # the last: the token expired
REVOKED = "revoked"  # the last: the session ended or the user was disabled


class TooManyStreams(DomainError):
    status = 429
    error = "Too Many Requests"
    code = ErrorCode.TOO_MANY_STREAMS


# One event of the stream, as OpenAPI 3.2 describes Server-Sent Events (its fields; a
# heartbeat comment is no event). `data` is JSON text.
_EVENT = {
    "type": "object",
    "properties": {
        "event": {
            "type": "string",
            "enum": [READY, live_events.BALANCE, live_events.CALL, EXPIRED, REVOKED],
        },
        "data": {"type": "string", "description": "JSON"},
        "retry": {"type": "integer", "minimum": 0},
    },
}

blp = Blueprint("live_events", __name__, url_prefix="/wallet", description="Live wallet events")


@blp.route("/events", methods=["GET"])
@jwt_required()
@blp.errors(HTTPStatus.TOO_MANY_REQUESTS)
@blp.doc(
    responses={
        "200": {
            "description": "A text/event-stream: `ready` (current balances), then `balance` "
            "and `call` events, heartbeat comments, and `expired` when the token expires "
            "or `revoked` (within a heartbeat) when its session ends or the user is "
            "disabled.",
            "content": {"text/event-stream": {"schema": _EVENT}},
        }
    },
)
def stream():
    """Stream your balance changes and call state changes as they happen."""
    redis_client = runtime.redis_client()
    db = runtime.db()
    user_id = current_user["_id"]
    claims = get_jwt()
    _claim_stream(redis_client, user_id, int(claims["exp"]))
    source = _Stream(
        redis_client,
        runtime.ledger_reads(),
        user_id,
        expires_at=float(claims["exp"]),
        heartbeat=runtime.settings().sse_heartbeat_seconds,
        dumps=current_app.json.dumps,
        refusal=lambda: token_refusal(redis_client, db, claims),
    )
    response = Response(
        source.frames(),
        content_type="text/event-stream",
        headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"},
    )
    # Freed when the server closes the response, even if the body never ran (a HEAD
    # request has none, and closing a generator that never started runs no `finally`).
    response.call_on_close(lambda: _release_stream(redis_client, user_id))
    return response


def _claim_stream(redis_client: redis.Redis, user_id: ObjectId, expires_at: int) -> None:
    """Count the user's open streams; the key outlives any stream (its token's life)."""
    key = _open_streams_key(user_id)
    with redis_client.pipeline() as pipe:
        pipe.incr(key)
        pipe.expireat(key, expires_at + 60)
        count = pipe.execute()[0]
    if count > MAX_STREAMS_PER_USER:
        redis_client.decr(key)
        raise TooManyStreams(
            f"At most {MAX_STREAMS_PER_USER} event streams may be open at once",
            {"limit": MAX_STREAMS_PER_USER},
        )


def _release_stream(redis_client: redis.Redis, user_id: ObjectId) -> None:
    redis_client.decr(_open_streams_key(user_id))


def _open_streams_key(user_id: ObjectId) -> str:
    return f"{_OPEN_STREAMS}{user_id}"


class _Stream:
    def __init__(
        self,
        redis_client: redis.Redis,
        reads: LedgerReads,
        user_id: ObjectId,
        *,
        expires_at: float,
        heartbeat: float,
        dumps: Callable[[Any], str],
        refusal: Callable[[], str | None],
    ):
        self.redis = redis_client
        self.reads = reads
        self.user_id = user_id
        self.expires_at = expires_at
        self.heartbeat = heartbeat
        self.dumps = dumps
        self.refusal = refusal  # why the stream's token no longer works, None while it does

    def frames(self) -> Iterator[str]:
        """Runs as the server sends the body; closing it (the client left) ends it."""
        with live_events.subscribe(self.redis, self.user_id) as subscription:
            # Subscribed first: a change after this snapshot still arrives as an event.
            yield f"retry: {RECONNECT_MILLISECONDS}\n"
            yield self._frame(READY, {"balances": self._balances()})
            yield from self._follow(subscription)

    def _follow(self, subscription: live_events.Subscription) -> Iterator[str]:
        next_beat = time.monotonic() + self.heartbeat
        while (left := self.expires_at - time.time()) > 0:
            event = subscription.next_event(max(min(next_beat - time.monotonic(), left), 0))
            if event is not None:
                yield self._frame(event["type"], _as_the_api_shows_it(event))
            if time.monotonic() >= next_beat:
                if (reason := self.refusal()) is not None:
                    yield self._frame(REVOKED, {"message": reason})
                    return
                yield ": heartbeat\n\n"
                next_beat = time.monotonic() + self.heartbeat
        yield self._frame(
            EXPIRED, {"message": "The access token expired; reconnect with a new one"}
        )

    def _balances(self) -> list[dict[str, Any]]:
        return [
            _in_major_units(live_events.balance_data(w.account, w.currency, w.balance, w.held))
            for w in self.reads.wallets_of(self.user_id)
        ]

    def _frame(self, event_type: str, data: dict[str, Any]) -> str:
        return f"event: {event_type}\ndata: {self.dumps(data)}\n\n"


_AMOUNTS = ("balance", "held", "available", "cost")


def _in_major_units(data: dict[str, Any]) -> dict[str, Any]:
    """Amounts as every other endpoint shows them: major units, exactly."""
    exponent = exponent_of(data.get("currency") or "NGN")
    return {
        key: to_major(int(value), exponent) if key in _AMOUNTS and value is not None else value
        for key, value in data.items()
    }


def _as_the_api_shows_it(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "data": _in_major_units(event["data"])}
