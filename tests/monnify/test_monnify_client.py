"""MonnifyClient against the simulator over real HTTP: tokens, every call, typed errors,
retries for idempotent calls only, and both encodings of amounts and dates."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from shared.monnify import (
    MonnifyAuthError,
    MonnifyClient,
    MonnifyNotFound,
    MonnifyRejected,
    MonnifyUnavailable,
    PaymentStatus,
    RefundStatus,
)
from shared.monnify import client as client_module
from shared.monnify.client import RetryPolicy
from shared.monnify.models import MONNIFY_TIMEZONE
from tests.support.monnify_sim_server import SimHarness

# Real servers of its own, not the session's.
pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(attempts=3, base_seconds=0.01, max_seconds=0.05)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def sleeps() -> list[float]:
    return []


@pytest.fixture()
def client(sim: SimHarness, clock: FakeClock, sleeps: list[float]) -> Iterator[MonnifyClient]:
    settings = sim.settings
    monnify = MonnifyClient(
        sim.url,
        settings.monnify_api_key,
        settings.monnify_secret_key,
        settings.monnify_contract_code,
        retry=FAST_RETRY,
        read_timeout=5,
        clock=clock,
        sleep=sleeps.append,
    )
    yield monnify
    monnify.close()


def new_reference() -> str:
    return f"fund-{uuid.uuid4().hex[:16]}"


def checkout(client: MonnifyClient, amount_minor: int = 500000, reference: str | None = None):
    return client.init_transaction(
        amount_minor=amount_minor,
        currency="NGN",
        payment_reference=reference or new_reference(),
        customer_name="Ada Obi",
        customer_email="ada@example.com",
        payment_description="Wallet funding",
    )


def api_requests(sim: SimHarness, path_part: str) -> list[dict]:
    return [r for r in sim.stats()["requests"] if path_part in r["path"]]


# --- tokens ------------------------------------------------------------------------------


def test_token_is_cached_across_calls(client: MonnifyClient, sim: SimHarness) -> None:
    session = checkout(client)
    client.get_transaction(session.transaction_reference)
    client.get_transaction_by_payment_reference(session.payment_reference)
    assert sim.stats()["logins"] == 1


def test_token_renewed_shortly_before_expiry(
    client: MonnifyClient, sim: SimHarness, clock: FakeClock
) -> None:
    sim.configure(tokenSeconds=600)
    session = checkout(client)
    clock.now += 600 - 61  # still inside the lifetime minus the renewal margin
    client.get_transaction(session.transaction_reference)
    assert sim.stats()["logins"] == 1
    clock.now += 2  # inside the margin: renew before it can expire in flight
    client.get_transaction(session.transaction_reference)
    assert sim.stats()["logins"] == 2


def test_relogin_once_on_401(client: MonnifyClient, sim: SimHarness) -> None:
    session = checkout(client)
    sim.control("/sim/tokens/revoke")
    transaction = client.get_transaction(session.transaction_reference)
    assert transaction.payment_status is PaymentStatus.PENDING
    assert sim.stats()["logins"] == 2
    statuses = [r["status"] for r in api_requests(sim, "/api/v2/transactions/")]
    assert statuses == [401, 200]


def test_post_is_repeated_after_relogin(client: MonnifyClient, sim: SimHarness) -> None:
    checkout(client)
    sim.control("/sim/tokens/revoke")
    checkout(client)
    statuses = [r["status"] for r in api_requests(sim, "init-transaction")]
    assert statuses == [200, 401, 200]


def test_wrong_credentials_are_an_auth_error(sim: SimHarness) -> None:
    monnify = MonnifyClient(
        sim.url, "MK_TEST_WRONG", "wrong-secret", "1234567890", retry=FAST_RETRY
    )
    with pytest.raises(MonnifyAuthError) as caught:
        monnify.get_transaction("MNFY|20261126120000|000001")
    assert caught.value.status == 502
    assert "wrong-secret" not in str(caught.value)


# --- the calls ---------------------------------------------------------------------------


def test_init_transaction_and_checkout_page(client: MonnifyClient, sim: SimHarness) -> None:
    reference = new_reference()
    session = checkout(client, 1234567, reference)
    assert session.payment_reference == reference
    assert session.transaction_reference.startswith("MNFY|")
    assert len(session.transaction_reference.split("|")) == 3
    assert session.checkout_url.startswith(sim.url + "/checkout/")
    page = requests.get(session.checkout_url, timeout=5)
    assert page.status_code == 200
    assert "12,345.67" in page.text


def test_bank_transfer_account(client: MonnifyClient) -> None:
    session = checkout(client, 250000)
    before = datetime.now(UTC)
    account = client.init_bank_transfer(session.transaction_reference, expected_amount_minor=250000)
    assert account.account_number.isdigit() and len(account.account_number) == 10
    assert account.bank_name and account.account_name
    assert account.amount_minor == 250000
    assert before + timedelta(seconds=2390) < account.expires_at
    again = client.init_bank_transfer(session.transaction_reference)
    assert again.account_number == account.account_number


@pytest.mark.parametrize("amount_format", ["number", "string"])
@pytest.mark.parametrize("paid_on_format", ["millis", "ampm"])
@pytest.mark.parametrize(
    ("paid", "status"),
    [
        ("5000.00", PaymentStatus.PAID),
        ("1234.56", PaymentStatus.PARTIALLY_PAID),
        ("5000.01", PaymentStatus.OVERPAID),
    ],
)
def test_status_after_payment(
    client: MonnifyClient,
    sim: SimHarness,
    amount_format: str,
    paid_on_format: str,
    paid: str,
    status: PaymentStatus,
) -> None:
    sim.configure(amountFormat=amount_format, paidOnFormat=paid_on_format)
    session = checkout(client, 500000)
    before = datetime.now(UTC).replace(microsecond=0)
    sim.pay(session.transaction_reference, amount=paid, notify=False)
    by_transaction = client.get_transaction(session.transaction_reference)
    by_payment = client.get_transaction_by_payment_reference(session.payment_reference)
    assert by_transaction == by_payment
    assert by_transaction.payment_status is status
    expected_minor = int(paid.replace(".", ""))
    assert by_transaction.amount_paid_minor == expected_minor
    assert by_transaction.total_payable_minor == 500000
    assert by_transaction.paid_on is not None
    assert by_transaction.paid_on.tzinfo is not None
    assert by_transaction.paid_on >= before
    assert by_transaction.paid_on.utcoffset() == MONNIFY_TIMEZONE.utcoffset(None)
    assert by_transaction.payment_method == "ACCOUNT_TRANSFER"


def test_raw_encodings_really_differ(client: MonnifyClient, sim: SimHarness) -> None:
    """Guards the parametrised test above: the simulator truly switches encodings."""
    session = checkout(client, 500000)
    sim.pay(session.transaction_reference, notify=False)
    token = requests.post(
        f"{sim.url}/api/v1/auth/login",
        auth=(sim.settings.monnify_api_key, sim.settings.monnify_secret_key),
        timeout=5,
    ).json()["responseBody"]["accessToken"]
    url = f"{sim.url}/api/v2/merchant/transactions/query"
    params = {"paymentReference": session.payment_reference}
    headers = {"Authorization": f"Bearer {token}"}
    sim.configure(amountFormat="string", paidOnFormat="ampm")
    as_strings = requests.get(url, params=params, headers=headers, timeout=5).json()
    sim.configure(amountFormat="number", paidOnFormat="millis")
    as_numbers = requests.get(url, params=params, headers=headers, timeout=5).json()
    assert as_strings["responseBody"]["amountPaid"] == "5000.00"
    assert as_numbers["responseBody"]["amountPaid"] == 5000
    assert as_strings["responseBody"]["paidOn"].endswith(("AM", "PM"))
    assert "-" in as_numbers["responseBody"]["paidOn"]


def test_reversed_and_expired(client: MonnifyClient, sim: SimHarness) -> None:
    paid = checkout(client)
    sim.pay(paid.transaction_reference, notify=False)
    sim.act(paid.transaction_reference, "reverse")
    assert client.get_transaction(paid.transaction_reference).payment_status is (
        PaymentStatus.REVERSED
    )
    pending = checkout(client)
    sim.act(pending.transaction_reference, "expire")
    expired = client.get_transaction_by_payment_reference(pending.payment_reference)
    assert expired.payment_status is PaymentStatus.EXPIRED
    assert expired.amount_paid_minor == 0


# --- rejected requests -------------------------------------------------------------------


def test_duplicate_payment_reference_is_rejected(client: MonnifyClient) -> None:
    reference = new_reference()
    checkout(client, reference=reference)
    with pytest.raises(MonnifyRejected, match="Duplicate payment reference") as caught:
        checkout(client, reference=reference)
    assert caught.value.response_code == "99"
    assert caught.value.http_status == 422


def test_amount_below_minimum_is_rejected(client: MonnifyClient) -> None:
    with pytest.raises(MonnifyRejected, match=r"less than 20") as caught:
        checkout(client, amount_minor=1999)
    assert caught.value.status == 422
    checkout(client, amount_minor=2000)


def test_numeric_response_code_is_read_as_text(client: MonnifyClient, sim: SimHarness) -> None:
    sim.configure(numericResponseCodes=True)
    with pytest.raises(MonnifyRejected) as caught:
        checkout(client, amount_minor=1000)
    assert caught.value.response_code == "99"


def test_unknown_references_are_not_found(client: MonnifyClient) -> None:
    with pytest.raises(MonnifyNotFound) as caught:
        client.get_transaction("MNFY|20200101000000|999999")
    assert caught.value.status == 404
    with pytest.raises(MonnifyNotFound):
        client.get_transaction_by_payment_reference("never-made")
    with pytest.raises(MonnifyNotFound) as refund:
        client.get_refund("never-made")
    assert refund.value.response_code == "R7"


# --- refunds -----------------------------------------------------------------------------


def test_refunds_partial_duplicate_and_over_total(client: MonnifyClient, sim: SimHarness) -> None:
    session = checkout(client, 500000)
    sim.pay(session.transaction_reference, notify=False)
    first = client.initiate_refund(
        transaction_reference=session.transaction_reference,
        refund_reference="refund-1",
        amount_minor=300000,
        reason="Customer asked",
        customer_note="Refund 1",
    )
    assert first.refund_status is RefundStatus.IN_PROGRESS
    assert first.refund_type == "PARTIAL_REFUND"
    assert first.refund_amount_minor == 300000

    with pytest.raises(MonnifyRejected) as duplicate:
        client.initiate_refund(
            transaction_reference=session.transaction_reference,
            refund_reference="refund-1",
            amount_minor=10000,
            reason="Again",
        )
    assert duplicate.value.response_code == "R9"

    with pytest.raises(MonnifyRejected) as too_much:
        client.initiate_refund(
            transaction_reference=session.transaction_reference,
            refund_reference="refund-2",
            amount_minor=200001,
            reason="Rest and a kobo",
        )
    assert too_much.value.response_code == "R12"
    assert too_much.value.status == 422

    sim.control("/sim/refunds/refund-1/complete", {"status": "COMPLETED"})
    completed = client.get_refund("refund-1")
    assert completed.refund_status is RefundStatus.COMPLETED
    assert completed.completed_on is not None


def test_failed_refund_frees_the_amount(client: MonnifyClient, sim: SimHarness) -> None:
    session = checkout(client, 500000)
    sim.pay(session.transaction_reference, notify=False)
    client.initiate_refund(
        transaction_reference=session.transaction_reference,
        refund_reference="refund-a",
        amount_minor=500000,
        reason="Full",
    )
    sim.control("/sim/refunds/refund-a/complete", {"status": "FAILED"})
    again = client.initiate_refund(
        transaction_reference=session.transaction_reference,
        refund_reference="refund-b",
        amount_minor=500000,
        reason="Full, again",
    )
    assert again.refund_type == "FULL_REFUND"


@pytest.mark.parametrize(
    ("method", "amount_minor", "code"),
    [("CARD", 100000, "R2"), ("ACCOUNT_TRANSFER", 500001, "R3"), ("ACCOUNT_TRANSFER", 999, "R4")],
)
def test_refund_rules(
    client: MonnifyClient, sim: SimHarness, method: str, amount_minor: int, code: str
) -> None:
    session = checkout(client, 500000)
    sim.pay(session.transaction_reference, paymentMethod=method, notify=False)
    with pytest.raises(MonnifyRejected) as caught:
        client.initiate_refund(
            transaction_reference=session.transaction_reference,
            refund_reference=new_reference(),
            amount_minor=amount_minor,
            reason="Test",
        )
    assert caught.value.response_code == code


def test_refund_of_unknown_transaction(client: MonnifyClient) -> None:
    with pytest.raises(MonnifyNotFound) as caught:
        client.initiate_refund(
            transaction_reference="MNFY|20200101000000|999999",
            refund_reference=new_reference(),
            amount_minor=10000,
            reason="Test",
        )
    assert caught.value.response_code == "R1"


# --- outages and retries -----------------------------------------------------------------


def test_get_is_retried_on_5xx(client: MonnifyClient, sim: SimHarness, sleeps: list) -> None:
    session = checkout(client)
    sim.control("/sim/faults", {"mode": "down", "count": 2})
    transaction = client.get_transaction(session.transaction_reference)
    assert transaction.transaction_reference == session.transaction_reference
    statuses = [r["status"] for r in api_requests(sim, "/api/v2/transactions/")]
    assert statuses == [503, 503, 200]
    assert len(sleeps) == 2
    assert sleeps[1] > sleeps[0] * 1.5  # exponential, not constant


def test_get_gives_up_after_the_attempts(
    client: MonnifyClient, sim: SimHarness, sleeps: list
) -> None:
    session = checkout(client)
    sim.control("/sim/faults", {"mode": "down"})
    with pytest.raises(MonnifyUnavailable) as caught:
        client.get_transaction(session.transaction_reference)
    assert caught.value.status == 503
    assert len(api_requests(sim, "/api/v2/transactions/")) == FAST_RETRY.attempts


def test_login_is_retried_on_5xx(client: MonnifyClient, sim: SimHarness) -> None:
    sim.control("/sim/faults", {"mode": "down", "count": 1})
    checkout(client)
    assert [r["status"] for r in api_requests(sim, "/auth/login")] == [503, 200]


def test_post_is_not_retried_on_5xx(client: MonnifyClient, sim: SimHarness, sleeps: list) -> None:
    checkout(client)  # logged in first, so the fault hits the POST itself
    sim.control("/sim/faults", {"mode": "down", "count": 1})
    with pytest.raises(MonnifyUnavailable):
        checkout(client)
    assert [r["status"] for r in api_requests(sim, "init-transaction")] == [200, 503]
    assert sleeps == []
    checkout(client)  # the fault is over


def test_timeout_is_unavailable(sim: SimHarness) -> None:
    sim.control("/sim/faults", {"mode": "slow", "count": 1})
    monnify = MonnifyClient(
        sim.url,
        sim.settings.monnify_api_key,
        sim.settings.monnify_secret_key,
        sim.settings.monnify_contract_code,
        read_timeout=0.2,
        retry=RetryPolicy(attempts=2, base_seconds=0.01),
    )
    session_ref = new_reference()
    # The login stalls past the read timeout once, is retried, then the POST goes through.
    result = monnify.init_transaction(
        amount_minor=5000,
        currency="NGN",
        payment_reference=session_ref,
        customer_name="A",
        customer_email="a@example.com",
        payment_description="d",
    )
    assert result.payment_reference == session_ref
    sim.control("/sim/faults", {"mode": "slow", "count": 1})
    with pytest.raises(MonnifyUnavailable, match="did not answer in time"):
        monnify.init_transaction(
            amount_minor=5000,
            currency="NGN",
            payment_reference=new_reference(),
            customer_name="A",
            customer_email="a@example.com",
            payment_description="d",
        )


def test_unreachable_host_is_unavailable(sleeps: list) -> None:
    monnify = MonnifyClient(
        "http://127.0.0.1:9",
        "MK_TEST_X",
        "secret",
        "1",
        connect_timeout=0.5,
        retry=FAST_RETRY,
        sleep=sleeps.append,
    )
    with pytest.raises(MonnifyUnavailable, match="could not be reached"):
        monnify.get_transaction("MNFY|1|1")
    assert len(sleeps) == FAST_RETRY.attempts - 1


# --- secrets -----------------------------------------------------------------------------


class RecordingLogger:
    """Stands in for the client's structlog logger to see exactly what it would write."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def info(self, event: str, **values: object) -> None:
        self.events.append((event, values))

    warning = info


def test_no_secret_or_token_in_logs_or_repr(
    client: MonnifyClient, sim: SimHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = RecordingLogger()
    monkeypatch.setattr(client_module, "log", recorder)
    session = checkout(client)
    sim.control("/sim/tokens/revoke")
    client.get_transaction(session.transaction_reference)
    issued = list(sim.app.extensions["monnify_sim"].state.tokens)
    written = repr(recorder.events) + repr(client)
    assert {event for event, _ in recorder.events} >= {"monnify.login", "monnify.response"}
    assert sim.settings.monnify_secret_key not in written
    assert issued and all(token not in written for token in issued)
