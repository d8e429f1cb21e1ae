"""`/sim/...`: what a test or a demo does to the simulated world.

- POST /sim/transactions/<ref>/pay {"amount"?, "paymentMethod"?, "notify"?, "delaySeconds"?}
  pays (PAID, PARTIALLY_PAID or OVERPAID by amount; default the full amount) and sends
  SUCCESSFUL_TRANSACTION unless "notify" is false (a missed webhook).
- POST /sim/transactions/<ref>/reverse: the status API then reports REVERSED (Monnify
  has no reversal event; follow with /notify to push the new state).
- POST /sim/transactions/<ref>/expire: a pending transaction becomes EXPIRED.
- POST /sim/transactions/<ref>/notify {"times"?, "delaySeconds"?}: SUCCESSFUL_TRANSACTION
  with the current state, `times` copies sent concurrently, after a delay (late ones).
- POST /sim/webhooks/<id>/redeliver {"delaySeconds"?}: the same bytes again (replays,
  out-of-order delivery of an old state).
- GET /sim/webhooks[?reference=]: every delivery and its attempts.
- POST /sim/refunds/<refundReference>/complete {"status": "COMPLETED"|"FAILED"}: sends
  SUCCESSFUL_REFUND or FAILED_REFUND.
- POST /sim/faults {"mode": "down"|"slow"|"none", "count"?}: API calls answer 503 (down)
  or stall (slow), for `count` calls or until changed.
- GET|POST /sim/config: the run-time knobs (see config.py).
- POST /sim/tokens/revoke: every issued token now gets 401.
- GET /sim/stats: logins and the API requests seen. POST /sim/reset: forget everything.
- POST /sim/reserved-accounts/<accountReference>/transfer, GET /sim/reserved-accounts:
  see reserved_accounts.py.
"""

from __future__ import annotations

from http import HTTPStatus

from flask import Blueprint, Response, request

from services.monnify_sim.delivery import Delivery
from services.monnify_sim.http import amount_minor, json_object, json_response, number, text
from services.monnify_sim.render import transaction_body
from services.monnify_sim.simulator import current_sim
from services.monnify_sim.state import PAYMENT_METHODS, ApiError, Fault, SimTransaction

blp = Blueprint("monnify_sim_control", __name__, url_prefix="/sim")

FAULT_MODES = ("none", "down", "slow")
REFUND_OUTCOMES = ("COMPLETED", "FAILED")


@blp.errorhandler(ApiError)
def _control_error(error: ApiError) -> Response:
    payload = {
        "statusCode": error.status,
        "error": HTTPStatus(error.status).phrase,
        "message": error.message,
    }
    return json_response(payload, error.status)


def _transaction_answer(transaction: SimTransaction, deliveries: list[Delivery]) -> Response:
    sim = current_sim()
    with sim.state.lock:
        body = transaction_body(transaction, sim.config)
    return json_response({"transaction": body, "deliveries": [d.id for d in deliveries]})


@blp.post("/transactions/<path:reference>/pay")
def pay(reference: str) -> Response:
    sim = current_sim()
    body = json_object(optional=True)
    amount = None if body.get("amount") is None else amount_minor(body["amount"], "amount")
    method = text(body, "paymentMethod", required=False) or "ACCOUNT_TRANSFER"
    if method not in PAYMENT_METHODS:
        raise ApiError(400, f"paymentMethod must be one of {', '.join(PAYMENT_METHODS)}")
    delay = number(body, "delaySeconds", 0)
    transaction = sim.state.pay(reference, amount, method)
    notify = body.get("notify", True) is not False
    deliveries = sim.notify_transaction(transaction, delay_seconds=delay) if notify else []
    return _transaction_answer(transaction, deliveries)


@blp.post("/transactions/<path:reference>/reverse")
def reverse(reference: str) -> Response:
    return _transaction_answer(current_sim().state.reverse(reference), [])


@blp.post("/transactions/<path:reference>/expire")
def expire(reference: str) -> Response:
    return _transaction_answer(current_sim().state.expire(reference), [])


@blp.post("/transactions/<path:reference>/notify")
def notify(reference: str) -> Response:
    sim = current_sim()
    body = json_object(optional=True)
    times = int(number(body, "times", 1, minimum=1))
    delay = number(body, "delaySeconds", 0)
    transaction = sim.state.transaction(reference)
    deliveries = sim.notify_transaction(transaction, times=times, delay_seconds=delay)
    return _transaction_answer(transaction, deliveries)


@blp.post("/webhooks/<int:delivery_id>/redeliver")
def redeliver(delivery_id: int) -> Response:
    body = json_object(optional=True)
    try:
        delivery = current_sim().dispatcher.redeliver(delivery_id, number(body, "delaySeconds", 0))
    except KeyError:
        raise ApiError(404, f"No delivery {delivery_id}") from None
    return json_response({"delivery": delivery.id})


@blp.get("/webhooks")
def webhooks() -> Response:
    reference = request.args.get("reference")
    deliveries = current_sim().dispatcher.log()
    if reference:
        deliveries = [d for d in deliveries if d["reference"] == reference]
    return json_response({"deliveries": deliveries})


@blp.post("/refunds/<path:reference>/complete")
def complete_refund(reference: str) -> Response:
    sim = current_sim()
    status = (text(json_object(), "status") or "").upper()
    if status not in REFUND_OUTCOMES:
        raise ApiError(400, f"status must be one of {', '.join(REFUND_OUTCOMES)}")
    refund = sim.state.complete_refund(reference, status)
    deliveries = sim.notify_refund(refund)
    return json_response({"refundStatus": refund.status, "deliveries": [d.id for d in deliveries]})


@blp.post("/faults")
def faults() -> Response:
    sim = current_sim()
    body = json_object()
    mode = text(body, "mode")
    if mode not in FAULT_MODES:
        raise ApiError(400, f"mode must be one of {', '.join(FAULT_MODES)}")
    count = body.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ApiError(400, "count must be a positive integer")
    with sim.state.lock:
        sim.state.fault = Fault(mode, count)
    return json_response({"mode": mode, "count": count})


@blp.get("/config")
def get_config() -> Response:
    return json_response(current_sim().config.public_view())


@blp.post("/config")
def set_config() -> Response:
    sim = current_sim()
    try:
        sim.config.update(json_object())
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return json_response(sim.config.public_view())


@blp.post("/tokens/revoke")
def revoke_tokens() -> Response:
    current_sim().state.revoke_tokens()
    return json_response({"revoked": True})


@blp.get("/stats")
def stats() -> Response:
    state = current_sim().state
    with state.lock:
        return json_response({"logins": state.logins, "requests": list(state.requests)})


@blp.post("/reset")
def reset() -> Response:
    current_sim().reset()
    return json_response({"reset": True})
