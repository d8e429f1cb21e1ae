"""The audit trail: every money movement and admin action, in a tamper-evident hash chain.

Writers never touch the chain. Admin actions `append` an unchained record to
`audit_outbox` in the same transaction as what they record; every ledger operation's
journal entry is its own unchained record (`shared/ledger/journal.py`, marked
`unsealed`), so a movement writes no extra document and the hot path takes no global
lock. One sealer (`seal`, a beat task,
under a Redis lock, and a unique index on `seq` in case two ever run) moves outbox
records into `audit` in order, each with

    seq       1, 2, 3, ... without gaps
    prevHash  the previous record's hash (64 zeros for the first)
    hash      sha256(prevHash + canonical JSON of the record's _id, seq, kind, at, payload)

and after each batch stores the head (seq and hash) in Redis, outside the database: a
record appended or removed at the end of the chain breaks no link, the head catches it.

`python -m services.manage audit-verify` walks the chain and reports the first record altered,
removed or inserted, exiting 1 if it finds one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis
from bson import Decimal128, ObjectId
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from redis.exceptions import LockError

from shared.ledger import journal
from shared.logs import get_logger
from shared.metrics import AUDIT_SEALED
from shared.queries import in_chunks

log = get_logger(__name__)

OUTBOX = "audit_outbox"
CHAIN = "audit"
GENESIS = "0" * 64
HEAD_KEY = "audit:head"
SEALER_LOCK = "lock:audit:sealer"
HASHED_FIELDS = ("_id", "seq", "kind", "at", "payload")
SEAL_BATCH = 500
MAX_BATCHES_PER_RUN = 20
# The sealer's worker task, by name: its decorator, the beat schedule and the queue table.
SEAL_TASK = "audit.seal"


# ---- writing -------------------------------------------------------------------------


def append(
    db: Database, kind: str, payload: dict[str, Any], *, session: ClientSession | None = None
) -> None:
    """Record something for the chain. Pass the session of the transaction that does
    the recorded thing, so neither commits without the other."""
    db[OUTBOX].insert_one(
        {"_id": ObjectId(), "kind": kind, "at": datetime.now(UTC), "payload": payload},
        session=session,
    )


# ---- hashing -------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """JSON-ready, and the same before and after a trip through MongoDB (which keeps
    milliseconds, and may hand back naive UTC datetimes)."""
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="milliseconds")
    if isinstance(value, ObjectId | Decimal | Decimal128):
        return str(value)
    return value


def record_hash(prev_hash: str, record: dict[str, Any]) -> str:
    body = {field: record.get(field) for field in HASHED_FIELDS}
    text = json.dumps(_canonical(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + text).encode()).hexdigest()


# ---- the head, kept in Redis ---------------------------------------------------------


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


def read_head(redis_client: redis.Redis) -> Head | None:
    raw = redis_client.get(HEAD_KEY)
    if raw is None:
        return None
    data = json.loads(raw)
    return Head(int(data["seq"]), str(data["hash"]))


def write_head(redis_client: redis.Redis, head: Head) -> None:
    redis_client.set(HEAD_KEY, json.dumps({"seq": head.seq, "hash": head.hash}))


def chain_tail(db: Database, head: Head | None) -> Head:
    """The chain's last record, found from the head in Redis: the head's own record, or
    the few sealed after it by a sealer that stopped before moving the head. Without a
    head (a new chain, or Redis lost it) the seq index is walked once from the end.

    Raises ChainBroken when the head names no record of the chain (records removed, or
    a restore from backup)."""
    if head is None:
        last = db[CHAIN].find_one(sort=[("seq", -1)])
        return Head(last["seq"], last["hash"]) if last else Head(0, GENESIS)
    at_head = db[CHAIN].find_one({"seq": head.seq}, {"hash": 1})
    if at_head is None or at_head["hash"] != head.hash:
        log.error("audit_chain_broken", head_seq=head.seq)
        raise ChainBroken(f"the chain has no record {head.seq} as its head says")
    beyond = list(db[CHAIN].find({"seq": {"$gt": head.seq}}, {"seq": 1, "hash": 1}).sort("seq", 1))
    last = beyond[-1] if beyond else {"seq": head.seq, "hash": head.hash}
    return Head(last["seq"], last["hash"])


# ---- sealing -------------------------------------------------------------------------


class ChainBroken(Exception):
    """The chain in the database disagrees with the head in Redis: tampering or a
    restore from backup. Sealing stops until a person looks (run `verify`)."""


def seal(db: Database, redis_client: redis.Redis, *, batch: int = SEAL_BATCH) -> int:
    """Move outbox records into the chain; returns how many. Does nothing (0) while
    another sealer holds the lock."""
    lock = redis_client.lock(SEALER_LOCK, timeout=60, blocking=False)
    if not lock.acquire():
        return 0
    try:
        sealed = 0
        for _ in range(MAX_BATCHES_PER_RUN):
            count = _seal_batch(db, redis_client, batch)
            sealed += count
            if count < batch:
                break
        return sealed
    finally:
        # If it expired, the unique seq index kept any overlap out of the chain.
        with contextlib.suppress(LockError):
            lock.release()


def _seal_batch(db: Database, redis_client: redis.Redis, batch: int) -> int:
    tail = chain_tail(db, read_head(redis_client))
    outbox, entries = _pending(db, batch)
    if not outbox and not entries:
        return 0
    records = list(chain_records(sorted(outbox + entries, key=lambda r: r["_id"]), tail))
    try:
        with db.client.start_session() as session, session.start_transaction():
            db[CHAIN].insert_many(records, session=session)
            for chunk in in_chunks([r["_id"] for r in outbox]):
                db[OUTBOX].delete_many({"_id": {"$in": chunk}}, session=session)
            if entries:
                journal.mark_sealed(db, [r["_id"] for r in entries], session)
    except DuplicateKeyError:
        log.warning("audit_seal_raced")  # another sealer extended the chain first
        return 0
    sealed = Head(records[-1]["seq"], records[-1]["hash"])
    write_head(redis_client, sealed)
    AUDIT_SEALED.inc(len(records))
    log.info("audit_sealed", records=len(records), seq=sealed.seq, head=sealed.hash)
    return len(records)


def _pending(db: Database, batch: int) -> tuple[list[dict], list[dict]]:
    """The oldest unchained records of each source, `batch` in all."""
    outbox = list(db[OUTBOX].find().sort("_id", 1).limit(batch))
    entries = journal.unsealed_records(db, batch)
    oldest = sorted(outbox + entries, key=lambda r: r["_id"])[:batch]
    kept = {r["_id"] for r in oldest}
    return [r for r in outbox if r["_id"] in kept], [r for r in entries if r["_id"] in kept]


def pending_count(db: Database) -> int:
    """Records waiting for the sealer."""
    return db[OUTBOX].estimated_document_count() + journal.unsealed_count(db)


def chain_records(pending: list[dict[str, Any]], tail: Head) -> Iterator[dict[str, Any]]:
    """The chain records that seal `pending` after `tail`, each hashed over the one before."""
    seq, prev = tail.seq, tail.hash
    for item in pending:
        seq += 1
        record = {
            "_id": item["_id"],
            "seq": seq,
            "kind": item["kind"],
            "at": item["at"],
            "payload": item["payload"],
            "prevHash": prev,
        }
        record["hash"] = prev = record_hash(prev, record)
        yield record


# ---- verifying -----------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    seq: int | None
    problem: str  # altered, removed, inserted
    detail: str


@dataclass(frozen=True)
class Report:
    checked: int
    pending: int
    finding: Finding | None
    head_checked: bool

    @property
    def ok(self) -> bool:
        return self.finding is None

    def describe(self) -> str:
        if self.finding is None:
            tail = "" if self.head_checked else " (no head in Redis: the end was not checked)"
            return f"audit chain intact: {self.checked} records, {self.pending} pending{tail}"
        where = "" if self.finding.seq is None else f" at seq {self.finding.seq}"
        return f"audit chain broken{where}: {self.finding.problem}: {self.finding.detail}"


class _Walker:
    """Checks the chain record by record, and can resume where it stopped."""

    def __init__(self, db: Database):
        self.db = db
        self.last = Head(0, GENESIS)

    def walk(self) -> Finding | None:
        cursor = self.db[CHAIN].find({"seq": {"$gt": self.last.seq}}).sort("seq", 1)
        for record in cursor:
            finding = self._check(record)
            if finding is not None:
                return finding
            self.last = Head(record["seq"], record["hash"])
        return self._stray()

    def _check(self, record: dict[str, Any]) -> Finding | None:
        seq, expected = record.get("seq"), self.last.seq + 1
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < expected:
            return Finding(expected, "inserted", f"record {record['_id']} has seq {seq!r}")
        if seq > expected:
            return Finding(expected, "removed", f"records {expected}..{seq - 1} are missing")
        if record.get("prevHash") != self.last.hash:
            return Finding(
                seq,
                "inserted",
                "it does not link to the record before it (inserted, or that one replaced)",
            )
        if record_hash(self.last.hash, record) != record.get("hash"):
            return Finding(seq, "altered", "its content does not match its hash")
        return None

    def _stray(self) -> Finding | None:
        """A record whose seq the numeric walk never reaches (a string, say)."""
        stray = self.db[CHAIN].find_one({"seq": {"$not": {"$type": "number"}}})
        if stray is None:
            return None
        return Finding(None, "inserted", f"record {stray['_id']} has seq {stray.get('seq')!r}")


def verify(
    db: Database, redis_client: redis.Redis | None = None, *, settle_seconds: float = 3.0
) -> Report:
    """Walk the whole chain; with Redis, also check its end against the stored head.

    A sealer running meanwhile commits records a moment before it moves the head, so a
    difference at the end is looked at again for up to `settle_seconds`."""
    walker = _Walker(db)
    finding = walker.walk()
    head_checked = False
    if finding is None and redis_client is not None:
        finding, head_checked = _check_end(walker, redis_client, settle_seconds)
    pending = pending_count(db)
    return Report(walker.last.seq, pending, finding, head_checked)


def _check_end(
    walker: _Walker, redis_client: redis.Redis, settle_seconds: float
) -> tuple[Finding | None, bool]:
    deadline = time.monotonic() + settle_seconds
    while True:
        head = read_head(redis_client)
        if head is None:
            return None, False
        finding = walker.walk()  # records sealed since the last look
        if finding is not None:
            return finding, True
        finding = _compare_end(walker, head)
        if finding is None or time.monotonic() >= deadline:
            return finding, True
        time.sleep(0.2)


def _compare_end(walker: _Walker, head: Head) -> Finding | None:
    last = walker.last
    if head.seq > last.seq:
        return Finding(last.seq + 1, "removed", f"the chain should run to seq {head.seq}")
    at_head = walker.db[CHAIN].find_one({"seq": head.seq}, {"hash": 1}) if head.seq else None
    if head.seq and (at_head is None or at_head["hash"] != head.hash):
        return Finding(head.seq, "altered", "it is not the record the sealer wrote")
    if head.seq < last.seq:
        return Finding(head.seq + 1, "inserted", "the sealer never wrote records past its head")
    return None


def reanchor(db: Database, redis_client: redis.Redis) -> Report:
    """After MongoDB is restored from a backup, the head in Redis names records the backup
    does not have, and the sealer stops. Check the restored chain link by link and, if
    it is intact, point the head at its last record; a broken chain is left as it is."""
    walker = _Walker(db)
    finding = walker.walk()
    if finding is None:
        write_head(redis_client, walker.last)
        log.warning("audit_head_reanchored", seq=walker.last.seq)
    return Report(walker.last.seq, pending_count(db), finding, head_checked=False)
