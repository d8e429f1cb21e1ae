"""Monnify's disbursement (payout) bodies, parsed strictly into typed values: the bank
list, an account-name look-up, and a single transfer as the initiate, authorize and
summary endpoints (and the disbursement webhooks) report it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.monnify.errors import MonnifyProtocolError
from shared.monnify.models import _enum, _optional_text, _text, parse_amount, parse_optional_amount


class DisbursementStatus(StrEnum):
    SUCCESS = "SUCCESS"
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    PENDING_AUTHORIZATION = "PENDING_AUTHORIZATION"
    FAILED = "FAILED"
    REVERSED = "REVERSED"
    EXPIRED = "EXPIRED"

    @property
    def in_flight(self) -> bool:
        """Monnify has not decided yet."""
        return self in (DisbursementStatus.PENDING, DisbursementStatus.IN_PROGRESS)

    @property
    def failed(self) -> bool:
        """Nothing left the merchant wallet."""
        return self in (DisbursementStatus.FAILED, DisbursementStatus.EXPIRED)


@dataclass(frozen=True)
class Bank:
    name: str
    code: str

    @classmethod
    def from_payload(cls, data: Any) -> Bank:
        if not isinstance(data, Mapping):
            raise MonnifyProtocolError("Monnify's bank list holds something that is not a bank")
        return cls(name=_text(data, "name"), code=_text(data, "code"))


@dataclass(frozen=True)
class ResolvedAccount:
    """The account-name look-up's answer."""

    account_number: str
    account_name: str
    bank_code: str

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> ResolvedAccount:
        return cls(
            account_number=_text(data, "accountNumber"),
            account_name=_text(data, "accountName"),
            bank_code=_text(data, "bankCode"),
        )


@dataclass(frozen=True)
class Disbursement:
    """One single transfer: the answer of initiate, validate-otp and summary."""

    reference: str
    status: DisbursementStatus
    amount_minor: int
    fee_minor: int | None
    destination_account_number: str | None
    destination_account_name: str | None
    destination_bank_code: str | None

    @classmethod
    def from_payload(cls, data: Mapping[str, Any], currency: str = "NGN") -> Disbursement:
        fee = data.get("totalFee")
        fee = data.get("fee") if fee is None else fee  # a webhook's eventData says `fee`
        return cls(
            reference=_text(data, "reference"),
            status=_enum(DisbursementStatus, data, "status"),
            amount_minor=parse_amount(data.get("amount"), "amount", currency),
            fee_minor=parse_optional_amount(fee, "totalFee", currency),
            destination_account_number=_optional_text(data, "destinationAccountNumber"),
            destination_account_name=_optional_text(data, "destinationAccountName"),
            destination_bank_code=_optional_text(data, "destinationBankCode"),
        )
