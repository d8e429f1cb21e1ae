"""The loaded world of bench/scale.py, bulk-inserted in the shapes the code writes.

A year of history is simulated in time order, so the documents agree with each other:
users and their NGN wallets; fundings (most credited, some expired, a few pending), the
signed webhook event of each credited one and its credit entry; calls between users,
each ended and settled, with its hold (captured) and its two journal entries (the hold,
the capture that pays the receiver and the platform fee). Every entry's balance-after is
the wallet's at that moment, each wallet ends with the sum of its postings and holds
nothing, and every entry is already sealed into the audit chain (built with the
sealer's own code, continuing the chain the stack has), so the invariant check finds
nothing and the sealer carries on from the loaded head.

Documents come from the product's builders where it has them (the ledger's through
`shared/ledger/seeding.py`, which also inserts them; the funding fingerprint, the inbox's
event fields, the sealer's chain); the rest copy the fields the modules write
(shared/users, shared/funding, shared/calls).
The password hash is computed once and shared: argon2 per user would take hours.

Speed: SecantusDB keeps every index up to date on each insert, at a few hundred entries
a second. The loader drops the secondary indexes of the collections it fills, inserts,
and builds them again with `ensure_indexes` (the same definitions the services create),
which is several times faster; the stack is idle meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import queue
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from bson import Int64, ObjectId
from pymongo.database import Database

from shared import audit
from shared.calls.config import CallConfig
from shared.calls.rating import Tariff, split_cost
from shared.funding import fundings, inbox
from shared.funding.confirmation import credit_key
from shared.indexes import ensure_indexes
from shared.ledger import Posting, SystemAccount, seeding, system_account_id, wallet_id
from shared.ledger.journal import audit_record, entry_document
from shared.passwords import hash_password

CHUNK = 5_000
PROGRESS_EVERY = 250_000  # documents between progress lines: a full load takes minutes
CURRENCY = "NGN"
PASSWORD = "scale-password"  # every loaded user's, should anyone want to log in as one
HISTORY_DAYS = 365
FUNDING_AMOUNTS_NGN = (1_000, 2_000, 5_000, 10_000, 20_000)
EXPIRED_SHARE = 0.06  # of credited fundings: one left unpaid beside it
PENDING_SHARE = 0.005  # of credited fundings: opened minutes ago, still unpaid
DUPLICATE_SHARE = 0.1  # of webhook events: delivered twice
RECHECK_LOOKBACK = timedelta(days=7)  # RECONCILE_CREDITED_LOOKBACK_SECONDS' default
Insert = Callable[[Database, Sequence[dict[str, Any]]], None]


def _into(collection: str) -> Insert:
    def insert(db: Database, documents: Sequence[dict[str, Any]]) -> None:
        db[collection].insert_many(list(documents), ordered=False)

    return insert


# The collections the load fills besides the ledger's, whose documents (accounts, holds,
# entries) go in through its seeding module.
COLLECTIONS = ("users", "fundings", "webhook_events", "calls", audit.CHAIN)
INSERTS: dict[str, Insert] = {
    **{collection: _into(collection) for collection in COLLECTIONS},
    "accounts": seeding.insert_accounts,
    "holds": seeding.insert_holds,
    "entries": seeding.insert_entries,
}
CLEARING = system_account_id(SystemAccount.GATEWAY_CLEARING, CURRENCY)
REVENUE = system_account_id(SystemAccount.PLATFORM_REVENUE, CURRENCY)


@dataclass(frozen=True)
class Sizes:
    users: int
    postings: int
    call_share: float  # of movements, the rest being fundings


@dataclass
class Wallet:
    user_id: ObjectId
    account: str
    balance: int = 0
    version: int = 0


class Sink:
    """Buffers documents per collection and inserts them in chunks from a background
    thread, so building the next chunk overlaps the server's work on the last."""

    def __init__(self, db: Database):
        self.db = db
        self.counts: dict[str, int] = {}
        self._buffers: dict[str, list[dict[str, Any]]] = {}
        self._queue: queue.Queue[tuple[str, list[dict[str, Any]]] | None] = queue.Queue(4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._insert_loop, daemon=True)
        self._thread.start()

    def add(self, kind: str, document: dict[str, Any]) -> None:
        buffer = self._buffers.setdefault(kind, [])
        buffer.append(document)
        if len(buffer) >= CHUNK:
            self._send(kind)

    def close(self) -> dict[str, int]:
        for kind in list(self._buffers):
            self._send(kind)
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.counts

    def _send(self, kind: str) -> None:
        documents = self._buffers.pop(kind, [])
        if documents:
            before = sum(self.counts.values())
            self.counts[kind] = self.counts.get(kind, 0) + len(documents)
            if before // PROGRESS_EVERY < (before + len(documents)) // PROGRESS_EVERY:
                print(f"  {before + len(documents):,} documents built", flush=True)
            self._queue.put((kind, documents))

    def _insert_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    INSERTS[item[0]](self.db, item[1])
                except BaseException as exc:  # re-raised by close() in the main thread
                    self._error = exc


@dataclass
class Chain:
    """The audit chain as the sealer would have built it, continued from its tail."""

    head: audit.Head
    pending: list[dict[str, Any]] = field(default_factory=list)

    def add(self, entry: dict[str, Any], sink: Sink) -> None:
        self.pending.append(audit_record(entry))
        if len(self.pending) >= CHUNK:
            self.flush(sink)

    def flush(self, sink: Sink) -> None:
        for record in audit.chain_records(self.pending, self.head):
            sink.add(audit.CHAIN, record)
            self.head = audit.Head(record["seq"], record["hash"])
        self.pending = []


class World:
    """Simulates the history movement by movement and emits its documents."""

    def __init__(self, sizes: Sizes, calls: CallConfig, sink: Sink, chain: Chain):
        self.sizes = sizes
        self.config = calls
        self.tariff = Tariff(
            calls.default_rate_per_minute, calls.connect_fee, calls.billing_increment_seconds
        )
        self.sink = sink
        self.chain = chain
        self.now = datetime.now(UTC)
        self.clock = self.now - timedelta(days=HISTORY_DAYS)
        self.wallets: list[Wallet] = []
        self.by_account: dict[str, Wallet] = {}
        self.postings = 0
        self._serial = 0

    # ---- the run ---------------------------------------------------------------------

    def run(self) -> None:
        self._add_users()
        movements = max(int(self.sizes.postings / 2.5), 1)  # 2 or 3 postings each
        end = self.now - timedelta(hours=1)
        step = (end - self.clock) / movements
        while self.postings < self.sizes.postings:
            # The estimate of movements can fall short: never stamp one in the future.
            self.clock = min(self.clock + step, end)
            self._movement()
        # Opened as the load ends, not as it began: a full load takes longer than
        # RECONCILE_PENDING_AFTER_SECONDS, after which reconciliation would ask Monnify
        # (the simulator, which never heard of them) about each.
        opened = datetime.now(UTC)
        for _ in range(int(movements * (1 - self.sizes.call_share) * PENDING_SHARE)):
            self._funding(random.choice(self.wallets), fundings.PENDING, opened)
        self.chain.flush(self.sink)
        self._add_accounts()

    def _movement(self) -> None:
        caller = random.choice(self.wallets)
        hold = self.tariff.cost(self.config.hold_block_seconds)
        if random.random() < self.sizes.call_share and caller.balance >= hold:
            self._call(caller, random.choice(self.wallets), hold)
            return
        self._credited_funding(caller)
        if random.random() < EXPIRED_SHARE:
            self._funding(random.choice(self.wallets), fundings.EXPIRED, self.clock)

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    # ---- users and wallets -----------------------------------------------------------

    def _add_users(self) -> None:
        password_hash = hash_password(PASSWORD)
        for number in range(self.sizes.users):
            user_id = ObjectId()
            self.sink.add(
                "users",
                {
                    "_id": user_id,
                    "email": f"load-{number}@scale.example.com",
                    "passwordHash": password_hash,
                    "role": "user",
                    "disabled": False,
                    "createdAt": self.clock,
                },
            )
            wallet = Wallet(user_id, wallet_id(user_id, CURRENCY))
            self.wallets.append(wallet)
            self.by_account[wallet.account] = wallet

    def _add_accounts(self) -> None:
        for wallet in self.wallets:
            document = seeding.account_document(
                wallet.account,
                CURRENCY,
                balance=wallet.balance,
                version=wallet.version,
                created_at=self.now - timedelta(days=HISTORY_DAYS),
            )
            self.sink.add("accounts", document)

    # ---- fundings --------------------------------------------------------------------

    def _funding(self, wallet: Wallet, status: str, at: datetime) -> dict[str, Any]:
        """A funding as start_funding leaves it once Monnify answered, in `status`."""
        amount = random.choice(FUNDING_AMOUNTS_NGN) * 100
        email = f"user-{wallet.user_id}@scale.example.com"
        request = fundings.FundingRequest(wallet.user_id, email, amount, CURRENCY, None)
        reference = fundings.new_payment_reference()
        transaction = f"MNFY|LOAD|{self._next_serial():010d}"
        document = {
            "_id": reference,
            "userId": wallet.user_id,
            "account": wallet.account,
            "email": email,
            "currency": CURRENCY,
            "amountExpected": Int64(amount),
            "status": status,
            "fingerprint": request.fingerprint(),
            "createdAt": at,
            "updatedAt": at,
            "transactionReference": transaction,
            "response": _checkout_response(reference, transaction, amount, at),
        }
        if status == fundings.EXPIRED:
            document["decisions"] = [{"at": at, "decision": "closed: EXPIRED"}]
            document["reconciledAt"] = at + timedelta(hours=1)
        self.sink.add("fundings", document)
        return document

    def _credited_funding(self, wallet: Wallet) -> None:
        funding = self._funding(wallet, fundings.PAID, self.clock)
        amount = int(funding["amountExpected"])
        paid_on = self.clock + timedelta(minutes=2)
        confirmed = paid_on + timedelta(seconds=1)
        funding.update(
            amountPaid=Int64(amount),
            amountCredited=Int64(amount),
            paidOn=paid_on,
            confirmedAt=confirmed,
            updatedAt=confirmed,
            decisions=[{"at": confirmed, "decision": f"credited {amount} (PAID)"}],
        )
        if self.now - confirmed < RECHECK_LOOKBACK:
            # Rechecked for a reversal within the hour, as the reconciliation job does,
            # so a run finds only what it would find in service: nothing due.
            funding["reconciledAt"] = self.now - timedelta(minutes=random.uniform(0, 20))
            # Next due an hour after (RECONCILE_CREDITED_EVERY_SECONDS' default).
            funding["recheckAt"] = funding["reconciledAt"] + timedelta(hours=1)
        self._webhook_event(funding, paid_on)
        self._entry(
            credit_key(funding["transactionReference"]),
            "credit",
            [Posting(CLEARING, -amount), Posting(wallet.account, amount)],
            {wallet.account: amount},
            reference=funding["transactionReference"],
            description="Wallet funding via Monnify",
        )

    def _webhook_event(self, funding: dict[str, Any], paid_on: datetime) -> None:
        payload = {
            "eventType": "SUCCESSFUL_TRANSACTION",
            "eventData": {
                "transactionReference": funding["transactionReference"],
                "paymentReference": funding["_id"],
                "amountPaid": int(funding["amountPaid"]) // 100,
                "totalPayable": int(funding["amountExpected"]) // 100,
                "paidOn": paid_on.strftime("%d/%m/%Y %I:%M:%S %p"),
                "paymentStatus": "PAID",
                "paymentMethod": "ACCOUNT_TRANSFER",
                "currency": CURRENCY,
            },
        }
        raw = json.dumps(payload, separators=(",", ":")).encode()
        received = paid_on + timedelta(milliseconds=300)
        document = {
            "_id": ObjectId(),
            "dedupeKey": hashlib.sha256(raw).hexdigest(),
            "body": raw.decode(),
            "status": inbox.PROCESSED,
            "verifiedBy": "signature",
            "sourceIp": "127.0.0.1",
            "deliveries": 1,
            "receivedAt": received,
            "updatedAt": funding["confirmedAt"],
            "note": "funding paid",
            **inbox.event_fields(payload),
        }
        if random.random() < DUPLICATE_SHARE:
            document.update(deliveries=2, lastDeliveryAt=received + timedelta(seconds=1))
        self.sink.add("webhook_events", document)

    # ---- calls -----------------------------------------------------------------------

    def _call(self, caller: Wallet, receiver: Wallet, held: int) -> None:
        if receiver is caller:
            return
        call_id = ObjectId()
        hold_id = f"call:{call_id}"
        block = self.config.hold_block_seconds
        duration = random.randint(1, block - 10)  # within the first block: no renewal
        cost = self.tariff.cost(duration)
        earned, fee = split_cost(cost, self.config.platform_fee_percent)
        started, ended = self.clock, self.clock + timedelta(seconds=duration)
        self._entry(
            f"{hold_id}:hold",
            "hold",
            [],
            {caller.account: 0},
            held={caller.account: held},
            reference=hold_id,
            hold_id=hold_id,
            result={"holdId": hold_id, "account": caller.account, "amount": held, "status": "open"},
        )
        self.clock = ended
        entry_id = self._entry(
            f"{hold_id}:capture",
            "capture",
            [
                Posting(caller.account, -cost),
                Posting(receiver.account, earned),
                Posting(REVENUE, fee),
            ],
            {caller.account: -cost, receiver.account: earned},
            reference=hold_id,
            description=f"Call {call_id}",
            hold_id=hold_id,
        )
        self._hold_document(hold_id, caller, held, cost, started, ended)
        self._call_document(call_id, caller, receiver, started, ended, duration, cost, entry_id)

    def _hold_document(
        self, hold_id: str, caller: Wallet, held: int, cost: int, started: datetime, ended: datetime
    ) -> None:
        block = self.config.hold_block_seconds
        expires = started + timedelta(seconds=block + self.config.hold_expiry_grace_seconds)
        self.sink.add(
            "holds",
            seeding.captured_hold(
                hold_id,
                caller.account,
                held,
                cost,
                created_at=started,
                expires_at=expires,
                closed_at=ended,
            ),
        )

    def _call_document(
        self,
        call_id: ObjectId,
        caller: Wallet,
        receiver: Wallet,
        started: datetime,
        ended: datetime,
        duration: int,
        cost: int,
        entry_id: str,
    ) -> None:
        block = self.config.hold_block_seconds
        self.sink.add(
            "calls",
            {
                "_id": call_id,
                "callerId": caller.user_id,
                "receiverId": receiver.user_id,
                "currency": CURRENCY,
                "account": caller.account,
                "holdId": f"call:{call_id}",
                "ratePerMinute": self.tariff.rate_per_minute,
                "connectFee": self.tariff.connect_fee,
                "incrementSeconds": self.tariff.increment_seconds,
                "status": "ended",
                "slot": 0,
                "reservedSeconds": block,
                "settled": True,
                "startedAt": started,
                "createdAt": started,
                "paidUntil": started + timedelta(seconds=block),
                "endedAt": ended,
                "durationSeconds": duration,
                "billedSeconds": self.tariff.billable_seconds(duration),
                "cost": cost,
                "endReason": random.choice(("caller_hangup", "receiver_hangup")),
                "settledAt": ended + timedelta(milliseconds=200),
                "entryId": entry_id,
            },
        )

    # ---- the journal -----------------------------------------------------------------

    def _entry(
        self,
        key: str,
        op: str,
        postings: list[Posting],
        changes: dict[str, int],
        *,
        held: dict[str, int] | None = None,
        result: dict[str, Any] | None = None,
        **fields: Any,
    ) -> str:
        """Apply the balance changes and emit the entry (sealed) and its chain record."""
        after = {}
        for account, change in changes.items():
            wallet = self.by_account[account]
            wallet.balance += change
            wallet.version += 1
            after[account] = {
                "balance": wallet.balance,
                "held": (held or {}).get(account, 0),
                "version": wallet.version,
            }
        entry_id = ObjectId()
        # Same shape as a live entry; its fingerprint (of parameters nobody will replay)
        # only has the right form.
        fingerprint = hashlib.sha256(key.encode()).hexdigest()
        document = entry_document(
            entry_id,
            key,
            op,
            fingerprint,
            result if result is not None else {"entryId": str(entry_id)},
            after,
            self.clock,
            postings=postings,
            **fields,
        )
        self.sink.add("entries", seeding.sealed(document))  # its record is in the chain below
        self.chain.add(document, self.sink)
        self.postings += len(postings)
        return str(entry_id)


def _checkout_response(
    reference: str, transaction: str, amount: int, at: datetime
) -> dict[str, Any]:
    """What POST /wallet/fund answered, stored on the funding for Idempotency-Key replays."""
    return {
        "transactionReference": transaction,
        "paymentReference": reference,
        "accountNumber": f"{random.randrange(10**10):010d}",
        "bankName": "Wema bank",
        "accountName": "Scale Load",
        "amount": amount,
        "currency": CURRENCY,
        "expiryDate": (at + timedelta(minutes=40)).replace(microsecond=0),
        "checkoutUrl": f"http://127.0.0.1/checkout/{transaction}",
    }


# ---- loading ---------------------------------------------------------------------------


def load(
    db: Database, redis_client: redis.Redis, sizes: Sizes, calls: CallConfig
) -> dict[str, int]:
    """Fill the stack's database; returns the documents inserted per collection. The
    stack must be idle: its indexes are rebuilt and the audit head moved."""
    for collection in COLLECTIONS:
        db[collection].drop_indexes()
    seeding.drop_indexes(db)
    sink = Sink(db)
    chain = Chain(audit.chain_tail(db, audit.read_head(redis_client)))
    try:
        World(sizes, calls, sink, chain).run()
    finally:
        counts = sink.close()
    ensure_indexes(db)
    audit.write_head(redis_client, chain.head)
    return counts
