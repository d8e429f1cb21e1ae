"""Reserved accounts: each user's permanent bank accounts at Monnify, and the transfers
into them.

- An account is reserved on the user's first request, under an accountReference derived
  from the user and currency, so a repeat or a race reserves one: Monnify refuses a
  reference it has, and we then read its details. It is stored (one per user and
  currency, by a unique index) and served from the database afterwards.
- A transfer into it arrives as a SUCCESSFUL_TRANSACTION webhook naming the account in
  `product.reference`. It becomes a funding of its own (paymentReference = Monnify's,
  status pending), so the confirmation every funding goes through (status API, one credit
  under `monnify:<transactionReference>`, reversals, reconciliation) applies unchanged.
- Reconciliation reads each account's transaction list, newest first, down to what it
  read last time (`transfers_since`): a transfer whose webhook was lost becomes a funding
  and is confirmed like the rest. Accounts with a transfer in the last week are read
  every 15 minutes, dormant ones daily, so a pass costs one list call per due account.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.errors import Conflict, InvalidRequest
from shared.funding import fundings
from shared.funding.repository import FundingRepository
from shared.kyc import KycVault, load_kyc
from shared.ledger.accounts import open_wallet
from shared.logs import get_logger
from shared.monnify.client import MonnifyClient
from shared.monnify.errors import MonnifyNotFound, MonnifyRejected
from shared.monnify.reserved_accounts import ReservedAccount
from shared.queries import in_chunks

log = get_logger(__name__)

PRODUCT_TYPE = "RESERVED_ACCOUNT"
CURRENCIES = ("NGN",)  # Monnify reserves accounts in naira
ACTIVE_WINDOW = timedelta(days=7)
ACTIVE_SCAN_EVERY = timedelta(minutes=15)
DORMANT_SCAN_EVERY = timedelta(days=1)
PAGE_SIZE = 50
MAX_PAGES = 20  # per account and pass: 1,000 transfers
# Re-read this far behind the newest transfer seen, in case Monnify lists one late.
OVERLAP = timedelta(hours=1)


class KycRequired(Conflict):
    """Monnify reserves accounts only for a customer with a BVN or NIN."""


def account_reference(user_id: ObjectId, currency: str) -> str:
    """One per user and currency, the same on every request."""
    return f"PCS-{user_id}-{currency}"


def account_name(user_id: ObjectId) -> str:
    """The name a payer's bank shows for the account (after the merchant's): nothing
    personal, since anyone given the number sees it."""
    return f"Wallet {str(user_id)[-8:].upper()}"


@dataclass(frozen=True)
class Transfer:
    """A transfer into a reserved account, as a webhook or the transaction list names it."""

    account_reference: str
    payment_reference: str
    transaction_reference: str


class ReservedAccounts:
    def __init__(
        self,
        db: Database,
        monnify: MonnifyClient,
        vault: KycVault,
        preferred_banks: tuple[str, ...] = (),
    ):
        self.db = db
        self.monnify = monnify
        self.vault = vault
        self.preferred_banks = preferred_banks

    def funding_account(self, user: dict[str, Any], currency: str) -> dict[str, Any]:
        """The user's reserved account in `currency`, reserved at Monnify on first use."""
        stored = self.db.reserved_accounts.find_one({"userId": user["_id"], "currency": currency})
        if stored is not None:
            return account_view(stored)
        if currency not in CURRENCIES:
            raise InvalidRequest(
                f"Funding accounts are available in {', '.join(CURRENCIES)} only",
                {"currency": currency},
            )
        kyc = load_kyc(self.db, self.vault, user["_id"])
        if kyc is None:
            raise KycRequired(
                "A funding account needs your BVN or NIN first: PUT /users/me/kyc",
                {"kyc": "missing"},
            )
        reference = account_reference(user["_id"], currency)
        account = self._reserve(reference, user, currency, (kyc.type, kyc.number))
        return account_view(self._store(user, currency, account))

    def _reserve(
        self, reference: str, user: dict[str, Any], currency: str, kyc: tuple[str, str]
    ) -> ReservedAccount:
        """Reserve at Monnify; a reference Monnify already has (a repeat, a race, or an
        answer lost on the way) is read back instead."""
        try:
            return self.monnify.create_reserved_account(
                account_reference=reference,
                account_name=account_name(user["_id"]),
                currency=currency,
                customer_email=user["email"],
                customer_name=user["email"],
                kyc=kyc,
                preferred_banks=self.preferred_banks,
            )
        except MonnifyRejected as refused:
            try:
                return self.monnify.get_reserved_account(reference)
            except MonnifyNotFound:
                raise _without(refused, kyc[1]) from None

    def _store(
        self, user: dict[str, Any], currency: str, account: ReservedAccount
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        document = {
            "_id": account.account_reference,
            "userId": user["_id"],
            "currency": currency,
            "wallet": open_wallet(self.db, user["_id"], currency),
            "email": user["email"],
            "accountName": account.account_name,
            "accounts": [bank.as_dict() for bank in account.accounts],
            "createdAt": now,
            "lastActivityAt": now,
            "scanDueAt": now + ACTIVE_SCAN_EVERY,
        }
        try:
            self.db.reserved_accounts.insert_one(document)
        except DuplicateKeyError:  # a concurrent request stored it first
            return self.db.reserved_accounts.find_one({"_id": account.account_reference})
        log.info("reserved_account_created", accountReference=account.account_reference)
        return document


def _without(refused: MonnifyRejected, number: str) -> MonnifyRejected:
    """Monnify's refusal, minus the KYC number should its message quote it (say, an
    invalid BVN): the message reaches the user and the logs."""
    return MonnifyRejected(
        refused.message.replace(number, "*" * len(number)),
        response_code=refused.response_code,
        http_status=refused.http_status,
    )


def account_view(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "accountReference": document["_id"],
        "accountName": document["accountName"],
        "currency": document["currency"],
        "accounts": document["accounts"],
    }


# ---- transfers into the accounts -----------------------------------------------------------


def transfers_in(events: Iterable[dict[str, Any]]) -> list[Transfer]:
    """The stored webhook events that name a transfer into a reserved account."""
    return [
        Transfer(e["productReference"], e["paymentReference"], e["transactionReference"])
        for e in events
        if e.get("productType") == PRODUCT_TYPE
        and all(
            isinstance(e.get(name), str)
            for name in ("productReference", "paymentReference", "transactionReference")
        )
    ]


def record_transfers(db: Database, transfers: Sequence[Transfer]) -> list[str]:
    """Make each transfer into an account of ours a pending funding (once: an existing
    one is left as it is); returns the paymentReferences of those still open, to confirm.
    A transfer naming no account of ours gets nothing, and its event stays unmatched."""
    if not transfers:
        return []
    accounts = _by_id(db.reserved_accounts, {t.account_reference for t in transfers})
    known = {t.payment_reference: t for t in transfers if t.account_reference in accounts}
    repository = FundingRepository(db)
    existing = repository.by_references(set(known))
    new = [t for reference, t in known.items() if reference not in existing]
    # A webhook and reconciliation may race on one: the second leaves it as it is.
    repository.insert_new([_funding(accounts[t.account_reference], t) for t in new])
    _note_activity(db, {t.account_reference for t in new})
    return [
        reference
        for reference in known
        if reference not in existing or existing[reference]["status"] in fundings.OPEN_STATUSES
    ]


def _by_id(collection: Any, ids: set[str]) -> dict[str, dict[str, Any]]:
    return {
        document["_id"]: document
        for chunk in in_chunks(sorted(ids))
        for document in collection.find({"_id": {"$in": chunk}})
    }


def _funding(account: dict[str, Any], transfer: Transfer) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "_id": transfer.payment_reference,
        "transactionReference": transfer.transaction_reference,
        "accountReference": account["_id"],
        "userId": account["userId"],
        "account": account["wallet"],
        "email": account["email"],
        "currency": account["currency"],
        "status": fundings.PENDING,
        "createdAt": now,
        "updatedAt": now,
    }


def _note_activity(db: Database, references: set[str]) -> None:
    """A transfer makes an account active: read its list soon, in case of others."""
    if not references:
        return
    now = datetime.now(UTC)
    db.reserved_accounts.update_many(
        {"_id": {"$in": sorted(references)}},
        {"$set": {"lastActivityAt": now}, "$min": {"scanDueAt": now + ACTIVE_SCAN_EVERY}},
    )


# ---- reading the transaction lists (reconciliation) ---------------------------------------


@dataclass(frozen=True)
class Scan:
    """What one reading of an account's list found. `complete`: it reached what the last
    reading saw (or the end), so `newest` can become the next reading's floor."""

    transfers: list[Transfer]
    newest: datetime | None
    complete: bool


def due_for_scan(db: Database, limit: int) -> list[dict[str, Any]]:
    """Accounts whose list is due a reading, longest due first (accounts_scan_due)."""
    cursor = (
        db.reserved_accounts.find({"scanDueAt": {"$lte": datetime.now(UTC)}})
        .sort("scanDueAt", ASCENDING)
        .limit(limit)
    )
    return list(cursor)


def transfers_since(monnify: MonnifyClient, account: dict[str, Any]) -> Scan:
    """The account's transfers, newest first, down to an hour before the newest one the
    last reading saw: usually one page."""
    seen = account.get("scannedThrough")
    floor = seen - OVERLAP if seen else None
    transfers: list[Transfer] = []
    newest = seen
    for page in range(MAX_PAGES):
        result = monnify.reserved_account_transactions(account["_id"], page=page, size=PAGE_SIZE)
        for item in result.items:
            if floor and item.created_on and item.created_on < floor:
                return Scan(transfers, newest, True)
            transfers.append(
                Transfer(account["_id"], item.payment_reference, item.transaction_reference)
            )
            if item.created_on and (newest is None or item.created_on > newest):
                newest = item.created_on
        if result.last:
            return Scan(transfers, newest, True)
    log.warning("reserved_account_scan_truncated", accountReference=account["_id"])
    return Scan(transfers, seen, False)


def finish_scan(db: Database, account: dict[str, Any], scan: Scan) -> None:
    """Remember how far the list was read, and when to read it next."""
    now = datetime.now(UTC)
    fresh = db.reserved_accounts.find_one({"_id": account["_id"]}, {"lastActivityAt": 1})
    active = fresh and fresh["lastActivityAt"] >= now - ACTIVE_WINDOW
    fields: dict[str, Any] = {
        "lastScannedAt": now,
        "scanDueAt": now + (ACTIVE_SCAN_EVERY if active else DORMANT_SCAN_EVERY),
    }
    if scan.complete and scan.newest:
        fields["scannedThrough"] = scan.newest
    db.reserved_accounts.update_one({"_id": account["_id"]}, {"$set": fields})
