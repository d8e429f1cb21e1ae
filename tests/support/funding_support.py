"""Helpers for the funding, refund, reconciliation and admin tests: everything goes over
real HTTP to the session's gateway and simulator, and tasks run on the real worker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests
import simplejson
from pymongo.database import Database

from shared.monnify.signature import compute_signature
from shared.users import set_role

TIMEOUT = 15
WEBHOOK_PATH = "/payments/monnify/webhook"


class User:
    def __init__(self, gateway: str, email: str, body: dict[str, Any]):
        self.gateway = gateway
        self.email = email
        self.id = body["user"]["id"]
        self.headers = {"Authorization": f"Bearer {body['access_token']}"}

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.gateway}{path}", headers=self.headers, timeout=10, **kwargs)

    def post(
        self, path: str, json: Any = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return requests.post(
            f"{self.gateway}{path}",
            json=json,
            headers={**self.headers, **(headers or {})},
            timeout=10,
        )

    def fund(self, amount: int | Decimal = 5000, **extra: Any) -> dict[str, Any]:
        response = self.post("/wallet/fund", {"amount": amount, **extra})
        assert response.status_code == 201, response.text
        return response.json()

    def balance(self) -> dict[str, Any]:
        response = self.get("/wallet/balance")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_balance(self, expected: int | Decimal) -> dict[str, Any]:
        return wait_for(lambda: self.balance(), lambda body: body["balance"] == expected)


def unique_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def signup(gateway: str) -> User:
    email = unique_email()
    response = requests.post(
        f"{gateway}/auth/signup", json={"email": email, "password": "password123"}, timeout=10
    )
    assert response.status_code == 201, response.text
    return User(gateway, email, response.json())


def make_admin(db: Database, user: User) -> User:
    assert set_role(db, user.email, "admin")
    return user


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = TIMEOUT):
    """Poll `read` until `done(value)`; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting; last seen: {value!r}")
        time.sleep(0.1)


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
