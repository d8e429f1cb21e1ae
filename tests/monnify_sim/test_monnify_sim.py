"""The simulator as an HTTP server: Monnify's envelope and errors, the checkout page, and
signed webhook delivery (retries, duplicates, delays, replays, refunds) to a real receiver."""

from __future__ import annotations

import base64
import re
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
import requests
import simplejson

from shared.monnify.models import PaymentStatus, Transaction, parse_paid_on
from shared.monnify.signature import SIGNATURE_HEADER, verify_request
from tests.support.monnify_sim_server import SimHarness, WebhookReceiver
from tests.support.polling import wait_until

# Real servers of its own, not the session's.
pytestmark = pytest.mark.integration

TRANSACTION_FIELDS = {
    "transactionReference",
    "paymentReference",
    "paidOn",
    "paymentDescription",
    "metaData",
    "paymentSourceInformation",
    "destinationAccountInformation",
    "amountPaid",
    "totalPayable",
    "settlementAmount",
    "cardDetails",
    "paymentMethod",
    "currency",
    "paymentStatus",
    "customer",
    "product",
}
REFUND_FIELDS = {
    "transactionReference",
    "refundReference",
    "refundAmount",
    "refundStatus",
    "merchantReason",
    "customerNote",
    "createdOn",
    "completedOn",
}


class Api:
    """Raw calls to the simulated Monnify API, to see exactly what it answers."""

    def __init__(self, sim: SimHarness):
        self.sim = sim
        login = requests.post(
            f"{sim.url}/api/v1/auth/login",
            auth=(sim.settings.monnify_api_key, sim.settings.monnify_secret_key),
            timeout=5,
        )
        assert login.status_code == 200, login.text
        self.token = login.json()["responseBody"]["accessToken"]

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.sim.url + path, headers=headers, timeout=5, **kwargs)

    def init(self, **overrides: Any) -> requests.Response:
        body = {
            "amount": 5000,
            "customerName": "Ada Obi",
            "customerEmail": "ada@example.com",
            "paymentReference": f"fund-{uuid.uuid4().hex[:16]}",
            "paymentDescription": "Wallet funding",
            "currencyCode": "NGN",
            "contractCode": self.sim.settings.monnify_contract_code,
            "paymentMethods": ["ACCOUNT_TRANSFER"],
            **overrides,
        }
        return self.call("POST", "/api/v1/merchant/transactions/init-transaction", json=body)

    def new_transaction(self, **overrides: Any) -> dict[str, Any]:
        response = self.init(**overrides)
        assert response.status_code == 200, response.text
        return response.json()["responseBody"]

    def status(self, transaction_reference: str) -> dict[str, Any]:
        response = self.call("GET", f"/api/v2/transactions/{quote(transaction_reference, safe='')}")
        assert response.status_code == 200, response.text
        return response.json()["responseBody"]


@pytest.fixture()
def api(sim: SimHarness) -> Api:
    return Api(sim)


def events(receiver: WebhookReceiver, count: int) -> list[tuple[dict[str, str], dict]]:
    received = receiver.wait_for(count)
    assert len(received) >= count, f"expected {count} deliveries, got {len(received)}"
    return [(r.headers, simplejson.loads(r.body, use_decimal=True)) for r in received]


# --- API surface -------------------------------------------------------------------------


def test_envelope_and_reference_format(api: Api) -> None:
    response = api.init()
    envelope = response.json()
    assert response.status_code == 200
    assert envelope["requestSuccessful"] is True
    assert envelope["responseCode"] == "0"
    assert envelope["responseMessage"] == "success"
    body = envelope["responseBody"]
    assert re.fullmatch(r"MNFY\|\d{14}\|\d{6}", body["transactionReference"])
    assert {
        "paymentReference",
        "merchantName",
        "apiKey",
        "enabledPaymentMethod",
        "checkoutUrl",
    } <= set(body)


def test_login_needs_the_right_basic_credentials(sim: SimHarness) -> None:
    url = f"{sim.url}/api/v1/auth/login"
    wrong = requests.post(url, auth=(sim.settings.monnify_api_key, "nope"), timeout=5)
    assert wrong.status_code == 401
    assert wrong.json()["requestSuccessful"] is False
    garbled = requests.post(url, headers={"Authorization": "Basic !!!"}, timeout=5)
    assert garbled.status_code == 401
    assert requests.post(url, timeout=5).status_code == 401
    right = requests.post(
        url, auth=(sim.settings.monnify_api_key, sim.settings.monnify_secret_key), timeout=5
    )
    assert right.json()["responseBody"]["expiresIn"] == 3600


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer forged-token", "Basic abc"])
def test_calls_need_a_live_bearer_token(sim: SimHarness, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = requests.get(
        f"{sim.url}/api/v2/transactions/MNFY%7C1%7C1", headers=headers, timeout=5
    )
    assert response.status_code == 401


def test_expired_token_is_refused(sim: SimHarness) -> None:
    api = Api(sim)
    sim.control("/sim/tokens/revoke")
    assert (
        api.call("GET", "/api/v2/merchant/transactions/query?paymentReference=x").status_code == 401
    )


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"amount": "abc"}, 400, "amount"),
        ({"amount": None}, 400, "amount"),
        ({"amount": True}, 400, "amount"),
        ({"amount": "20.001"}, 400, "amount"),
        ({"amount": -50}, 400, "amount"),
        ({"customerEmail": None}, 400, "customerEmail"),
        ({"customerEmail": "not-an-email"}, 400, "customerEmail"),
        ({"paymentReference": ""}, 400, "paymentReference"),
        ({"paymentDescription": 5}, 400, "paymentDescription"),
        ({"paymentMethods": ["CASH"]}, 400, "paymentMethods"),
        ({"metaData": [1]}, 400, "metaData"),
        ({"amount": "19.99"}, 422, "less than 20"),
        ({"contractCode": "000"}, 422, "contract code"),
        ({"currencyCode": "GBP"}, 422, "GBP"),
    ],
)
def test_invalid_init_payloads(
    api: Api, overrides: dict[str, Any], status: int, message: str
) -> None:
    response = api.init(**overrides)
    assert response.status_code == status
    envelope = response.json()
    assert envelope["requestSuccessful"] is False
    assert message in envelope["responseMessage"]


def test_minimum_amount_accepted_as_string(api: Api) -> None:
    assert api.init(amount="20.00").status_code == 200


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
def test_body_must_be_a_json_object(api: Api, raw: bytes) -> None:
    response = api.call(
        "POST",
        "/api/v1/merchant/transactions/init-transaction",
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["requestSuccessful"] is False


def test_duplicate_payment_reference(api: Api) -> None:
    first = api.new_transaction()
    again = api.init(paymentReference=first["paymentReference"])
    assert again.status_code == 422
    assert "Duplicate payment reference" in again.json()["responseMessage"]


def test_unknown_api_path_answers_in_the_envelope(api: Api) -> None:
    response = api.call("GET", "/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["requestSuccessful"] is False


def test_down_mode_answers_503_until_cleared(sim: SimHarness, api: Api) -> None:
    sim.control("/sim/faults", {"mode": "down"})
    assert api.init().status_code == 503
    assert api.init().status_code == 503
    sim.control("/sim/faults", {"mode": "none"})
    assert api.init().status_code == 200


def test_bad_control_requests_are_4xx(sim: SimHarness) -> None:
    assert sim.post("/sim/faults", {"mode": "sideways"}).status_code == 400
    assert sim.post("/sim/config", {"amountFormat": "roman"}).status_code == 400
    assert sim.post("/sim/config", {"noSuchKnob": 1}).status_code == 400
    assert sim.post("/sim/transactions/MNFY%7C0%7C0/pay").status_code == 404
    assert sim.post("/sim/refunds/none/complete", {"status": "COMPLETED"}).status_code == 404
    assert sim.post("/sim/webhooks/999/redeliver").status_code == 404


# --- webhooks ----------------------------------------------------------------------------


def test_pay_delivers_a_signed_successful_transaction(
    sim: SimHarness, api: Api, receiver: WebhookReceiver
) -> None:
    transaction = api.new_transaction(amount=5000)
    answer = sim.pay(transaction["transactionReference"])
    assert answer["transaction"]["paymentStatus"] == "PAID"
    [(headers, event)] = events(receiver, 1)
    body = receiver.received()[0].body
    assert verify_request(body, headers, sim.settings.monnify_secret_key)
    assert not verify_request(body, headers, "another-secret")
    assert any(name.lower() == SIGNATURE_HEADER for name in headers)
    assert event["eventType"] == "SUCCESSFUL_TRANSACTION"
    assert set(event["eventData"]) >= TRANSACTION_FIELDS
    parsed = Transaction.from_payload(event["eventData"])
    assert parsed.payment_status is PaymentStatus.PAID
    assert parsed.amount_paid_minor == 500000
    assert parsed.payment_reference == transaction["paymentReference"]
    assert b" " not in body.split(b'"paidOn"')[0]  # compact JSON, as Monnify sends


@pytest.mark.parametrize(
    ("amount", "status"), [("4999.99", "PARTIALLY_PAID"), ("6000", "OVERPAID"), (5000, "PAID")]
)
def test_status_follows_the_amount_paid(
    sim: SimHarness, api: Api, receiver: WebhookReceiver, amount: Any, status: str
) -> None:
    transaction = api.new_transaction(amount=5000)
    sim.pay(transaction["transactionReference"], amount=amount)
    [(_, event)] = events(receiver, 1)
    assert event["eventData"]["paymentStatus"] == status
    assert event["eventData"]["amountPaid"] == Decimal(str(amount))
    assert api.status(transaction["transactionReference"])["paymentStatus"] == status


def test_paying_twice_is_refused(sim: SimHarness, api: Api) -> None:
    transaction = api.new_transaction()
    sim.pay(transaction["transactionReference"], notify=False)
    ref = quote(transaction["transactionReference"], safe="")
    assert sim.post(f"/sim/transactions/{ref}/pay").status_code == 409


def test_non_200_is_retried_then_delivered(
    sim: SimHarness, api: Api, receiver: WebhookReceiver
) -> None:
    receiver.answer_next(500, 201)  # anything but 200 is a failure, as at Monnify
    transaction = api.new_transaction()
    sim.pay(transaction["transactionReference"])
    received = receiver.wait_for(3)
    assert len(received) == 3
    assert len({r.body for r in received}) == 1  # the same notification each time
    assert all(verify_request(r.body, r.headers, sim.settings.monnify_secret_key) for r in received)
    [delivery] = _settled(sim, transaction["transactionReference"])
    assert delivery["state"] == "delivered"
    assert [a.get("status") for a in delivery["attempts"]] == [500, 201, 200]


def test_gives_up_after_max_tries(sim: SimHarness, api: Api, receiver: WebhookReceiver) -> None:
    sim.configure(webhookMaxTries=4, webhookRetrySeconds=0.1)
    receiver.answer_next(503, 503, 503, 503, 503)
    transaction = api.new_transaction()
    sim.pay(transaction["transactionReference"])
    [delivery] = _settled(sim, transaction["transactionReference"])
    assert delivery["state"] == "failed"
    assert [a.get("status") for a in delivery["attempts"]] == [503, 503, 503, 503]
    assert len(receiver.received()) == 4


def test_unreachable_receiver_counts_as_failure(sim: SimHarness, api: Api) -> None:
    sim.configure(
        webhookUrl="http://127.0.0.1:9/webhook", webhookMaxTries=2, webhookRetrySeconds=0.1
    )
    transaction = api.new_transaction()
    sim.pay(transaction["transactionReference"])
    [delivery] = _settled(sim, transaction["transactionReference"])
    assert delivery["state"] == "failed"
    assert all("error" in attempt for attempt in delivery["attempts"])
    assert len(delivery["attempts"]) == 2


def _settled(sim: SimHarness, reference: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The deliveries for a reference once none is still scheduled."""
    return wait_until(
        lambda: sim.webhooks(reference),
        lambda deliveries: deliveries and all(d["state"] != "scheduled" for d in deliveries),
        timeout=timeout,
        interval=0.05,
    )


def test_duplicate_deliveries(sim: SimHarness, api: Api, receiver: WebhookReceiver) -> None:
    transaction = api.new_transaction()
    sim.pay(transaction["transactionReference"], notify=False)
    answer = sim.act(transaction["transactionReference"], "notify", times=3)
    assert len(answer["deliveries"]) == 3
    received = receiver.wait_for(3)
    assert len(received) == 3
    assert len({r.body for r in received}) == 1


def test_out_of_order_delivery(sim: SimHarness, api: Api, receiver: WebhookReceiver) -> None:
    """PAID is delivered late, after the REVERSED state was already pushed."""
    transaction = api.new_transaction()
    reference = transaction["transactionReference"]
    sim.pay(reference, delaySeconds=0.5)
    sim.act(reference, "reverse")
    sim.act(reference, "notify")
    received = events(receiver, 2)
    assert [event["eventData"]["paymentStatus"] for _, event in received] == ["REVERSED", "PAID"]
    assert api.status(reference)["paymentStatus"] == "REVERSED"


def test_late_replay_of_the_same_bytes(
    sim: SimHarness, api: Api, receiver: WebhookReceiver
) -> None:
    transaction = api.new_transaction()
    [delivery_id] = sim.pay(transaction["transactionReference"])["deliveries"]
    first = receiver.wait_for(1)
    replay = sim.control(f"/sim/webhooks/{delivery_id}/redeliver", {"delaySeconds": 0.2})
    assert replay["delivery"] != delivery_id
    both = receiver.wait_for(2)
    assert len(both) == 2
    assert both[1].body == first[0].body
    assert both[1].headers.get("Monnify-Signature") == first[0].headers.get("Monnify-Signature")


def test_missed_webhook_still_shows_in_status(
    sim: SimHarness, api: Api, receiver: WebhookReceiver
) -> None:
    transaction = api.new_transaction()
    sim.pay(transaction["transactionReference"], notify=False)
    assert api.status(transaction["transactionReference"])["paymentStatus"] == "PAID"
    assert sim.webhooks(transaction["transactionReference"]) == []
    assert receiver.received() == []


@pytest.mark.parametrize(
    ("outcome", "event_type"), [("COMPLETED", "SUCCESSFUL_REFUND"), ("FAILED", "FAILED_REFUND")]
)
def test_refund_completion_webhooks(
    sim: SimHarness, api: Api, receiver: WebhookReceiver, outcome: str, event_type: str
) -> None:
    transaction = api.new_transaction(amount=5000)
    sim.pay(transaction["transactionReference"], notify=False)
    refund = api.call(
        "POST",
        "/api/v1/refunds/initiate-refund",
        json={
            "transactionReference": transaction["transactionReference"],
            "refundReference": "refund-x",
            "refundAmount": 1500,
            "refundReason": "Customer changed their mind",
            "customerNote": "Refund",
        },
    )
    assert refund.status_code == 200, refund.text
    assert refund.json()["responseBody"]["refundStatus"] == "IN_PROGRESS"
    sim.control("/sim/refunds/refund-x/complete", {"status": outcome})
    [(headers, event)] = events(receiver, 1)
    assert verify_request(receiver.received()[0].body, headers, sim.settings.monnify_secret_key)
    assert event["eventType"] == event_type
    assert set(event["eventData"]) >= REFUND_FIELDS
    assert event["eventData"]["refundStatus"] == outcome
    assert event["eventData"]["refundAmount"] == 1500
    assert sim.post("/sim/refunds/refund-x/complete", {"status": outcome}).status_code == 409


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"refundReason": "x" * 65}, "R8"),
        ({"customerNote": "x" * 17}, "R8"),
        ({"refundAmount": 5000.01}, "R3"),
    ],
)
def test_refund_validation_codes(sim: SimHarness, api: Api, body: dict, code: str) -> None:
    transaction = api.new_transaction(amount=5000)
    sim.pay(transaction["transactionReference"], notify=False)
    payload = {
        "transactionReference": transaction["transactionReference"],
        "refundReference": f"r-{uuid.uuid4().hex[:8]}",
        "refundReason": "Reason",
        **body,
    }
    response = api.call("POST", "/api/v1/refunds/initiate-refund", json=payload)
    assert 400 <= response.status_code < 500
    assert response.json()["responseCode"] == code


# --- formats -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount_format", "paid_on_format", "amount", "paid_on"),
    [
        ("number", "millis", 5000, r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}"),
        ("string", "ampm", "5000.00", r"\d{2}/\d{2}/\d{4} \d{1,2}:\d{2}:\d{2} (AM|PM)"),
    ],
)
def test_configured_formats_reach_the_webhook(
    sim: SimHarness,
    api: Api,
    receiver: WebhookReceiver,
    amount_format: str,
    paid_on_format: str,
    amount: Any,
    paid_on: str,
) -> None:
    sim.configure(amountFormat=amount_format, paidOnFormat=paid_on_format)
    transaction = api.new_transaction(amount=5000)
    sim.pay(transaction["transactionReference"])
    [(_, event)] = events(receiver, 1)
    assert event["eventData"]["amountPaid"] == amount
    assert re.fullmatch(paid_on, event["eventData"]["paidOn"])
    assert parse_paid_on(event["eventData"]["paidOn"]) is not None


def test_numeric_response_codes(sim: SimHarness, api: Api) -> None:
    sim.configure(numericResponseCodes=True)
    assert api.init(amount=1).json()["responseCode"] == 99


# --- checkout page -----------------------------------------------------------------------


def test_checkout_page_pays_less_and_shows_the_result(
    sim: SimHarness, api: Api, receiver: WebhookReceiver
) -> None:
    transaction = api.new_transaction(amount=5000)
    page = requests.get(transaction["checkoutUrl"], timeout=5)
    assert page.status_code == 200
    assert "5,000.00" in page.text and "<form" in page.text
    assert re.search(r"\b\d{10}\b", page.text)  # the dynamic account number is shown
    result = requests.post(transaction["checkoutUrl"], data={"amount": "1,200.50"}, timeout=5)
    assert result.status_code == 200
    assert "PARTIALLY_PAID" in result.text and "1,200.50" in result.text
    [(_, event)] = events(receiver, 1)
    assert event["eventData"]["paymentStatus"] == "PARTIALLY_PAID"
    revisit = requests.get(transaction["checkoutUrl"], timeout=5)
    assert "PARTIALLY_PAID" in revisit.text and "<form" not in revisit.text


@pytest.mark.parametrize("amount", ["", "lots", "0", "-5"])
def test_checkout_page_refuses_bad_amounts(api: Api, amount: str) -> None:
    transaction = api.new_transaction(amount=5000)
    result = requests.post(transaction["checkoutUrl"], data={"amount": amount}, timeout=5)
    assert result.status_code == 400
    assert 'id="error"' in result.text
    assert api.status(transaction["transactionReference"])["paymentStatus"] == "PENDING"


def test_unknown_checkout_is_404(sim: SimHarness) -> None:
    assert requests.get(f"{sim.url}/checkout/MNFY%7C0%7C0", timeout=5).status_code == 404


def test_basic_header_is_plain_base64(sim: SimHarness) -> None:
    """The simulator reads Basic credentials exactly as Monnify documents them."""
    raw = f"{sim.settings.monnify_api_key}:{sim.settings.monnify_secret_key}".encode()
    header = "Basic " + base64.b64encode(raw).decode()
    response = requests.post(
        f"{sim.url}/api/v1/auth/login", headers={"Authorization": header}, timeout=5
    )
    assert response.status_code == 200
