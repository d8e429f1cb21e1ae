"""Accounts: user wallets and the system accounts money moves between.

Account ids are deterministic strings, so opening a wallet is an idempotent upsert and
a racing signup can't create two wallets.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bson import Int64, ObjectId
from pymongo.database import Database

ACCOUNTS = "accounts"
HOLDS = "holds"


class SystemAccount(StrEnum):
    """System accounts, one per currency. Their balances may go negative.

    Nearly every movement touches one of them, so they keep no balance document that
    every writer would queue on: they are append-only, and their balance is the sum of
    their postings (`balance_of`). Wallets and receivables, one per user, keep running
    balances that each movement updates conditionally.
    """

    GATEWAY_CLEARING = "gateway_clearing"  # money in from (and back to) Monnify
    PLATFORM_REVENUE = "platform_revenue"  # platform fee on calls


def wallet_id(user_id: ObjectId | str, currency: str) -> str:
    return f"wallet:{user_id}:{currency}"


def system_account_id(account: SystemAccount, currency: str) -> str:
    return f"system:{account.value}:{currency}"


def receivable_id(user_id: ObjectId | str, currency: str) -> str:
    """What a user owes after a reversal their wallet could not cover (negative = owed)."""
    return f"receivable:{user_id}:{currency}"


def is_user_wallet(account_id: str) -> bool:
    return account_id.startswith("wallet:")


def keeps_running_balance(account_id: str) -> bool:
    """Wallets and receivables have a balance document; system accounts don't."""
    return not account_id.startswith("system:")


def currency_of(account_id: str) -> str:
    return account_id.rsplit(":", 1)[-1]


def new_account_document(account_id: str, currency: str) -> dict[str, Any]:
    document: dict[str, Any] = {
        "_id": account_id,
        "kind": "user" if is_user_wallet(account_id) else "system",
        "currency": currency,
        "balance": Int64(0),
        "held": Int64(0),
        # balance - held, kept by every write: the condition a spending write checks.
        "available": Int64(0),
        "version": Int64(0),
        "restricted": False,
        "createdAt": datetime.now(UTC),
    }
    if is_user_wallet(account_id):
        document["userId"] = ObjectId(account_id.split(":")[1])
    return document


def open_account(db: Database, account_id: str, currency: str, session: Any = None) -> None:
    """Create the account if it does not exist; never touches an existing one."""
    db[ACCOUNTS].update_one(
        {"_id": account_id},
        {"$setOnInsert": new_account_document(account_id, currency)},
        upsert=True,
        session=session,
    )


def open_wallet(db: Database, user_id: ObjectId, currency: str) -> str:
    account_id = wallet_id(user_id, currency)
    open_account(db, account_id, currency)
    return account_id
