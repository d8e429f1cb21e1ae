"""Banks and payout accounts: Monnify's bank list (cached in Redis), and the bank account
a user's withdrawals go to, checked with Monnify's account-name look-up before it is
stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis
from bson import ObjectId
from pymongo.database import Database

from shared.errors import Conflict, DomainError, InvalidRequest
from shared.logs import get_logger
from shared.monnify.client import MonnifyClient
from shared.monnify.errors import MonnifyRejected

log = get_logger(__name__)

BANKS_CACHE_KEY = "monnify:banks"


class AccountNotResolved(DomainError):
    """Monnify could not find a name for the account: nothing was stored."""

    status = 422
    error = "Unprocessable Entity"


def bank_list(redis_client: redis.Redis, monnify: MonnifyClient, ttl: int) -> list[dict[str, str]]:
    """`[{name, code}]`, from Redis while fresh, else from Monnify (then cached for `ttl`)."""
    cached = redis_client.get(BANKS_CACHE_KEY)
    if cached is not None:
        return json.loads(cached)
    banks = [{"name": bank.name, "code": bank.code} for bank in monnify.list_banks()]
    redis_client.set(BANKS_CACHE_KEY, json.dumps(banks), ex=ttl)
    log.info("banks_cached", count=len(banks), ttl=ttl)
    return banks


def set_payout_account(
    db: Database,
    banks: list[dict[str, str]],
    monnify: MonnifyClient,
    user_id: ObjectId,
    bank_code: str,
    account_number: str,
) -> dict[str, Any]:
    """Resolve the account's name with Monnify and store it as the user's payout account."""
    bank = next((b for b in banks if b["code"] == bank_code), None)
    if bank is None:
        rule = "is not a bank code from GET /banks"
        raise InvalidRequest(f"Validation failed: bankCode: {rule}", {"bankCode": [rule]})
    try:
        resolved = monnify.resolve_account(account_number, bank_code)
    except MonnifyRejected as exc:  # a 4xx (or 404): Monnify knows no such account
        raise AccountNotResolved(
            "The bank could not resolve this account number; check it and the bank",
            {"monnifyResponseCode": exc.response_code},
        ) from None
    account = {
        "bankCode": bank_code,
        "bankName": bank["name"],
        "accountNumber": account_number,
        "accountName": resolved.account_name,
        "verifiedAt": datetime.now(UTC),
    }
    db.users.update_one({"_id": user_id}, {"$set": {"payoutAccount": account}})
    log.info("payout_account_set", bankCode=bank_code)
    return account


def payout_account(db: Database, user_id: ObjectId) -> dict[str, Any]:
    """The user's payout account; Conflict until one is set."""
    user = db.users.find_one({"_id": user_id}, {"payoutAccount": 1})
    account = (user or {}).get("payoutAccount")
    if account is None:
        raise Conflict("Set a payout account first: PUT /users/me/payout-account")
    return account
