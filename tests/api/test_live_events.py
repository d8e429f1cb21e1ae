"""GET /wallet/events over real HTTP: the owner's balance and call events as Server-Sent
Events, a heartbeat, the end of the stream when the token expires."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import redis
import requests
from bson import ObjectId
from flask_jwt_extended import create_access_token
from prometheus_client import REGISTRY

from shared import live_events
from shared.calls.rating import Tariff
from shared.ledger import Ledger, LedgerReads, wallet_id
from tests.support.calls_support import call_doc, wait_settled
from tests.support.funding_support import pay
from tests.support.polling import wait_until
from tests.support.users import User, signup

WAIT = 10  # seconds a test waits for something that should come at once


@dataclass(frozen=True)
class Frame:
    event: str | None  # None for a comment (the heartbeat)
    data: dict[str, Any] | None


class EventStream:
    """Reads an SSE response in a background thread, frame by frame."""

    def __init__(self, url: str, token: str):
        self.response = requests.get(
            url, headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=(5, 30)
        )
        self.frames: queue.Queue[Frame | None] = queue.Queue()
        if self.response.status_code == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        event, data, comment = None, None, False
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line.startswith(":"):
                    comment = True
                elif line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = json.loads(line.removeprefix("data: "))
                elif line == "" and (event or comment):
                    self.frames.put(Frame(event, data))
                    event, data, comment = None, None, False
        except (requests.RequestException, AttributeError, OSError):
            pass  # the test closed the response under the reader (urllib3 then has no fp)
        self.frames.put(None)  # the server ended the stream

    def next(self, timeout: float = WAIT) -> Frame | None:
        return self.frames.get(timeout=timeout)

    def next_event(self, event: str, timeout: float = WAIT) -> Frame:
        """The next frame of this type, skipping heartbeats and other events."""
        while True:
            frame = self.next(timeout)
            assert frame is not None, f"the stream ended before a {event!r} event"
            if frame.event == event:
                return frame

    def close(self) -> None:
        self.response.close()


@pytest.fixture()
def open_streams():
    streams: list[EventStream] = []

    def _open(gateway: str, token: str) -> EventStream:
        stream = EventStream(f"{gateway}/wallet/events", token)
        streams.append(stream)
        return stream

    yield _open
    for stream in streams:
        stream.close()


def _token(user) -> str:
    return user.headers["Authorization"].removeprefix("Bearer ")


def test_the_stream_opens_with_the_current_balances(gateway, runtime, open_streams):
    user = signup(gateway)
    runtime.ledger().credit(f"sse-{uuid.uuid4().hex}", _wallet(user), 120050)
    stream = open_streams(gateway, _token(user))
    assert stream.response.headers["Content-Type"].startswith("text/event-stream")
    assert stream.response.headers["X-Accel-Buffering"] == "no"
    ready = stream.next_event("ready")
    (wallet,) = [b for b in ready.data["balances"] if b["currency"] == "NGN"]
    assert wallet == {
        "account": _wallet(user),
        "currency": "NGN",
        "balance": 1200.5,  # major units, as GET /wallet/balance shows them
        "held": 0,
        "available": 1200.5,
    }


def test_a_credit_reaches_the_stream_within_a_second(gateway, runtime, open_streams):
    user = signup(gateway)
    stream = open_streams(gateway, _token(user))
    stream.next_event("ready")
    runtime.ledger().credit(f"sse-{uuid.uuid4().hex}", _wallet(user), 5000)
    frame = stream.next_event("balance", timeout=1.0)
    assert frame.data["type"] == "balance"
    assert frame.data["data"]["balance"] == 50
    assert frame.data["data"]["available"] == 50


def test_a_funding_paid_at_monnify_streams_its_credit(gateway, monnify_sim, open_streams):
    user = signup(gateway)
    stream = open_streams(gateway, _token(user))
    stream.next_event("ready")
    pay(monnify_sim, user.fund(5000))
    frame = stream.next_event("balance")
    assert frame.data["data"]["balance"] == 5000


def test_holds_stream_the_available_balance(gateway, runtime, open_streams):
    user = signup(gateway)
    ledger = runtime.ledger()
    ledger.credit(f"sse-{uuid.uuid4().hex}", _wallet(user), 5000)
    stream = open_streams(gateway, _token(user))
    stream.next_event("ready")
    expiry = ledger.clock() + timedelta(minutes=5)
    ledger.hold(f"sse-{uuid.uuid4().hex}", _wallet(user), 1500, expiry)
    data = stream.next_event("balance").data["data"]
    assert (data["balance"], data["held"], data["available"]) == (50, 15, 35)


def test_nobody_sees_another_users_events(gateway, runtime, open_streams):
    watcher, other = signup(gateway), signup(gateway)
    stream = open_streams(gateway, _token(watcher))
    stream.next_event("ready")
    ledger = runtime.ledger()
    ledger.credit(f"sse-{uuid.uuid4().hex}", _wallet(other), 700)
    ledger.credit(f"sse-{uuid.uuid4().hex}", _wallet(watcher), 300)
    assert stream.next_event("balance").data["data"]["balance"] == 3


def test_heartbeats_keep_an_idle_stream_alive(gateway, open_streams):
    stream = open_streams(gateway, _token(signup(gateway)))
    stream.next_event("ready")
    frame = stream.next()  # nothing happens to this wallet: only heartbeats come
    assert frame == Frame(None, None)
    assert stream.next() == Frame(None, None)


def test_the_stream_ends_when_the_token_expires(gateway, app, open_streams):
    user = signup(gateway)
    session = jwt.decode(_token(user), options={"verify_signature": False})
    with app.app_context():
        token = create_access_token(
            identity=user.id,
            additional_claims={"sid": session["sid"], "sv": session["sv"]},
            expires_delta=timedelta(seconds=2),
        )
    stream = open_streams(gateway, token)
    stream.next_event("ready")
    expired = stream.next_event("expired")
    assert "reconnect" in expired.data["message"]
    assert stream.next() is None  # and the server closed it


def test_call_state_changes_reach_both_participants(gateway, redis_client, open_streams):
    caller, receiver = signup(gateway), signup(gateway)
    caller_stream = open_streams(gateway, _token(caller))
    receiver_stream = open_streams(gateway, _token(receiver))
    caller_stream.next_event("ready")
    receiver_stream.next_event("ready")
    call = {"_id": ObjectId(), "callerId": caller.id, "receiverId": receiver.id, "cost": 12050}
    live_events.publish_call(redis_client, call, live_events.CALL_CUT_OFF)
    for stream in (caller_stream, receiver_stream):
        data = stream.next_event("call").data["data"]
        assert data["callId"] == str(call["_id"]) and data["state"] == "cut_off"
        assert data["cost"] == 120.5


def _start_a_watched_call(gateway, runtime, open_streams) -> tuple[User, EventStream, str]:
    """A funded caller whose stream is open and ready calls a new user through the API:
    (the caller, their stream, the call id)."""
    caller, receiver = signup(gateway), signup(gateway)
    runtime.ledger().credit(f"sse-{uuid.uuid4().hex}", _wallet(caller), 100000)
    stream = open_streams(gateway, _token(caller))
    stream.next_event("ready")
    started = caller.post("/calls/initiate", {"receiverId": receiver.id})
    assert started.status_code == 201, started.text
    return caller, stream, started.json()["callId"]


def test_a_call_ended_through_the_api_is_streamed(gateway, runtime, open_streams):
    caller, stream, call_id = _start_a_watched_call(gateway, runtime, open_streams)
    initiated = stream.next_event("call").data["data"]
    assert (initiated["callId"], initiated["state"]) == (call_id, "initiated")
    assert caller.post(f"/calls/{call_id}/end").status_code == 200
    ended = stream.next_event("call").data["data"]
    while ended["state"] == "extended":  # a renewal may have come in between
        ended = stream.next_event("call").data["data"]
    assert ended["state"] == "ended" and ended["endReason"] == "caller_hangup"
    assert ended["callId"] == call_id


def test_a_renewed_call_streams_its_extension(gateway, settings, open_streams, runtime):
    caller, stream, call_id = _start_a_watched_call(gateway, runtime, open_streams)
    try:
        # Test settings: 2-second blocks, renewed a second before they run out.
        states = [stream.next_event("call").data["data"]["state"] for _ in range(2)]
        assert states == ["initiated", "extended"]
    finally:
        caller.post(f"/calls/{call_id}/end")


def _call_state(stream: EventStream, state: str) -> dict[str, Any]:
    """The data of the stream's next call event in `state`, skipping the others."""
    deadline = time.monotonic() + 3 * WAIT  # heartbeats keep the stream itself alive
    while time.monotonic() < deadline:
        data = stream.next_event("call").data["data"]
        if data["state"] == state:
            return data
    raise AssertionError(f"no {state!r} call event came")


def test_a_caller_about_to_run_out_is_warned_and_a_top_up_keeps_the_call_going(
    gateway, settings, db, open_streams, runtime
):
    """5 NGN pay for 6 seconds at 50 NGN a minute (test blocks: 2 s, renewed 1 s before
    they end). When the renewal at 3 s holds the last whole block, both participants
    hear how many seconds are left, once; money credited then lets the renewal at 5 s
    go on, past the sixth second where the call would have been cut off."""
    caller, receiver = signup(gateway), signup(gateway)
    ledger = runtime.ledger()
    ledger.credit(f"sse-{uuid.uuid4().hex}", _wallet(caller), 500)
    streams = [open_streams(gateway, _token(user)) for user in (caller, receiver)]
    for stream in streams:
        stream.next_event("ready")
    started = caller.post("/calls/initiate", {"receiverId": receiver.id})
    assert started.status_code == 201, started.text
    call_id = started.json()["callId"]

    warnings = [_call_state(stream, "low_funds") for stream in streams]
    ledger.credit(f"sse-{uuid.uuid4().hex}", _wallet(caller), 100_000)

    limit = settings.calls.low_funds_warning_seconds
    assert all(w["callId"] == call_id and 0 <= w["secondsLeft"] <= limit for w in warnings)
    call = wait_until(lambda: (c := call_doc(db, call_id))["reservedSeconds"] > 6 and c)
    past_the_old_cut_off = call["startedAt"] + timedelta(seconds=7)
    time.sleep(max((past_the_old_cut_off - datetime.now(UTC)).total_seconds(), 0))
    call = call_doc(db, call_id)
    assert call["status"] == "initiated" and "finalReason" not in call
    assert caller.post(f"/calls/{call_id}/end").status_code == 200
    for stream in streams:  # warned once: no other warning came before the end
        states = []
        while not states or states[-1] != "ended":
            states.append(stream.next_event("call").data["data"]["state"])
        assert "low_funds" not in states
    settled = wait_settled(db, call_id)
    assert int(settled["cost"]) == Tariff(5000, 0, 1).cost(settled["billedSeconds"])
    assert settled["durationSeconds"] > 6


def test_the_stream_needs_a_valid_token(gateway):
    response = requests.get(f"{gateway}/wallet/events", timeout=10)
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401


def test_a_user_may_hold_only_a_few_streams(gateway, open_streams):
    user = signup(gateway)
    streams = [open_streams(gateway, _token(user)) for _ in range(3)]
    for stream in streams:
        stream.next_event("ready")
    refused = open_streams(gateway, _token(user))
    assert refused.response.status_code == 429
    assert refused.response.json()["statusCode"] == 429
    streams[0].close()
    again = _wait_for_a_free_stream(gateway, user, open_streams)
    again.next_event("ready")


def test_head_requests_hold_no_stream(gateway, open_streams):
    """A HEAD answer has no body, so the stream never runs: its slot is freed all the same."""
    user = signup(gateway)
    for _ in range(3):
        response = requests.head(f"{gateway}/wallet/events", headers=user.headers, timeout=10)
        assert response.status_code == 200
    stream = open_streams(gateway, _token(user))
    assert stream.response.status_code == 200, stream.response.text
    stream.next_event("ready")


def _wait_for_a_free_stream(gateway, user, open_streams) -> EventStream:
    """The server notices a closed stream at its next write (a heartbeat)."""
    for _ in range(50):
        stream = open_streams(gateway, _token(user))
        if stream.response.status_code == 200:
            return stream
        threading.Event().wait(0.2)
    raise AssertionError("the closed stream's slot was never freed")


class _PublishFails(redis.Redis):
    def publish(self, *_args, **_kwargs):
        raise redis.ConnectionError("pub/sub is down")


def test_a_publish_failure_never_fails_the_movement(db, settings):
    ledger = Ledger(db, _PublishFails.from_url(settings.redis_url))
    before = _publish_failures()
    account = wallet_id(ObjectId(), "NGN")
    result = ledger.credit(f"sse-{uuid.uuid4().hex}", account, 900)
    assert not result.replayed
    assert LedgerReads(db).wallet(account).balance == 900
    assert _publish_failures() == before + 1


def _publish_failures() -> float:
    return REGISTRY.get_sample_value("live_event_publish_failures_total") or 0.0


def _wallet(user) -> str:
    return wallet_id(user.id, "NGN")


def _assert_ends_revoked(stream: EventStream) -> dict[str, Any]:
    """The stream says why and the server closes it, within a heartbeat (0.5 s here) of
    the change: the frames are bounded (heartbeats also pile up while the test acts)."""
    frames = [stream.next()]
    while frames[-1] is not None and len(frames) < 40:
        frames.append(stream.next())
    assert frames[-1] is None, "the stream went on after its token stopped working"
    events = [frame for frame in frames[:-1] if frame.event is not None]
    assert [frame.event for frame in events] == ["revoked"]
    return events[0].data


def test_the_stream_ends_after_a_logout(gateway, open_streams):
    user = signup(gateway)
    stream = open_streams(gateway, _token(user))
    stream.next_event("ready")
    assert stream.next() == Frame(None, None)  # a heartbeat: the token still works
    logout = requests.post(f"{gateway}/auth/logout", headers=user.headers, timeout=10)
    assert logout.status_code == 204
    assert "revoked" in _assert_ends_revoked(stream)["message"].lower()


def test_the_stream_ends_after_a_logout_of_every_session(gateway, open_streams):
    user = signup(gateway)
    stream = open_streams(gateway, _token(user))
    stream.next_event("ready")
    response = requests.post(f"{gateway}/auth/logout-all", headers=user.headers, timeout=10)
    assert response.status_code == 204
    _assert_ends_revoked(stream)


def test_the_stream_ends_when_the_user_is_disabled(gateway, test_env, open_streams):
    user = signup(gateway)
    stream = open_streams(gateway, _token(user))
    stream.next_event("ready")
    command = [sys.executable, "-m", "services.manage", "disable-user", user.email]
    disabled = subprocess.run(
        command, env={**os.environ, **test_env}, capture_output=True, text=True, timeout=60
    )
    assert disabled.returncode == 0, disabled.stderr
    assert "disabled" in _assert_ends_revoked(stream)["message"]
