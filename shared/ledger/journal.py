"""The journal: one entry document per ledger operation, in the `entries` collection.

An entry is at once
- the operation's idempotency record: its `key` is unique, and it keeps the
  fingerprint of the parameters and the result that a repeat replays;
- the journal line: its postings (signed amounts that sum to zero), each wallet's
  balance after it, and the accounts with running balances it posted to (`accounts`:
  the wallets' history index, and the incremental invariant check's);
- the audit record: `unsealed` until the audit sealer chains it (`audit.py`), with
  every touched account's balance, held amount and version after the operation
  (`after`; the version orders an account's entries for the invariant check).

Operations that move no money (a hold, its extension, its release) still write one,
with no postings: the key, the result and the audit record are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from bson import Int64, ObjectId
from pymongo.client_session import ClientSession
from pymongo.database import Database

from shared.ledger.accounts import currency_of, keeps_running_balance
from shared.queries import in_chunks

ENTRIES = "entries"
UNSEALED = "unsealed"


class _Posting(Protocol):
    account: str
    amount: int


def entry_document(
    entry_id: ObjectId,
    key: str,
    op: str,
    fingerprint: str,
    result: dict[str, Any],
    after: dict[str, dict[str, int]],
    now: datetime,
    *,
    postings: Sequence[_Posting] = (),
    reference: str | None = None,
    description: str = "",
    hold_id: str | None = None,
) -> dict[str, Any]:
    accounts = [p.account for p in postings] or list(after)
    document: dict[str, Any] = {
        "_id": entry_id,
        "key": key,
        "kind": op,
        "fingerprint": fingerprint,
        "result": result,
        "currency": currency_of(accounts[0]),
        "postings": [_posting(p, after) for p in postings],
        "accounts": sorted({p.account for p in postings if keeps_running_balance(p.account)}),
        "after": after,
        "reference": reference,
        "description": description,
        "createdAt": now,
        UNSEALED: True,
    }
    if hold_id is not None:
        document["holdId"] = hold_id
    return document


def _posting(posting: _Posting, after: dict[str, dict[str, int]]) -> dict[str, Any]:
    document = {"account": posting.account, "amount": Int64(posting.amount)}
    if posting.account in after:  # system accounts keep no running balance
        document["balanceAfter"] = Int64(after[posting.account]["balance"])
    return document


# ---- the audit sealer's view ---------------------------------------------------------


def unsealed_records(db: Database, limit: int) -> list[dict[str, Any]]:
    """The oldest entries not yet in the audit chain, as audit records."""
    entries = db[ENTRIES].find({UNSEALED: True}).sort("_id", 1).limit(limit)
    return [audit_record(entry) for entry in entries]


def mark_sealed(db: Database, entry_ids: list[ObjectId], session: ClientSession) -> None:
    for chunk in in_chunks(entry_ids):
        db[ENTRIES].update_many(
            {"_id": {"$in": chunk}}, {"$unset": {UNSEALED: ""}}, session=session
        )


def unsealed_count(db: Database) -> int:
    return db[ENTRIES].count_documents({UNSEALED: True})


def audit_record(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "_id": entry["_id"],
        "kind": f"ledger.{entry['kind']}",
        "at": entry["createdAt"],
        "payload": {
            "key": entry["key"],
            "op": entry["kind"],
            "result": entry["result"],
            "accounts": entry["after"],
        },
    }
