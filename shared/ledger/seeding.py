"""Bulk-loading a ledger's history, for the benchmarks (bench/scale_data.py,
bench/ledger_scale.py): documents in the shapes the ledger writes, inserted in bulk
without its transactions, locks or checks.

Only for a database nothing else writes meanwhile, and nothing here keeps the
invariants: the caller's documents must agree with each other (every account's balance
the sum of its postings, its version the number of entries that moved it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bson import Int64
from pymongo.database import Database

from shared.ledger.accounts import ACCOUNTS, HOLDS, currency_of, new_account_document
from shared.ledger.indexes import LEDGER_INDEXES
from shared.ledger.journal import ENTRIES, UNSEALED

Document = dict[str, Any]


def account_document(
    account_id: str,
    currency: str,
    *,
    balance: int = 0,
    version: int = 0,
    created_at: datetime | None = None,
) -> Document:
    """An account `version` movements old, holding `balance` with nothing held."""
    document = new_account_document(account_id, currency)
    document.update(balance=Int64(balance), available=Int64(balance), version=Int64(version))
    if created_at is not None:
        document["createdAt"] = created_at
    return document


def sealed(entry: Document) -> Document:
    """A journal entry (`journal.entry_document`) as if the audit sealer had chained it
    long ago: its record belongs in the chain the caller builds (`journal.audit_record`)."""
    del entry[UNSEALED]
    return entry


def captured_hold(
    hold_id: str,
    account: str,
    amount: int,
    captured: int,
    *,
    created_at: datetime,
    expires_at: datetime,
    closed_at: datetime,
) -> Document:
    """A hold placed under `<hold_id>:hold` and since captured (`captured` of `amount`)."""
    return {
        "_id": hold_id,
        "key": f"{hold_id}:hold",
        "account": account,
        "currency": currency_of(account),
        "amount": Int64(amount),
        "status": "captured",
        "reference": hold_id,
        "expiresAt": expires_at,
        "createdAt": created_at,
        "captured": Int64(captured),
        "closedAt": closed_at,
    }


def insert_accounts(db: Database, documents: Sequence[Document]) -> None:
    _insert(db, ACCOUNTS, documents)


def insert_entries(db: Database, documents: Sequence[Document]) -> None:
    _insert(db, ENTRIES, documents)


def insert_holds(db: Database, documents: Sequence[Document]) -> None:
    _insert(db, HOLDS, documents)


def drop_indexes(db: Database) -> None:
    """Before a bulk load: inserts go several times faster without the secondary indexes
    (`shared.indexes.ensure_indexes` builds them again afterwards)."""
    for collection in LEDGER_INDEXES:
        db[collection].drop_indexes()


def _insert(db: Database, collection: str, documents: Sequence[Document]) -> None:
    if documents:
        db[collection].insert_many(list(documents), ordered=False)
