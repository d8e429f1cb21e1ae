"""Every index the services rely on, created idempotently at start-up."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database

HISTORY_INDEX = "entries_by_wallet_newest"
CALL_SLOT_INDEX = "calls_open_slot_per_caller"

INDEXES: dict[str, list[IndexModel]] = {
    "users": [IndexModel([("email", ASCENDING)], unique=True, name="email_unique")],
    "accounts": [
        IndexModel(
            [("userId", ASCENDING), ("currency", ASCENDING)],
            name="wallet_by_user",
        )
    ],
    "calls": [
        # The guarantee behind CALL_MAX_CONCURRENT: an open call occupies one of its
        # caller's numbered slots, and the slot frees when `open` is unset at the end.
        IndexModel(
            [("callerId", ASCENDING), ("slot", ASCENDING)],
            unique=True,
            partialFilterExpression={"open": True},
            name=CALL_SLOT_INDEX,
        ),
        IndexModel(
            [("callerId", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
            name="calls_by_caller_newest",
        ),
        IndexModel(
            [("receiverId", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
            name="calls_by_receiver_newest",
        ),
        # The sweeper's queries, one index each.
        IndexModel([("status", ASCENDING), ("paidUntil", ASCENDING)], name="calls_by_paid_until"),
        IndexModel([("status", ASCENDING), ("startedAt", ASCENDING)], name="calls_by_start"),
        IndexModel(
            [("status", ASCENDING), ("settled", ASCENDING), ("endedAt", ASCENDING)],
            name="calls_unsettled",
        ),
    ],
    # The journal (shared/ledger/journal.py): one entry per ledger operation.
    "entries": [
        # The idempotency key: a repeat's insert fails here, and is then replayed.
        IndexModel([("key", ASCENDING)], unique=True, name="entries_by_key"),
        # A wallet's history, newest first. Only accounts with running balances are
        # listed (never the clearing account every entry shares), so concurrent inserts
        # share no index key.
        IndexModel(
            [("accounts", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
            name=HISTORY_INDEX,
        ),
        IndexModel([("reference", ASCENDING)], name="entries_by_reference"),
        IndexModel([("createdAt", DESCENDING)], name="entries_by_time"),
        # What the audit sealer has yet to chain: the field is removed once sealed.
        IndexModel(
            [("unsealed", ASCENDING), ("_id", ASCENDING)], sparse=True, name="entries_unsealed"
        ),
    ],
    "fundings": [
        IndexModel(
            [("userId", ASCENDING), ("idempotencyKey", ASCENDING)],
            unique=True,
            partialFilterExpression={"idempotencyKey": {"$exists": True}},
            name="funding_idempotency_key",
        ),
        IndexModel(
            [("transactionReference", ASCENDING)],
            unique=True,
            partialFilterExpression={"transactionReference": {"$exists": True}},
            name="funding_by_transaction_reference",
        ),
        IndexModel([("status", ASCENDING), ("createdAt", ASCENDING)], name="fundings_by_status"),
        IndexModel(
            [("status", ASCENDING), ("confirmedAt", ASCENDING)], name="fundings_by_confirmation"
        ),
    ],
    "refunds": [
        IndexModel([("status", ASCENDING), ("updatedAt", ASCENDING)], name="refunds_by_status"),
        IndexModel([("paymentReference", ASCENDING)], name="refunds_by_funding"),
    ],
    "reconciliation_discrepancies": [
        IndexModel([("day", DESCENDING)], name="discrepancies_by_day")
    ],
    "admin_actions": [IndexModel([("at", DESCENDING)], name="admin_actions_by_time")],
    "webhook_events": [
        IndexModel([("dedupeKey", ASCENDING)], unique=True, name="event_dedupe"),
        IndexModel([("status", ASCENDING), ("receivedAt", ASCENDING)], name="events_by_status"),
        IndexModel([("status", ASCENDING), ("retryAt", ASCENDING)], name="events_due"),
        IndexModel(
            [("paymentReference", ASCENDING), ("status", ASCENDING)], name="events_by_funding"
        ),
    ],
    # The chain's order: two sealers can never both append the same seq.
    "audit": [IndexModel([("seq", ASCENDING)], unique=True, name="audit_seq_unique")],
    "holds": [
        IndexModel([("status", ASCENDING), ("expiresAt", ASCENDING)], name="holds_open_by_expiry"),
        IndexModel([("account", ASCENDING), ("status", ASCENDING)], name="holds_by_account"),
    ],
}


def ensure_indexes(db: Database) -> None:
    for collection, models in INDEXES.items():
        if models:
            db[collection].create_indexes(models)
