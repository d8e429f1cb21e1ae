"""Helpers for the calls tests: calls started through the API, and reading a call's money
back from the ledger (users with funded wallets: the `party` fixture)."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from flask.testing import FlaskClient
from pymongo.database import Database

from shared.ledger import LedgerReads, SystemAccount, system_account_id
from tests.support.ledger_support import account_state
from tests.support.polling import wait_until
from tests.support.users import User

PLATFORM = system_account_id(SystemAccount.PLATFORM_REVENUE, "NGN")


def initiate(client: FlaskClient, caller: User, receiver: User, **extra: Any):
    return client.post(
        "/calls/initiate", json={"receiverId": receiver.id, **extra}, headers=caller.headers
    )


def start_call(client: FlaskClient, caller: User, receiver: User) -> str:
    response = initiate(client, caller, receiver)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["callId"]


def end_call(client: FlaskClient, party: User, call_id: str):
    return client.post(f"/calls/{call_id}/end", headers=party.headers)


def wallet(db: Database, account: str) -> dict[str, int]:
    return account_state(db, account)


def call_doc(db: Database, call_id: str) -> dict[str, Any]:
    return db.calls.find_one({"_id": ObjectId(call_id)})


def hold_of(db: Database, call_id: str) -> dict[str, Any] | None:
    return db.holds.find_one({"_id": f"call:{call_id}"})


def captures_of(db: Database, call_id: str) -> list[dict[str, Any]]:
    """The call's capture entry (one, once settled; with no postings if it cost nothing)."""
    entry = LedgerReads(db).entry(f"call:{call_id}:capture")
    return [entry] if entry else []


def wait_settled(db: Database, call_id: str, timeout: float = 30.0) -> dict[str, Any]:
    return wait_until(
        lambda: (doc := call_doc(db, call_id)) and doc.get("settled") and doc, timeout=timeout
    )
