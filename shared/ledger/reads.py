"""Everything others read of the ledger. Nothing outside `shared/ledger/` names its
collections: wallets and holds, history pages, what a funding was credited, the
clearing account's movements for reconciliation.

Each read is served from an index (see `indexes.py`); none walks a collection.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.database import Database

from shared.ledger.accounts import ACCOUNTS, HOLDS, currency_of, keeps_running_balance
from shared.ledger.journal import ENTRIES
from shared.pagination import Position, page_after
from shared.queries import in_chunks


@dataclass(frozen=True)
class WalletState:
    account: str
    currency: str
    balance: int
    held: int
    restricted: bool
    restricted_reason: str | None

    @property
    def available(self) -> int:
        return self.balance - self.held


@dataclass(frozen=True)
class HistoryItem:
    """One entry as one wallet saw it: what it gained or lost, and its balance after."""

    id: ObjectId
    type: str  # credit or debit
    amount: int  # positive
    currency: str
    reference: str
    status: str
    description: str
    balance_after: int
    created_at: datetime


class LedgerReads:
    def __init__(self, db: Database):
        self.db = db

    # ---- accounts ----------------------------------------------------------------------

    def wallet(self, account_id: str) -> WalletState:
        """A wallet or receivable; one no money has reached reads as empty."""
        document = self.db[ACCOUNTS].find_one({"_id": account_id}, _WALLET_FIELDS)
        return _wallet_state(account_id, document or {})

    def exists(self, account_id: str) -> bool:
        return self.db[ACCOUNTS].find_one({"_id": account_id}, {"_id": 1}) is not None

    def available(self, account_id: str) -> int:
        """What a wallet can spend now: its balance less what open holds reserve."""
        return self.wallet(account_id).available

    def balance(self, account_id: str) -> int:
        """An account's balance: its document's, or for a system account the sum of its
        postings (a full scan of its entries: for tests and operators, not hot paths)."""
        if keeps_running_balance(account_id):
            return self.wallet(account_id).balance
        return sum(self.posted_sums([account_id]).values())

    def balances(self, account_ids: Sequence[str]) -> dict[str, int]:
        """Balances of wallets and receivables in one query; one no money reached is 0."""
        found = {
            document["_id"]: int(document["balance"])
            for chunk in in_chunks(list(account_ids))
            for document in self.db[ACCOUNTS].find({"_id": {"$in": chunk}}, {"balance": 1})
        }
        return {account_id: found.get(account_id, 0) for account_id in account_ids}

    def wallets_of(self, user_id: ObjectId) -> list[WalletState]:
        """Every wallet (one per currency) of a user."""
        # Only wallets carry a userId; filtering on `kind` too would leave the index.
        documents = self.db[ACCOUNTS].find({"userId": user_id}, _WALLET_FIELDS)
        return [_wallet_state(document["_id"], document) for document in documents]

    # ---- entries ----------------------------------------------------------------------

    def entry(self, key: str) -> dict[str, Any] | None:
        """The journal entry an operation's idempotency key wrote, if any."""
        return self.db[ENTRIES].find_one({"key": key})

    def credited(self, key: str, account: str) -> int:
        """What the entry under `key` moved into `account` (0 if there is none)."""
        entry = self.entry(key)
        if entry is None:
            return 0
        return sum(int(p["amount"]) for p in entry["postings"] if p["account"] == account)

    def history(
        self,
        account: str,
        limit: int,
        *,
        after: Position | None = None,
        kind: str | None = None,
    ) -> list[HistoryItem]:
        """A wallet's entries, newest first (createdAt, then _id), from after the
        (createdAt, _id) of the last item of the previous page if given; only credits or
        debits when `kind` says so."""
        entries = page_after(
            self.db[ENTRIES],
            {"accounts": account},
            limit,
            after,
            keep=lambda entry: kind in (None, _history_item(entry, account).type),
        )
        return [_history_item(entry, account) for entry in entries]

    def posted_sums(
        self, accounts: Iterable[str] | None = None, *, session: ClientSession | None = None
    ) -> dict[str, int]:
        """The sum of postings per account (all accounts when None): a full scan."""
        pipeline: list[dict[str, Any]] = [{"$unwind": "$postings"}]
        if accounts is not None:
            pipeline.append({"$match": {"postings.account": {"$in": list(accounts)}}})
        total = {"$sum": "$postings.amount"}
        pipeline.append({"$group": {"_id": "$postings.account", "total": total}})
        rows = self.db[ENTRIES].aggregate(pipeline, session=session)
        return {row["_id"]: int(row["total"]) for row in rows}

    def net_by_reference(
        self, accounts: list[str], start: datetime, end: datetime
    ) -> dict[str, tuple[int, str]]:
        """What `accounts` gained (net) per entry reference (the key when it has none),
        for entries in [start, end): reference -> (net, currency). Reads the period's
        entries from the time index; nothing older."""
        nets: dict[str, tuple[int, str]] = {}
        period = {"createdAt": {"$gte": start, "$lt": end}}
        fields = {"postings": 1, "reference": 1, "key": 1, "currency": 1}
        for entry in self.db[ENTRIES].find(period, fields):
            moved = sum(int(p["amount"]) for p in entry["postings"] if p["account"] in accounts)
            if moved or any(p["account"] in accounts for p in entry["postings"]):
                reference = entry.get("reference") or entry["key"]
                net, _ = nets.get(reference, (0, entry["currency"]))
                nets[reference] = (net + moved, entry["currency"])
        return nets

    def net_of_reference(self, reference: str, accounts: list[str]) -> int:
        """What `accounts` gained (net) across every entry with this reference."""
        entries = self.db[ENTRIES].find({"reference": reference}, {"postings": 1})
        return sum(
            int(p["amount"])
            for entry in entries
            for p in entry["postings"]
            if p["account"] in accounts
        )

    def keys_present(self, keys: Sequence[str]) -> set[str]:
        """Which of these idempotency keys have their journal entry (the key's index)."""
        return {
            entry["key"]
            for chunk in in_chunks(list(keys))
            for entry in self.db[ENTRIES].find({"key": {"$in": chunk}}, {"key": 1})
        }

    def entries_keyed(self, prefix: str) -> list[dict[str, Any]]:
        """The key and createdAt of every entry whose key starts with `prefix` (a range of
        the key's index): a call's hold extensions, say, for a benchmark."""
        selector = {"key": {"$regex": f"^{re.escape(prefix)}"}}
        return list(self.db[ENTRIES].find(selector, {"key": 1, "createdAt": 1}))

    def entries_per_reference(self, kind: str, references: Sequence[str]) -> Counter[str]:
        """How many entries of `kind` name each reference: a second one is money moved
        twice under a different key."""
        found: Counter[str] = Counter()
        for chunk in in_chunks(list(references)):
            selector = {"reference": {"$in": chunk}, "kind": kind}
            for entry in self.db[ENTRIES].find(selector, {"reference": 1}):
                found[entry["reference"]] += 1
        return found

    # ---- holds ------------------------------------------------------------------------

    def hold(self, hold_id: str) -> dict[str, Any] | None:
        """A hold's account, amount and status."""
        return self.db[HOLDS].find_one({"_id": hold_id}, _HOLD_FIELDS)

    def holds(self, hold_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Holds by id, as `hold` reads each; ids of no hold are left out."""
        return {
            hold["_id"]: hold
            for chunk in in_chunks(list(hold_ids))
            for hold in self.db[HOLDS].find({"_id": {"$in": chunk}}, _HOLD_FIELDS)
        }

    def open_holds(self, accounts: Sequence[str]) -> list[dict[str, Any]]:
        """The open holds of these accounts (the account's index), as `hold` reads each."""
        return [
            hold
            for chunk in in_chunks(list(accounts))
            for hold in self.db[HOLDS].find(
                {"account": {"$in": chunk}, "status": "open"}, _HOLD_FIELDS
            )
        ]

    def expired_holds(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Open holds past their expiry, a bounded batch."""
        selector = {"status": "open", "expiresAt": {"$lte": now}}
        return list(self.db[HOLDS].find(selector, {"account": 1}).limit(limit))


_WALLET_FIELDS = {"balance": 1, "held": 1, "restricted": 1, "restrictedReason": 1}
_HOLD_FIELDS = {"account": 1, "amount": 1, "status": 1, "expiresAt": 1}


def _wallet_state(account_id: str, document: dict[str, Any]) -> WalletState:
    return WalletState(
        account=account_id,
        currency=currency_of(account_id),
        balance=int(document.get("balance", 0)),
        held=int(document.get("held", 0)),
        restricted=bool(document.get("restricted", False)),
        restricted_reason=document.get("restrictedReason"),
    )


def _history_item(entry: dict[str, Any], account: str) -> HistoryItem:
    mine = [p for p in entry["postings"] if p["account"] == account]
    amount = sum(int(p["amount"]) for p in mine)
    return HistoryItem(
        id=entry["_id"],
        type="credit" if amount > 0 else "debit",
        amount=abs(amount),
        currency=entry["currency"],
        reference=entry.get("reference") or entry["key"],
        status="success",
        description=entry.get("description", ""),
        balance_after=int(mine[-1]["balanceAfter"]),
        created_at=entry["createdAt"],
    )
