"""Helpers for the funding, refund, reconciliation and admin tests: everything goes over
real HTTP to the session's gateway and simulator, and tasks run on the real worker (users:
tests/support/users.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests
import simplejson
from pymongo.database import Database

from shared.monnify.signature import compute_signature

WEBHOOK_PATH = "/payments/monnify/webhook"


# ---- the simulator ---------------------------------------------------------------------


def sim(monnify_sim: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = requests.post(f"{monnify_sim}/sim/{path}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def transaction_path(transaction_reference: str, action: str) -> str:
    return f"transactions/{quote(transaction_reference, safe='')}/{action}"


def pay(monnify_sim: str, funding: dict[str, Any], **body: Any) -> dict[str, Any]:
    """The customer pays (the full amount unless `amount` says otherwise); Monnify
    notifies unless `notify=False`."""
    return sim(monnify_sim, transaction_path(funding["transactionReference"], "pay"), body)


def reverse(monnify_sim: str, funding: dict[str, Any]) -> None:
    sim(monnify_sim, transaction_path(funding["transactionReference"], "reverse"))


def notify(monnify_sim: str, funding: dict[str, Any], **body: Any) -> dict[str, Any]:
    return sim(monnify_sim, transaction_path(funding["transactionReference"], "notify"), body)


# ---- signed webhooks -------------------------------------------------------------------


def notification(funding: dict[str, Any], amount_paid: Any, status: str = "PAID") -> bytes:
    """A SUCCESSFUL_TRANSACTION body as Monnify writes it (compact JSON)."""
    payload = {
        "eventType": "SUCCESSFUL_TRANSACTION",
        "eventData": {
            "transactionReference": funding["transactionReference"],
            "paymentReference": funding["paymentReference"],
            "amountPaid": amount_paid,
            "totalPayable": amount_paid,
            "paymentStatus": status,
            "paymentMethod": "ACCOUNT_TRANSFER",
            "currency": "NGN",
        },
    }
    return simplejson.dumps(payload, use_decimal=True, separators=(",", ":")).encode()


def post_signed(
    base_url: str, body: bytes, secret: str, headers: dict[str, str] | None = None
) -> requests.Response:
    """POST a webhook body signed with `secret`, with any extra `headers`."""
    return requests.post(
        f"{base_url}{WEBHOOK_PATH}",
        data=body,
        headers={
            "Content-Type": "application/json",
            "monnify-signature": compute_signature(body, secret),
            **(headers or {}),
        },
        timeout=10,
    )


# ---- records ---------------------------------------------------------------------------


def credit_entries(db: Database, funding: dict[str, Any]) -> int:
    return db.entries.count_documents({"key": f"monnify:{funding['transactionReference']}"})


def funding_record(db: Database, funding: dict[str, Any]) -> dict[str, Any]:
    return db.fundings.find_one({"_id": funding["paymentReference"]})
