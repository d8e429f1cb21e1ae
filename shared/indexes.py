"""Every index the services rely on, created idempotently at start-up."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database

# Named so queries can hint it: some planners (SecantusDB) otherwise scan the collection
# when a filter adds a second field to the account.
HISTORY_INDEX = "postings_by_account_newest"

INDEXES: dict[str, list[IndexModel]] = {
    "users": [IndexModel([("email", ASCENDING)], unique=True, name="email_unique")],
    "accounts": [
        IndexModel(
            [("userId", ASCENDING), ("currency", ASCENDING)],
            name="wallet_by_user",
        )
    ],
    "operations": [],  # _id is the idempotency key
    "entries": [IndexModel([("createdAt", DESCENDING)], name="entries_by_time")],
    "postings": [
        IndexModel(
            [("account", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
            name=HISTORY_INDEX,
        ),
        IndexModel([("entryId", ASCENDING)], name="postings_by_entry"),
    ],
    "holds": [
        IndexModel([("status", ASCENDING), ("expiresAt", ASCENDING)], name="holds_open_by_expiry"),
        IndexModel([("account", ASCENDING), ("status", ASCENDING)], name="holds_by_account"),
    ],
}


def ensure_indexes(db: Database) -> None:
    for collection, models in INDEXES.items():
        if models:
            db[collection].create_indexes(models)
