"""The ledger's indexes, by collection: `shared/indexes.py` builds and checks them with
every other collection's. Every read in `reads.py` is served by one of these."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from shared.ledger.accounts import ACCOUNTS, HOLDS
from shared.ledger.journal import ENTRIES, UNSEALED

HISTORY_INDEX = "entries_by_wallet_newest"

LEDGER_INDEXES: dict[str, list[IndexModel]] = {
    ACCOUNTS: [
        IndexModel(
            [("userId", ASCENDING), ("currency", ASCENDING)],
            name="wallet_by_user",
        )
    ],
    # The journal (journal.py): one entry per ledger operation.
    ENTRIES: [
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
            [(UNSEALED, ASCENDING), ("_id", ASCENDING)], sparse=True, name="entries_unsealed"
        ),
    ],
    HOLDS: [
        IndexModel([("status", ASCENDING), ("expiresAt", ASCENDING)], name="holds_open_by_expiry"),
        IndexModel([("account", ASCENDING), ("status", ASCENDING)], name="holds_by_account"),
    ],
}
