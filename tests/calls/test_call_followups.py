"""Follow-ups: the tasks a call step returns go out at their time, with the request id
of the step that asked for them, whichever process (gateway or worker) sends them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog

from shared.calls.followups import schedule
from shared.calls.model import RENEW_TASK, SETTLE_TASK, Followup
from shared.logs import bind_request_id

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _unbound() -> Iterator[None]:
    yield
    structlog.contextvars.clear_contextvars()


def test_each_follow_up_is_sent_at_its_time_with_the_request_id():
    sent: list[tuple[str, dict[str, Any]]] = []
    bind_request_id("request-1")

    schedule(
        lambda name, **options: sent.append((name, options)),
        [
            Followup(RENEW_TASK, AT, {"call_id": "c1", "reserved_seconds": 60}),
            Followup(SETTLE_TASK, AT, {"call_id": "c2"}),
        ],
    )

    headers = {"request_id": "request-1"}
    assert sent == [
        (
            RENEW_TASK,
            {"kwargs": {"call_id": "c1", "reserved_seconds": 60}, "eta": AT, "headers": headers},
        ),
        (SETTLE_TASK, {"kwargs": {"call_id": "c2"}, "eta": AT, "headers": headers}),
    ]
