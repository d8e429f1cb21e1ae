"""Every index the services rely on. `python -m services.manage migrate` builds them
(idempotently, before a release rolls out); the gateway and workers only check at
start-up that they exist (`require_indexes`): building one on a large collection would
outlast gunicorn's worker timeout, and every replica would race to build it."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database

from shared.ledger.indexes import LEDGER_INDEXES
from shared.settings import ConfigError

CALL_SLOT_INDEX = "calls_open_slot_per_caller"
TRANSACTION_REFERENCE_INDEX = "funding_transaction_reference_unique"

# Indexes replaced by others on the same keys, dropped before the new ones are built
# (MongoDB refuses a second index on the same keys). The partial unique index on
# transactionReference could enforce, never serve, look-ups on the embedded server.
RETIRED: dict[str, list[str]] = {"fundings": ["funding_by_transaction_reference"]}

# The ledger declares its own (shared/ledger/indexes.py): nothing outside it names its
# collections.
INDEXES: dict[str, list[IndexModel]] = {
    **LEDGER_INDEXES,
    "users": [IndexModel([("email", ASCENDING)], unique=True, name="email_unique")],
    # Login sessions (shared/auth_sessions.py), read only by _id; gone once past their
    # absolute end, when every token of theirs has expired too.
    "sessions": [IndexModel([("expiresAt", ASCENDING)], expireAfterSeconds=0, name="sessions_ttl")],
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
    "fundings": [
        # Enforces one funding per (user, Idempotency-Key). Partial, so fundings without
        # a key don't collide; but the embedded server never plans a query with a
        # partial index, so the replay's look-up has the plain index below.
        IndexModel(
            [("userId", ASCENDING), ("idempotencyKey", ASCENDING)],
            unique=True,
            partialFilterExpression={"idempotencyKey": {"$exists": True}},
            name="funding_idempotency_key",
        ),
        # The replay's look-up. A plain index rather than one combined field with a
        # sparse unique index: it needs no new field on existing fundings, so keys
        # stored before it keep replaying. The fields are in the other order only so
        # its key pattern differs from the partial index's (MongoDB refuses two).
        IndexModel(
            [("idempotencyKey", ASCENDING), ("userId", ASCENDING)],
            name="fundings_by_idempotency_key",
        ),
        # Sparse rather than partial: for one field it means the same (fundings not yet
        # at Monnify are left out), and both engines use it for confirmation's look-ups.
        IndexModel(
            [("transactionReference", ASCENDING)],
            unique=True,
            sparse=True,
            name=TRANSACTION_REFERENCE_INDEX,
        ),
        IndexModel([("status", ASCENDING), ("createdAt", ASCENDING)], name="fundings_by_status"),
        IndexModel(
            [("status", ASCENDING), ("confirmedAt", ASCENDING)], name="fundings_by_confirmation"
        ),
        # The daily report's fundings created that day.
        IndexModel([("createdAt", ASCENDING)], name="fundings_by_creation"),
        # The daily report's fundings flagged that day, among those updated that day.
        IndexModel([("updatedAt", ASCENDING)], name="fundings_by_update"),
        # Credited fundings due a recheck for a reversal; the field is removed once
        # past the lookback or reversed, so the index holds only what may come due.
        IndexModel([("recheckAt", ASCENDING)], sparse=True, name="fundings_recheck_due"),
    ],
    "refunds": [
        IndexModel([("status", ASCENDING), ("updatedAt", ASCENDING)], name="refunds_by_status"),
        IndexModel([("paymentReference", ASCENDING)], name="refunds_by_funding"),
        # Refunds still open since before a time: those raised for review (overdue).
        IndexModel([("status", ASCENDING), ("createdAt", ASCENDING)], name="refunds_by_age"),
    ],
    # shared/payouts/repository.py. Every withdrawal has both fields; sparse only so
    # documents without them (the query-plan test's filler) don't collide.
    "withdrawals": [
        IndexModel(
            [("reference", ASCENDING)], unique=True, sparse=True, name="withdrawal_reference"
        ),
        IndexModel(
            [("userId", ASCENDING), ("idempotencyKey", ASCENDING)],
            unique=True,
            sparse=True,
            name="withdrawal_idempotency_key",
        ),
        IndexModel(
            [("userId", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
            name="withdrawals_by_user_newest",
        ),
        # The poller: each status's least recently touched first.
        IndexModel([("status", ASCENDING), ("updatedAt", ASCENDING)], name="withdrawals_by_status"),
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
        # A task run again after its process was killed takes its batch back.
        IndexModel([("batch", ASCENDING), ("status", ASCENDING)], name="events_by_batch"),
    ],
    # The chain's order: two sealers can never both append the same seq.
    "audit": [IndexModel([("seq", ASCENDING)], unique=True, name="audit_seq_unique")],
    "reserved_accounts": [
        # One funding account per user and currency, whatever races to store it.
        IndexModel(
            [("userId", ASCENDING), ("currency", ASCENDING)],
            unique=True,
            name="reserved_account_per_user",
        ),
        # Reconciliation's accounts due a reading of their transaction list.
        IndexModel([("scanDueAt", ASCENDING)], name="reserved_accounts_scan_due"),
    ],
}


class IndexesMissing(ConfigError):
    """The database lacks an index the services rely on: migrations have not run."""


def ensure_indexes(db: Database) -> None:
    """Drop retired indexes and build the missing ones; a no-op when all exist."""
    _drop_retired(db)
    for collection, models in INDEXES.items():
        if models:
            db[collection].create_indexes(models)


def _drop_retired(db: Database) -> None:
    for collection, names in RETIRED.items():
        existing = db[collection].index_information()
        for name in names:
            if name in existing:
                db[collection].drop_index(name)


def missing_indexes(db: Database) -> list[str]:
    """`collection.index` for every expected index the database lacks."""
    missing = []
    for collection, models in INDEXES.items():
        existing = db[collection].index_information()
        names = (model.document["name"] for model in models)
        missing.extend(f"{collection}.{name}" for name in names if name not in existing)
    return missing


def require_indexes(db: Database) -> None:
    """Start-up check: raise IndexesMissing naming what is missing (one line)."""
    missing = missing_indexes(db)
    if missing:
        raise IndexesMissing(
            f"indexes missing: {', '.join(missing)}; run `python -m services.manage migrate`"
        )
