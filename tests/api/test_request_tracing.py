"""A request id follows the work it started: the id of the request that enqueued a task
is on every log line that task writes, and a funding can be followed from the fund
request through the webhook to the credit."""

from __future__ import annotations

import uuid

from shared.calls.model import RENEW_TASK
from tests.support.calls_support import end_call
from tests.support.funding_support import notification, pay, post_signed
from tests.support.log_capture import capture_logs
from tests.support.polling import wait_until
from tests.support.span_recorder import SPANS
from tests.support.users import signup


def test_the_webhooks_request_id_is_on_the_log_lines_of_the_task_it_enqueued(
    gateway, monnify_sim, settings
):
    user = signup(gateway)
    fund_id, hook_id = f"fund-{uuid.uuid4().hex}", f"hook-{uuid.uuid4().hex}"
    with capture_logs() as logs:
        response = user.post("/wallet/fund", {"amount": 5000}, headers={"X-Request-ID": fund_id})
        assert response.status_code == 201 and response.headers["X-Request-ID"] == fund_id
        funding = response.json()
        pay(monnify_sim, funding, notify=False)
        body = notification(funding, 5000)
        hook = post_signed(
            gateway, body, settings.monnify_secret_key, headers={"X-Request-ID": hook_id}
        )
        assert hook.status_code == 200 and hook.headers["X-Request-ID"] == hook_id
        user.wait_for_balance(5000)
        wait_until(logs.lines, lambda lines: _events(lines, hook_id) >= {"funding_credited"})

    lines = logs.lines()
    by_fund, by_hook = _events(lines, fund_id), _events(lines, hook_id)
    assert "funding_started" in by_fund
    # The gateway's line for the webhook, and the worker's lines for the task it enqueued.
    assert {"webhook_stored", "ledger_operation", "funding_credited"} <= by_hook
    task_loggers = {line["logger"] for line in lines if line.get("request_id") == hook_id}
    assert "shared.funding.confirmation" in task_loggers
    # One id joins the two requests: the funding's paymentReference.
    reference = funding["paymentReference"]
    joined = {line["event"] for line in lines if line.get("paymentReference") == reference}
    assert {"funding_started", "funding_credited"} <= joined


def test_a_task_enqueued_without_a_request_id_logs_under_its_own_task_id(celery_worker, settings):
    with capture_logs() as logs:
        result = celery_worker.send_task("ledger.check_invariants")
        result.get(timeout=30)
        # Celery logs the success line just after it stores the result.
        traced = wait_until(logs.lines, lambda lines: _succeeded(lines, result.id))
    assert _succeeded(traced, result.id)["request_id"] == result.id


def test_a_calls_renewals_log_under_the_request_that_started_it(client, party, celery_worker):
    """The gateway enqueues a call's first renewal and the worker each one after it:
    every one carries the id of the request that initiated the call."""
    caller, receiver = party(100_000), party()
    request_id = f"call-{uuid.uuid4().hex}"
    with capture_logs() as logs:
        headers = {**caller.headers, "X-Request-ID": request_id}
        started = client.post("/calls/initiate", json={"receiverId": receiver.id}, headers=headers)
        assert started.status_code == 201, started.get_json()
        # 2-second blocks renewed a second before they end (tests/conftest.py): the
        # second renewal is one the worker enqueued.
        wait_until(logs.lines, lambda lines: len(_renewals(lines, request_id)) >= 2)
        end_call(client, caller, started.get_json()["callId"])


def _renewals(lines: list[dict], request_id: str) -> list[dict]:
    return [
        line
        for line in lines
        if line.get("request_id") == request_id
        and line["event"].startswith(f"Task {RENEW_TASK}[")
        and "succeeded" in line["event"]
    ]


def _succeeded(lines: list[dict], task_id: str) -> dict | None:
    return next((line for line in lines if f"[{task_id}] succeeded" in line["event"]), None)


def _events(lines: list[dict], request_id: str) -> set[str]:
    return {line["event"] for line in lines if line.get("request_id") == request_id}


def test_a_fundings_webhook_and_its_confirmation_share_one_trace(gateway, monnify_sim, settings):
    """One trace from Monnify's webhook through the queue to the worker's status call to
    Monnify and its ledger transaction; its ids are on the task's log lines."""
    user = signup(gateway)
    funding = user.post("/wallet/fund", {"amount": 5000}).json()
    pay(monnify_sim, funding, notify=False)
    with SPANS.recording() as spans, capture_logs() as logs:
        hook = post_signed(gateway, notification(funding, 5000), settings.monnify_secret_key)
        assert hook.status_code == 200
        user.wait_for_balance(5000)
        wait_until(logs.lines, lambda lines: _line(lines, "funding_credited") is not None)
        finished = wait_until(spans.get_finished_spans, lambda found: _task_run(found) is not None)

    webhook = next(s for s in finished if s.name == "POST /payments/monnify/webhook")
    trace_id = webhook.context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    names = {s.name for s in in_trace}
    assert "apply_async/payments.process_event" in names  # the gateway enqueued it
    assert _task_run(in_trace) is not None  # the worker ran it in the same trace
    # The worker asked Monnify for the transaction's status, and committed the credit.
    status_calls = [s for s in in_trace if s.name == "GET" and _url(s).startswith(monnify_sim)]
    assert any("/api/v2/transactions/" in _url(s) for s in status_calls)
    assert "admin.commitTransaction" in names
    credited = _line(logs.lines(), "funding_credited")
    assert credited["trace_id"] == f"{trace_id:032x}" and len(credited["span_id"]) == 16


def _url(span) -> str:
    return span.attributes.get("url.full") or span.attributes.get("http.url") or ""


def _task_run(spans) -> object | None:
    return next((s for s in spans if s.name == "run/payments.process_event"), None)


def _line(lines: list[dict], event: str) -> dict | None:
    return next((line for line in lines if line["event"] == event), None)
