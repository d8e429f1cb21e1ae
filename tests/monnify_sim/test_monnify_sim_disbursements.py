"""The simulator's disbursements over HTTP, as any Monnify client sees them (raw calls and
our MonnifyClient): bank list, account look-up, single transfers and their outcomes,
OTP, summary, merchant wallet balance, and the signed disbursement webhooks."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
import requests
import simplejson

from services.monnify_sim.payout_state import FEE_MINOR, START_BALANCE_MINOR
from shared.monnify.client import MonnifyClient
from shared.monnify.disbursements import DisbursementStatus
from shared.monnify.errors import MonnifyNotFound, MonnifyRejected, MonnifyUnavailable
from shared.monnify.signature import verify_request
from tests.support.monnify_sim_server import SimHarness, WebhookReceiver

# Real servers of its own, not the session's.
pytestmark = pytest.mark.integration

EVENT_FIELDS = {
    "amount",
    "transactionReference",
    "fee",
    "transactionDescription",
    "destinationAccountNumber",
    "sessionId",
    "createdOn",
    "destinationAccountName",
    "reference",
    "destinationBankCode",
    "completedOn",
    "narration",
    "currency",
    "destinationBankName",
    "status",
}


@pytest.fixture()
def client(sim: SimHarness) -> MonnifyClient:
    settings = sim.settings
    return MonnifyClient(
        sim.url,
        settings.monnify_api_key,
        settings.monnify_secret_key,
        settings.monnify_contract_code,
    )


def send(client: MonnifyClient, sim: SimHarness, account: str, amount: int = 5000_00, **kw: Any):
    return client.send_disbursement(
        reference=kw.pop("reference", f"WDR-{uuid.uuid4().hex}"),
        amount_minor=amount,
        currency="NGN",
        bank_code="058",
        account_number=account,
        account_name=None,
        narration="test payout",
        source_account_number=kw.pop("source", sim.settings.payouts.wallet_account_number),
    )


def event(receiver: WebhookReceiver, count: int = 1) -> tuple[dict[str, str], bytes, dict]:
    received = receiver.wait_for(count)
    assert len(received) >= count
    last = received[count - 1]
    return last.headers, last.body, simplejson.loads(last.body, use_decimal=True)


def test_the_bank_list_in_monnify_s_envelope(sim: SimHarness, client: MonnifyClient) -> None:
    unauthenticated = requests.get(f"{sim.url}/api/v1/banks", timeout=5)
    assert unauthenticated.status_code == 401
    banks = client.list_banks()
    assert ("Guaranty Trust Bank", "058") in [(b.name, b.code) for b in banks]


def test_account_names_are_deterministic_and_unknown_accounts_refused(client) -> None:
    first = client.resolve_account("0123456781", "058")
    assert first.account_name == client.resolve_account("0123456781", "058").account_name
    assert first.account_name != client.resolve_account("0123456791", "058").account_name
    for number, bank in (("0123456780", "058"), ("0123456781", "999"), ("12345", "058")):
        with pytest.raises(MonnifyRejected):
            client.resolve_account(number, bank)


def test_a_successful_transfer_is_answered_notified_and_summarised(sim, client, receiver):
    transfer = send(client, sim, "0123456781")
    assert transfer.status is DisbursementStatus.SUCCESS
    assert transfer.fee_minor == FEE_MINOR
    headers, body, notification = event(receiver)
    assert verify_request(body, headers, sim.settings.monnify_secret_key)
    assert notification["eventType"] == "SUCCESSFUL_DISBURSEMENT"
    assert set(notification["eventData"]) == EVENT_FIELDS
    assert notification["eventData"]["reference"] == transfer.reference
    assert notification["eventData"]["amount"] == Decimal("5000.00")
    assert client.disbursement_summary(transfer.reference).status is DisbursementStatus.SUCCESS
    balance = client.wallet_balance(sim.settings.payouts.wallet_account_number)
    assert balance == START_BALANCE_MINOR - 5000_00 - FEE_MINOR
    with pytest.raises(MonnifyRejected) as duplicate:
        send(client, sim, "0123456781", reference=transfer.reference)
    assert duplicate.value.response_code == "D02"


def test_refusals_create_nothing(sim, client) -> None:
    reference = f"WDR-{uuid.uuid4().hex}"
    with pytest.raises(MonnifyRejected):
        send(client, sim, "0123456781", reference=reference, source="1111111111")
    sim.control("/sim/disbursements/wallet", {"balance": 100})
    with pytest.raises(MonnifyRejected) as short:
        send(client, sim, "0123456781", reference=reference)
    assert "balance" in short.value.message.lower()
    with pytest.raises(MonnifyNotFound):
        client.disbursement_summary(reference)


def test_a_failed_transfer_is_notified(sim, client, receiver) -> None:
    transfer = send(client, sim, "0123456782")
    assert transfer.status is DisbursementStatus.FAILED
    assert event(receiver)[2]["eventType"] == "FAILED_DISBURSEMENT"
    balance = client.wallet_balance(sim.settings.payouts.wallet_account_number)
    assert balance == START_BALANCE_MINOR


def test_a_pending_transfer_settles_and_a_paid_one_reverses(sim, client, receiver) -> None:
    transfer = send(client, sim, "0123456783")
    assert transfer.status is DisbursementStatus.PENDING
    assert receiver.received() == []
    path = f"/sim/disbursements/{transfer.reference}/settle"
    assert sim.post(path, {"status": "REVERSED"}).status_code == 409
    sim.control(path, {"status": "SUCCESS"})
    assert event(receiver)[2]["eventType"] == "SUCCESSFUL_DISBURSEMENT"
    sim.control(path, {"status": "REVERSED"})
    assert event(receiver, 2)[2]["eventType"] == "REVERSED_DISBURSEMENT"
    assert client.disbursement_summary(transfer.reference).status is DisbursementStatus.REVERSED


def test_a_transfer_needing_an_otp(sim, client, receiver) -> None:
    transfer = send(client, sim, "0123456784")
    assert transfer.status is DisbursementStatus.PENDING_AUTHORIZATION
    with pytest.raises(MonnifyRejected):
        client.authorize_disbursement(transfer.reference, "000000")
    done = client.authorize_disbursement(transfer.reference, "123456")
    assert done.status is DisbursementStatus.SUCCESS
    assert event(receiver)[2]["eventType"] == "SUCCESSFUL_DISBURSEMENT"


def test_a_lost_answer_leaves_a_transfer_only_the_summary_shows(sim, client, receiver) -> None:
    reference = f"WDR-{uuid.uuid4().hex}"
    with pytest.raises(MonnifyUnavailable):
        send(client, sim, "0123456786", reference=reference)
    assert client.disbursement_summary(reference).status is DisbursementStatus.SUCCESS
    assert sim.http.get(f"{sim.url}/sim/disbursements/{reference}", timeout=5).json()["posts"] == 1
    assert receiver.received() == []
