"""Monnify's disbursement bodies parsed loosely in encoding, strictly in meaning."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.monnify.disbursements import Bank, Disbursement, DisbursementStatus, ResolvedAccount
from shared.monnify.errors import MonnifyProtocolError

TRANSFER = {
    "amount": Decimal("5000.00"),
    "reference": "WDR-1",
    "status": "SUCCESS",
    "dateCreated": "2026-12-02 10:00:00.000",
    "totalFee": Decimal("10.75"),
    "destinationAccountName": "NGOZI OKONKWO",
    "destinationBankName": "Guaranty Trust Bank",
    "destinationAccountNumber": "0123456781",
    "destinationBankCode": "058",
}


def test_a_transfer_in_minor_units():
    transfer = Disbursement.from_payload(TRANSFER)
    assert (transfer.amount_minor, transfer.fee_minor) == (500_000, 1075)
    assert transfer.status is DisbursementStatus.SUCCESS
    assert transfer.destination_account_name == "NGOZI OKONKWO"


@pytest.mark.parametrize(
    ("changes", "amount", "fee"),
    [
        ({"amount": "5000.00", "totalFee": "10.75"}, 500_000, 1075),  # as strings
        ({"totalFee": None, "fee": 20}, 500_000, 2000),  # a webhook's `fee`
        ({"totalFee": None}, 500_000, None),
    ],
)
def test_amounts_as_numbers_or_strings(changes, amount, fee):
    transfer = Disbursement.from_payload({**TRANSFER, **changes})
    assert (transfer.amount_minor, transfer.fee_minor) == (amount, fee)


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "DONE"},
        {"status": None},
        {"reference": ""},
        {"amount": "lots"},
        {"amount": -5},
        {"amount": Decimal("1.001")},
    ],
)
def test_a_malformed_transfer_is_a_protocol_error(changes):
    with pytest.raises(MonnifyProtocolError):
        Disbursement.from_payload({**TRANSFER, **changes})


def test_statuses_in_flight_and_failed():
    assert {s for s in DisbursementStatus if s.in_flight} == {"PENDING", "IN_PROGRESS"}
    assert {s for s in DisbursementStatus if s.failed} == {"FAILED", "EXPIRED"}
    assert Disbursement.from_payload({**TRANSFER, "status": "pending_authorization"}).status is (
        DisbursementStatus.PENDING_AUTHORIZATION
    )


def test_banks_and_resolved_accounts():
    assert Bank.from_payload({"name": "Wema Bank", "code": "035", "ussdTemplate": None}) == Bank(
        "Wema Bank", "035"
    )
    with pytest.raises(MonnifyProtocolError):
        Bank.from_payload("Wema Bank")
    with pytest.raises(MonnifyProtocolError):
        ResolvedAccount.from_payload({"accountNumber": "0123456781", "bankCode": "058"})
