"""Monnify's reserved (static) accounts: the create and details answers, and a page of an
account's transactions, parsed strictly (see models.py for the rules)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.monnify.errors import MonnifyProtocolError
from shared.monnify.models import _optional_text, _text, parse_paid_on

CREATE_PATH = "/api/v2/bank-transfer/reserved-accounts"
DETAILS_PATH = "/api/v2/bank-transfer/reserved-accounts/{reference}"
TRANSACTIONS_PATH = "/api/v1/bank-transfer/reserved-accounts/transactions"


@dataclass(frozen=True)
class BankAccount:
    bank_code: str
    bank_name: str
    account_number: str
    account_name: str

    def as_dict(self) -> dict[str, str]:
        return {
            "bankCode": self.bank_code,
            "bankName": self.bank_name,
            "accountNumber": self.account_number,
            "accountName": self.account_name,
        }


@dataclass(frozen=True)
class ReservedAccount:
    account_reference: str
    account_name: str
    currency: str
    accounts: tuple[BankAccount, ...]
    status: str | None

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> ReservedAccount:
        raw_accounts = data.get("accounts")
        if not isinstance(raw_accounts, list) or not raw_accounts:
            raise MonnifyProtocolError("Monnify's reserved account lacks accounts")
        accounts = tuple(_bank_account(item) for item in raw_accounts)
        return cls(
            account_reference=_text(data, "accountReference"),
            account_name=_text(data, "accountName"),
            currency=(_optional_text(data, "currencyCode") or "NGN").upper(),
            accounts=accounts,
            status=_optional_text(data, "status"),
        )


def _bank_account(item: Any) -> BankAccount:
    if not isinstance(item, Mapping):
        raise MonnifyProtocolError("Monnify sent an account that is not an object")
    return BankAccount(
        bank_code=_text(item, "bankCode"),
        bank_name=_text(item, "bankName"),
        account_number=_text(item, "accountNumber"),
        account_name=_text(item, "accountName"),
    )


@dataclass(frozen=True)
class TransferSummary:
    """One line of a reserved account's transaction list: enough to find it; the status
    API decides what it is worth."""

    transaction_reference: str
    payment_reference: str
    created_on: datetime | None


@dataclass(frozen=True)
class TransferPage:
    items: tuple[TransferSummary, ...]
    last: bool

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> TransferPage:
        content = data.get("content")
        if not isinstance(content, list):
            raise MonnifyProtocolError("Monnify's transaction list lacks content")
        items = tuple(_summary(item) for item in content)
        # Without `last`, an empty page is the end.
        last = data.get("last")
        return cls(items, last if isinstance(last, bool) else not items)


def _summary(item: Any) -> TransferSummary:
    if not isinstance(item, Mapping):
        raise MonnifyProtocolError("Monnify sent a transaction that is not an object")
    reference = _text(item, "transactionReference")
    return TransferSummary(
        transaction_reference=reference,
        payment_reference=_optional_text(item, "paymentReference") or reference,
        created_on=parse_paid_on(item.get("createdOn"), "createdOn"),
    )
