"""The simulator's disbursements: every single transfer and the merchant wallet's
balance, with Monnify's rules (see disbursements.py for the outcomes and routes)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.monnify_sim.http import amount_minor, text
from services.monnify_sim.state import ApiError, now

OTP = "123456"
FEE_MINOR = 10_00  # Monnify's flat transfer fee, taken from the merchant wallet
MIN_AMOUNT_MINOR = 10_00
START_BALANCE_MINOR = 100_000_000_00
BANKS = (
    ("Access Bank", "044", "901"),
    ("First Bank of Nigeria", "011", "894"),
    ("Guaranty Trust Bank", "058", "737"),
    ("United Bank for Africa", "033", "919"),
    ("Wema Bank", "035", "945"),
    ("Zenith Bank", "057", "966"),
    ("Kuda Microfinance Bank", "50211", None),
    ("Moniepoint Microfinance Bank", "50515", None),
)
_FIRST = ("ADAEZE", "BABATUNDE", "CHIDI", "FUNMILAYO", "IBRAHIM", "NGOZI", "OLUWASEUN", "ZAINAB")
_LAST = ("ADEYEMI", "BELLO", "EZE", "MUSA", "NWOSU", "OKAFOR", "OKONKWO", "YUSUF")
EVENTS = {
    "SUCCESS": "SUCCESSFUL_DISBURSEMENT",
    "FAILED": "FAILED_DISBURSEMENT",
    "REVERSED": "REVERSED_DISBURSEMENT",
}
# What a control call may move a transfer to, from which statuses.
SETTLE_FROM = {
    "SUCCESS": ("PENDING",),
    "FAILED": ("PENDING", "PENDING_AUTHORIZATION"),
    "REVERSED": ("SUCCESS",),
}


def account_name(account_number: str) -> str:
    """The deterministic name of a test account."""
    digits = int(account_number)
    return f"{_FIRST[digits % len(_FIRST)]} {_LAST[(digits // 10) % len(_LAST)]}"


def bank_name(bank_code: str) -> str:
    for name, code, _ in BANKS:
        if code == bank_code:
            return name
    raise ApiError(400, f"Unknown bank code {bank_code}")


def nuban(value: str | None, name: str) -> str:
    if not value or len(value) != 10 or not value.isdigit():
        raise ApiError(400, f"{name} must be a 10-digit account number")
    return value


@dataclass
class SimDisbursement:
    reference: str
    transaction_reference: str
    amount_minor: int
    narration: str
    currency: str
    bank_code: str
    account_number: str
    account_name: str
    created_on: datetime
    status: str
    completed_on: datetime | None = None


@dataclass
class DisbursementBook:
    """Every transfer and the merchant wallet's balance, under the simulator's lock."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    balance_minor: int = START_BALANCE_MINOR
    transfers: dict[str, SimDisbursement] = field(default_factory=dict)
    # How many times each reference was posted, refused duplicates included.
    posts: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        with self.lock:
            self.transfers.clear()
            self.posts.clear()
            self.balance_minor = START_BALANCE_MINOR

    def create(self, body: dict[str, Any], wallet_account: str) -> SimDisbursement:
        """A new transfer, in the outcome its destination's last digit picks."""
        reference = text(body, "reference")
        with self.lock:
            self.posts[reference] += 1
        amount_paid = amount_minor(body.get("amount"), "amount")
        account = nuban(text(body, "destinationAccountNumber"), "destinationAccountNumber")
        bank_code = text(body, "destinationBankCode")
        bank_name(bank_code)
        if text(body, "sourceAccountNumber") != wallet_account:
            raise ApiError(400, "Invalid source account number")
        if (text(body, "currency", required=False) or "NGN") != "NGN":
            raise ApiError(422, "Currency is not supported for disbursements")
        if amount_paid < MIN_AMOUNT_MINOR:
            raise ApiError(400, "Amount cannot be less than 10.00")
        with self.lock:
            if reference in self.transfers:
                raise ApiError(422, f"Duplicate reference {reference}", "D02")
            if amount_paid + FEE_MINOR > self.balance_minor:
                raise ApiError(400, "Insufficient balance in source account", "D04")
            created = now()
            transfer = SimDisbursement(
                reference=reference,
                transaction_reference=f"MFDS{created:%Y%m%d%H%M%S}{len(self.transfers):06d}",
                amount_minor=amount_paid,
                narration=text(body, "narration", required=False) or "",
                currency="NGN",
                bank_code=bank_code,
                account_number=account,
                account_name=account_name(account),
                created_on=created,
                status=_first_status(account[-1]),
            )
            self.transfers[reference] = transfer
            if transfer.status != "FAILED":
                self.balance_minor -= amount_paid + FEE_MINOR
            _complete_if_final(transfer)
            return transfer

    def get(self, reference: str) -> SimDisbursement:
        with self.lock:
            transfer = self.transfers.get(reference)
            if transfer is None:
                raise ApiError(404, f"Could not find transfer with reference {reference}")
            return transfer

    def authorize(self, reference: str, otp: str) -> SimDisbursement:
        with self.lock:
            transfer = self.get(reference)
            if transfer.status != "PENDING_AUTHORIZATION":
                raise ApiError(422, f"Transfer is {transfer.status}, not awaiting authorization")
            if otp != OTP:
                raise ApiError(400, "Invalid authorization code")
            transfer.status = "SUCCESS"
            _complete_if_final(transfer)
            return transfer

    def settle(self, reference: str, status: str) -> SimDisbursement:
        with self.lock:
            transfer = self.get(reference)
            if transfer.status not in SETTLE_FROM[status]:
                raise ApiError(409, f"A {transfer.status} transfer cannot become {status}")
            transfer.status = status
            if status != "SUCCESS":  # the money goes back to the merchant wallet
                self.balance_minor += transfer.amount_minor + FEE_MINOR
            transfer.completed_on = now()
            return transfer


def _first_status(last_digit: str) -> str:
    return {"0": "FAILED", "2": "FAILED", "3": "PENDING", "4": "PENDING_AUTHORIZATION"}.get(
        last_digit, "SUCCESS"
    )


def _complete_if_final(transfer: SimDisbursement) -> None:
    if transfer.status in EVENTS:
        transfer.completed_on = now()


def answer_is_lost(transfer: SimDisbursement) -> bool:
    return transfer.account_number.endswith("6")
