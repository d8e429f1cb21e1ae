"""Helpers for the calls tests: users with funded wallets, calls started through the API,
and reading a call's money back from the ledger."""

from __future__ import annotations

import time
import uuid
from typing import Any

from bson import ObjectId
from flask.testing import FlaskClient
from pymongo.database import Database

from shared.ledger import Ledger, LedgerReads, SystemAccount, system_account_id, wallet_id
from tests.integration.ledger_support import account_state

PLATFORM = system_account_id(SystemAccount.PLATFORM_REVENUE, "NGN")


class Party:
    """A signed-up user: auth headers, id and NGN wallet."""

    def __init__(self, headers: dict[str, str], user_id: str):
        self.headers = headers
        self.id = user_id
        self.wallet = wallet_id(user_id, "NGN")


def new_party(signup, ledger: Ledger, kobo: int = 0) -> Party:
    headers, body = signup()
    party = Party(headers, body["user"]["id"])
    if kobo:
        ledger.credit(f"test:fund:{uuid.uuid4().hex}", party.wallet, kobo)
    return party


def initiate(client: FlaskClient, caller: Party, receiver: Party, **extra: Any):
    return client.post(
        "/calls/initiate", json={"receiverId": receiver.id, **extra}, headers=caller.headers
    )


def start_call(client: FlaskClient, caller: Party, receiver: Party) -> str:
    response = initiate(client, caller, receiver)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["callId"]


def end_call(client: FlaskClient, party: Party, call_id: str):
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


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1):
    """Poll until predicate() is truthy; returns its value or fails the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def wait_settled(db: Database, call_id: str, timeout: float = 30.0) -> dict[str, Any]:
    return wait_until(
        lambda: (doc := call_doc(db, call_id)) and doc.get("settled") and doc, timeout=timeout
    )
