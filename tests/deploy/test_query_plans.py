"""Every query a hot path or a periodic job sends is served from an index.

Each path runs against a database of its own in which every collection also holds
FILLER documents of no interest to it. A listener records every command the path sends;
the filter of each (a find's, a count's, a write's, an aggregation's first $match) is
then explained as a find with execution statistics, and must have examined a bounded
number of documents: a collection scan examines them all (at 2,000 filler documents,
20 times MOST_EXAMINED, or 100,000 the verdict is the same: the filler documents are all
alike, so a query reaches all of them or none; QUERY_PLAN_FILLER sets it).
findAndModify must not be sent to the embedded server, which runs it as a walk of the
whole collection (shared.queries.update_and_read).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import Int64, ObjectId
from pymongo import MongoClient, monitoring
from pymongo.database import Database

from shared import audit, auth_sessions
from shared.calls import renewals, service, settlement, sweeper
from shared.calls.deps import CallContext
from shared.errors import Unauthorized
from shared.funding import daily_report, fundings, inbox, reconciliation, reserved_accounts
from shared.funding.confirmation import FundingConfirmer, Notice
from shared.funding.reconciliation import Reconciler
from shared.funding.refunds import Refunds
from shared.funding.repository import FundingRepository
from shared.indexes import ensure_indexes
from shared.ledger import Ledger, check_recent
from shared.ledger.accounts import open_wallet
from shared.monnify.client import MonnifyClient
from shared.payouts.withdrawals import FAILED, PENDING, WithdrawalRequest, Withdrawals
from shared.queries import IN_CHUNK, find_and_modify_uses_indexes
from shared.users import create_user, find_active_user
from tests.support.server_urls import redis_database

FILLER = int(os.environ.get("QUERY_PLAN_FILLER", "2000"))
MOST_EXAMINED = 100  # documents one query of these paths may look at
COLLECTIONS = [
    "accounts",
    "entries",
    "holds",
    "calls",
    "users",
    "webhook_events",
    "audit",
    "fundings",
    "refunds",
    "sessions",
    "withdrawals",
    "withdrawal_days",
]
QUERIES = ("find", "count", "aggregate", "update", "delete", "findAndModify")


class Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []
        self.on = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on and event.command_name in QUERIES:
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture(scope="module")
def planned(servers) -> Iterator[tuple[Database, Recorder]]:
    """A database of this module's own, filled, over a client whose commands are kept."""
    recorder = Recorder()
    client = MongoClient(servers["database_url"], tz_aware=True, event_listeners=[recorder])
    db = client[f"query_plans_{ObjectId()}"]
    for name in COLLECTIONS:
        for start in range(0, FILLER, 5_000):
            count = min(5_000, FILLER - start)
            db[name].insert_many([_filler(start + i) for i in range(count)])
    # Indexed after the filler: the embedded server builds an index faster than it keeps
    # one up to date insert by insert.
    ensure_indexes(db)
    yield db, recorder
    client.drop_database(db.name)
    client.close()


def _filler(n: int) -> dict[str, Any]:
    """A document of no interest, unique where a collection's unique indexes want it."""
    unique = f"filler-{n}"
    return {
        "filler": n,
        **dict.fromkeys(("key", "email", "dedupeKey", "hash"), unique),
        "seq": -n - 1,
    }


def sent_by(recorder: Recorder, step: Callable[[], object]) -> list[dict[str, Any]]:
    recorder.commands, recorder.on = [], True
    try:
        step()
    finally:
        recorder.on = False
    return recorder.commands


def examined(db: Database, query: dict[str, Any]) -> tuple[str, int | None]:
    """The plan's stage (COLLSCAN anywhere wins) and the documents it examined."""
    explain = db.command("explain", query, verbosity="executionStats")
    plan = explain["queryPlanner"]["winningPlan"]
    stage = "COLLSCAN" if "COLLSCAN" in str(plan) else plan["stage"]
    return stage, explain.get("executionStats", {}).get("totalDocsExamined")


def as_finds(command: dict[str, Any]) -> list[dict[str, Any]]:
    """The reads a command makes, as find commands. A write is explained by its filter:
    the embedded server's explain of an update says COLLSCAN even where the write
    itself goes straight to its document by _id."""
    name = next(iter(command))
    collection = command[name]
    if name == "find":
        keys = ("filter", "sort", "limit", "hint")
        return [{"find": collection, **{k: command[k] for k in keys if k in command}}]
    if name == "count":
        return [{"find": collection, "filter": command.get("query", {})}]
    if name == "aggregate":
        first = command["pipeline"][0] if command["pipeline"] else {}
        return [{"find": collection, "filter": first.get("$match", {})}]
    if name == "findAndModify":
        return [{"find": collection, "filter": command.get("query", {}), "limit": 1}]
    statements = command["updates"] if name == "update" else command["deletes"]
    return [{"find": collection, "filter": statement["q"]} for statement in statements]


def assert_served_by_indexes(db: Database, commands: list[dict[str, Any]]) -> None:
    if not find_and_modify_uses_indexes(db.client):
        sent = [c for c in commands if "findAndModify" in c]
        assert not sent, f"findAndModify walks the collection here: {sent}"
    scans = []
    for query in (find for command in commands for find in as_finds(command)):
        if _names_documents_by_id(query["filter"]):
            continue
        stage, docs = examined(db, query)
        if docs is None or docs > MOST_EXAMINED:
            scans.append((stage, docs, query))
    assert not scans, scans


def _names_documents_by_id(selector: dict[str, Any]) -> bool:
    """A filter on one _id, or an $in of at most IN_CHUNK of them, goes straight to those
    documents on every engine, whatever its other conditions (timed on the embedded
    server at 100,000 documents: 1 to 8 ms) but an $or: with one the embedded server
    walks the collection all the same (1.4 s at 100,000). Its explain says COLLSCAN
    there either way: it doesn't model the _id path."""
    if "$or" in selector:
        return False
    wanted = selector.get("_id")
    if isinstance(wanted, dict) and set(wanted) == {"$in"}:
        return len(wanted["$in"]) <= IN_CHUNK
    return isinstance(wanted, str | ObjectId)


# ---- the paths ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ledger(planned, servers) -> Ledger:
    import redis

    db, _ = planned
    # A Redis database of its own: the audit head it seals must not be the session's.
    client = redis.Redis.from_url(redis_database(servers["redis_url"], "query_plans"))
    client.flushdb()
    return Ledger(db, client)


def funded(ledger: Ledger, amount: int = 100_000) -> str:
    user = create_user(ledger.db, f"{ObjectId()}@example.com", "password123")
    wallet = open_wallet(ledger.db, user["_id"], "NGN")
    ledger.credit(f"fund:{ObjectId()}", wallet, amount)
    return wallet


def test_ledger_movements_and_reads(planned, ledger):
    db, recorder = planned
    payer, payee = funded(ledger), funded(ledger)
    later = datetime.now(UTC) + timedelta(hours=1)

    def movements() -> None:
        ledger.credit(f"c:{ObjectId()}", payer, 500, reference="ref-1")
        ledger.debit(f"d:{ObjectId()}", payer, 100)
        hold = ledger.hold(f"h:{ObjectId()}", payer, 300, later)
        ledger.extend_hold(f"e:{ObjectId()}", hold.hold_id, 100, later, account=payer)
        ledger.capture(f"k:{ObjectId()}", hold.hold_id, 200, [(payee, 200)], account=payer)
        other = ledger.hold(f"h:{ObjectId()}", payer, 50, later)
        ledger.release(f"r:{ObjectId()}", other.hold_id, account=payer)
        ledger.credit(f"c:{ObjectId()}", payer, 500)  # the same key twice: a replay
        key = f"again:{ObjectId()}"
        ledger.credit(key, payer, 7)
        ledger.credit(key, payer, 7)

    def reads() -> None:
        page = ledger.reads.history(payer, 2)
        ledger.reads.history(payer, 2, after=(page[-1].created_at, page[-1].id), kind="debit")
        ledger.reads.wallet(payer)
        ledger.reads.wallets_of(ObjectId(payer.split(":")[1]))
        ledger.reads.credited(f"c:{ObjectId()}", payer)
        ledger.reads.net_of_reference("ref-1", [payer])
        ledger.expire_holds()

    assert_served_by_indexes(db, sent_by(recorder, movements))
    assert_served_by_indexes(db, sent_by(recorder, reads))


def test_the_invariant_check_and_the_audit_sealer(planned, ledger):
    db, recorder = planned
    funded(ledger)
    check_recent(db, settle_seconds=0)  # the first runs walk from the start, once
    audit.seal(db, ledger.redis)  # the first seal finds its tail once; then the head
    funded(ledger)

    def periodic() -> None:
        check_recent(db, settle_seconds=0)
        audit.seal(db, ledger.redis)

    assert_served_by_indexes(db, sent_by(recorder, periodic))


@pytest.fixture()
def calls(planned, ledger, settings) -> CallContext:
    db, _ = planned
    return CallContext(
        db=db,
        ledger=ledger,
        redis=ledger.redis,
        config=replace(settings.calls, connect_fee=100),
        currency="NGN",
    )


def test_a_call_from_start_to_settlement(planned, calls):
    db, recorder = planned
    caller, receiver = funded(calls.ledger), funded(calls.ledger)
    caller_id, receiver_id = (ObjectId(w.split(":")[1]) for w in (caller, receiver))
    started: list[service.Initiated] = []

    def a_call() -> None:
        started.append(service.initiate(calls, caller_id, receiver_id, None))
        call_id = started[-1].call["_id"]
        renewals.renew(calls, str(call_id), started[-1].call["reservedSeconds"])
        service.end(calls, call_id, receiver_id)
        settlement.settle_call(calls, str(call_id))
        service.get_call(calls, call_id, caller_id)
        _page, cursor = service.history(calls, caller_id, None, 1, None)
        service.history(calls, caller_id, "caller", 1, cursor)
        sweeper.sweep(calls)

    assert_served_by_indexes(db, sent_by(recorder, a_call))


def test_users_and_the_webhook_inbox(planned):
    db, recorder = planned
    user = create_user(db, f"{ObjectId()}@example.com", "password123")
    raw = b'{"eventType": "SUCCESSFUL_TRANSACTION", "eventData": {"paymentReference": "x"}}'

    def requests_and_jobs() -> None:
        find_active_user(db, str(user["_id"]))
        stored = inbox.store_event(db, raw, verified_by="test", source_ip=None)
        inbox.store_event(db, raw, verified_by="test", source_ip=None)  # delivered twice
        inbox.claim_batch(db, stored.event_id, 50, batch="task-id")
        inbox.write_updates(db, [inbox.finish_update(stored.event_id, inbox.PROCESSED)])
        inbox.events_to_requeue(db, 60)

    assert_served_by_indexes(db, sent_by(recorder, requests_and_jobs))


def test_login_sessions(planned, ledger):
    db, recorder = planned
    user = create_user(db, f"{ObjectId()}@example.com", "password123")

    def a_session_s_life() -> None:
        session = auth_sessions.start(db, ledger.redis, user, 3600)
        claims = {"sid": session.id, "sub": str(user["_id"]), "sv": session.version}
        auth_sessions.is_live(db, ledger.redis, claims, (None, None))  # Redis lost them
        rotated = auth_sessions.rotate(db, ledger.redis, session.id, session.refresh_jti)
        with pytest.raises(Unauthorized):  # reused: the session ends
            auth_sessions.rotate(db, ledger.redis, session.id, session.refresh_jti)
        auth_sessions.end(db, ledger.redis, rotated.id)
        auth_sessions.end_all(db, ledger.redis, user["_id"])

    assert_served_by_indexes(db, sent_by(recorder, a_session_s_life))


# ---- the funding paths ----------------------------------------------------------------


def a_funding(db: Database, **fields: Any) -> dict[str, Any]:
    """A funding as start_funding and confirmation leave it; `fields` override."""
    now = datetime.now(UTC)
    funding = {
        "_id": fundings.new_payment_reference(),
        "userId": ObjectId(),
        "account": f"wallet:{ObjectId()}:NGN",
        "email": "payer@example.com",
        "currency": "NGN",
        "amountExpected": Int64(500_000),
        "status": fundings.PENDING,
        "fingerprint": "unused",
        "createdAt": now,
        "updatedAt": now,
        **fields,
    }
    db.fundings.insert_one(funding)
    return funding


@pytest.fixture()
def monnify(runtime) -> MonnifyClient:
    """A real client: the paths below are set up so that none of them calls it."""
    return runtime.monnify()


def test_an_idempotency_key_replay(planned, monnify):
    db, recorder = planned
    request = fundings.FundingRequest(ObjectId(), "payer@example.com", 500_000, "NGN", "key-1")
    response = {"paymentReference": "answered before"}
    a_funding(
        db,
        userId=request.user_id,
        idempotencyKey="key-1",
        fingerprint=request.fingerprint(),
        response=response,
    )

    def replay() -> None:  # answered from the stored funding: Monnify is not asked
        assert fundings.start_funding(db, monnify, request) == response

    assert_served_by_indexes(db, sent_by(recorder, replay))


def test_confirmation_finds_its_fundings(planned, ledger, monnify):
    db, recorder = planned
    known = [a_funding(db, transactionReference=f"MNFY|{ObjectId()}") for _ in range(3)]
    confirmer = FundingConfirmer(db, ledger, monnify)
    # More than one $in chunk of each kind, most naming nothing.
    notices = [Notice(f"FND-unknown-{n}", f"MNFY|unknown-{n}") for n in range(2 * IN_CHUNK + 1)]
    notices += [Notice(None, funding["transactionReference"]) for funding in known]
    notices += [Notice(known[0]["_id"])]

    def look_up() -> None:
        found = FundingRepository(db).named(
            [n.payment_reference for n in notices], [n.transaction_reference for n in notices]
        )
        assert [f["_id"] for f in found if f is not None] == [
            *(funding["_id"] for funding in known),
            known[0]["_id"],
        ]
        confirmer.confirm_many(notices[:3])  # none known: answered without Monnify

    assert_served_by_indexes(db, sent_by(recorder, look_up))


def test_reconciliation_of_fundings_and_refunds(planned, ledger, monnify):
    db, recorder = planned
    now = datetime.now(UTC)
    for status in fundings.OPEN_STATUSES:  # open, but too recent to be looked up
        a_funding(db, status=status)
    a_funding(db, status=fundings.PAID, confirmedAt=now, recheckAt=now + timedelta(hours=1))
    stale = a_funding(  # due, but credited before the lookback: dropped without a look-up
        db,
        status=fundings.PAID,
        confirmedAt=now - timedelta(days=30),
        recheckAt=now - timedelta(days=1),
    )
    db.refunds.insert_one(
        {"_id": f"RFD-{ObjectId()}", "status": "initiating", "createdAt": now, "updatedAt": now}
    )
    reconciler = Reconciler(db, FundingConfirmer(db, ledger, monnify), Refunds(db, ledger, monnify))

    def reconcile_pending() -> None:
        assert reconciler.settle_open_fundings(3600).checked == 0
        credited = reconciler.recheck_credited_fundings(lookback_seconds=86400, every_seconds=60)
        assert credited.checked == 0
        assert reconciler.poll_refunds(review_after_seconds=60).checked == 0

    assert_served_by_indexes(db, sent_by(recorder, reconcile_pending))
    assert "recheckAt" not in db.fundings.find_one({"_id": stale["_id"]})


def test_a_refund_reservation(planned):
    db, recorder = planned
    funding = a_funding(db, status=fundings.PAID, amountCredited=Int64(500_000))
    repository = FundingRepository(db)

    def reserve() -> None:
        with db.client.start_session() as session:
            repository.reserve_refund(funding, 100_000, session)
            repository.reserve_refund(
                db.fundings.find_one({"_id": funding["_id"]}), 100_000, session
            )

    assert_served_by_indexes(db, sent_by(recorder, reserve))
    assert db.fundings.find_one({"_id": funding["_id"]})["amountRefunded"] == 200_000


def test_the_daily_reports_fundings(planned):
    db, recorder = planned
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=1)
    earlier = start - timedelta(days=3)
    created = a_funding(db, transactionReference=f"MNFY|{ObjectId()}")
    moved = a_funding(db, createdAt=earlier, transactionReference=f"MNFY|{ObjectId()}")
    flagged = a_funding(db, createdAt=earlier, discrepancy="test: flagged")
    references = {moved["transactionReference"], *(f"MNFY|none-{n}" for n in range(IN_CHUNK))}

    def report_reads() -> None:
        found = FundingRepository(db).of_the_day(start, end, references)
        assert {created["_id"], moved["_id"], flagged["_id"]} <= {f["_id"] for f in found}
        daily_report.ledger_net(db, moved)

    assert_served_by_indexes(db, sent_by(recorder, report_reads))


def test_reserved_accounts_and_their_transfers(planned, monnify, runtime):
    db, recorder = planned
    far = datetime.now(UTC) + timedelta(days=1)
    db.reserved_accounts.insert_many(  # this collection's filler: unique per user, not due
        [
            {"_id": f"filler-{n}", "userId": f"filler-{n}", "currency": "NGN", "scanDueAt": far}
            for n in range(FILLER)
        ]
    )
    user = create_user(db, f"{ObjectId()}@example.com", "password123")
    now = datetime.now(UTC)
    account = {
        "_id": reserved_accounts.account_reference(user["_id"], "NGN"),
        "userId": user["_id"],
        "currency": "NGN",
        "wallet": open_wallet(db, user["_id"], "NGN"),
        "email": user["email"],
        "accountName": user["email"],
        "accounts": [],
        "createdAt": now,
        "lastActivityAt": now,
        "scanDueAt": now - timedelta(seconds=1),
    }
    db.reserved_accounts.insert_one(account)
    accounts = reserved_accounts.ReservedAccounts(db, monnify, runtime.kyc_vault())
    reference = f"MNFY|{ObjectId()}"
    transfer = reserved_accounts.Transfer(account["_id"], reference, reference)

    def paths() -> None:  # served from the database: Monnify is not asked
        assert accounts.funding_account(user, "NGN")["accountReference"] == account["_id"]
        assert reserved_accounts.record_transfers(db, [transfer]) == [reference]
        due = reserved_accounts.due_for_scan(db, reconciliation.BATCH)
        assert account["_id"] in {a["_id"] for a in due}
        scan = reserved_accounts.Scan([transfer], now, complete=True)
        reserved_accounts.finish_scan(db, account, scan)

    assert_served_by_indexes(db, sent_by(recorder, paths))


def test_a_withdrawal_its_replay_its_page_and_the_poller(planned, ledger, monnify, settings):
    db, recorder = planned
    wallet = funded(ledger, 1_000_000)
    user_id = ObjectId(wallet.split(":")[1])
    destination = {"bankCode": "058", "bankName": "GTBank", "accountNumber": "0123456781"}
    db.users.update_one(
        {"_id": user_id}, {"$set": {"payoutAccount": {**destination, "accountName": "A B"}}}
    )
    withdrawals = Withdrawals(db, ledger, monnify, settings.payouts)
    request = WithdrawalRequest(user_id, 500_00, "NGN", f"key-{ObjectId()}")
    long_ago = datetime.now(UTC) - timedelta(days=1)

    def paths() -> None:  # none of them asks Monnify
        answer = withdrawals.request(request)
        assert withdrawals.request(request) == answer  # the replay
        reference = answer["reference"]
        assert withdrawals.repo.claim_send(reference, 0, PENDING)
        assert [w["reference"] for w in withdrawals.repo.page(user_id, 1, None)] == [reference]
        withdrawals.owned(user_id, reference)
        withdrawals.repo.quiet_since(PENDING, long_ago, 100)
        withdrawals.fail(withdrawals.repo.by_reference(reference), FAILED, "test")

    assert_served_by_indexes(db, sent_by(recorder, paths))


def test_a_scan_is_caught(planned):
    """The control: a query no index serves fails the check."""
    db, recorder = planned
    commands = sent_by(recorder, lambda: db.entries.find_one({"description": "nobody"}))
    with pytest.raises(AssertionError):
        assert_served_by_indexes(db, commands)


def test_the_checked_database_holds_the_filler(planned):
    db, _ = planned
    assert all(
        db[name].count_documents({"filler": {"$exists": True}}) == FILLER for name in COLLECTIONS
    )
