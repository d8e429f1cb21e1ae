"""The audit trail: every ledger movement leaves an outbox record in its own transaction,
the sealer chains them, and verification finds the first record altered, removed or
inserted, also through `python -m services.manage audit-verify`.

Tampering happens in a database and Redis of its own per test, so the session's chain
stays intact for every other test."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime

import pytest
import redis
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from shared import audit
from shared.admin_actions import record_admin_action
from shared.indexes import ensure_indexes
from shared.ledger import InsufficientFunds, Ledger, journal, wallet_id
from tests.support.server_urls import redis_database, with_database


@pytest.fixture()
def isolated(db, settings):
    """A database and a Redis of the test's own (the chain and its head)."""
    name = f"audit_{uuid.uuid4().hex[:10]}"
    database = db.client[name]
    ensure_indexes(database)
    # The URL's own db number would win over a db= argument.
    redis_client = redis.Redis.from_url(redis_database(settings.redis_url, "audit"))
    redis_client.delete(audit.HEAD_KEY, audit.SEALER_LOCK)
    yield database, redis_client
    db.client.drop_database(name)
    redis_client.delete(audit.HEAD_KEY, audit.SEALER_LOCK)


@pytest.fixture()
def chain(isolated):
    """Five movements on a fresh ledger, sealed: a chain of seq 1..5."""
    database, redis_client = isolated
    ledger = Ledger(database, redis_client)
    account = wallet_id(ObjectId(), "NGN")
    ledger.credit("fund-1", account, 5000)
    ledger.debit("spend-1", account, 1000)
    ledger.credit("fund-2", account, 700)
    hold = ledger.hold("hold-1", account, 300, datetime(2100, 1, 1, tzinfo=UTC))
    ledger.release("release-1", hold.hold_id)
    assert audit.seal(database, redis_client) == 5
    return database, redis_client


def _finding(database, redis_client) -> audit.Finding:
    report = audit.verify(database, redis_client, settle_seconds=0)
    assert not report.ok, report.describe()
    return report.finding


def test_every_movement_is_recorded_in_its_transaction_and_a_failed_one_is_not(isolated):
    database, redis_client = isolated
    ledger = Ledger(database, redis_client)
    account = wallet_id(ObjectId(), "NGN")
    ledger.credit("fund", account, 5000)
    with pytest.raises(InsufficientFunds):
        ledger.debit("too-much", account, 9000)
    ledger.credit("fund", account, 5000)  # a replay moves nothing and records nothing

    # A movement's journal entry is its audit record, waiting for the sealer.
    records = journal.unsealed_records(database, 100)
    assert [r["kind"] for r in records] == ["ledger.credit"]
    payload = records[0]["payload"]
    assert payload["key"] == "fund"
    assert payload["accounts"][account] == {"balance": 5000, "held": 0, "version": 1}


def test_sealed_chain_verifies_and_links_every_record(chain):
    database, redis_client = chain
    records = list(database[audit.CHAIN].find().sort("seq", 1))
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["prevHash"] == audit.GENESIS
    for before, after in itertools.pairwise(records):
        assert after["prevHash"] == before["hash"]
    assert audit.pending_count(database) == 0
    assert audit.read_head(redis_client) == audit.Head(5, records[-1]["hash"])
    report = audit.verify(database, redis_client)
    assert report.ok and report.checked == 5 and report.head_checked, report.describe()


def test_an_altered_record_is_caught(chain):
    database, redis_client = chain
    database[audit.CHAIN].update_one({"seq": 3}, {"$set": {"payload.result.entryId": "forged"}})
    finding = _finding(database, redis_client)
    assert (finding.seq, finding.problem) == (3, "altered")


def test_an_altered_record_with_a_recomputed_hash_breaks_the_next_link(chain):
    database, redis_client = chain
    record = database[audit.CHAIN].find_one({"seq": 2})
    record["payload"]["accounts"] = {"wallet:x:NGN": {"balance": 10**9, "held": 0}}
    forged_hash = audit.record_hash(record["prevHash"], record)
    database[audit.CHAIN].update_one(
        {"seq": 2}, {"$set": {"payload": record["payload"], "hash": forged_hash}}
    )
    finding = _finding(database, redis_client)
    assert (finding.seq, finding.problem) == (3, "inserted")


def test_a_removed_record_is_caught(chain):
    database, redis_client = chain
    database[audit.CHAIN].delete_one({"seq": 2})
    finding = _finding(database, redis_client)
    assert (finding.seq, finding.problem) == (2, "removed")


def test_removing_the_last_records_is_caught_by_the_head(chain):
    database, redis_client = chain
    database[audit.CHAIN].delete_many({"seq": {"$gte": 4}})
    finding = _finding(database, redis_client)
    assert (finding.seq, finding.problem) == (4, "removed")


def test_a_record_inserted_between_two_is_caught(chain):
    database, redis_client = chain
    copy = database[audit.CHAIN].find_one({"seq": 2})
    copy.update(_id=ObjectId(), seq=2.5)
    database[audit.CHAIN].insert_one(copy)
    finding = _finding(database, redis_client)
    assert (finding.seq, finding.problem) == (3, "inserted")


def test_a_well_formed_record_appended_after_the_head_is_caught(chain):
    database, redis_client = chain
    last = database[audit.CHAIN].find_one({"seq": 5})
    forged = {
        "_id": ObjectId(),
        "seq": 6,
        "kind": "ledger.credit",
        "at": datetime.now(UTC),
        "payload": {"key": "forged", "accounts": {"wallet:x:NGN": {"balance": 1, "held": 0}}},
        "prevHash": last["hash"],
    }
    forged["hash"] = audit.record_hash(last["hash"], forged)
    database[audit.CHAIN].insert_one(forged)
    finding = _finding(database, redis_client)
    assert (finding.seq, finding.problem) == (6, "inserted")


def test_a_second_sealer_cannot_extend_the_chain_at_the_same_seq(chain):
    database, redis_client = chain
    audit.append(database, "admin.test", {"n": 1})
    stale = audit.Head(4, database[audit.CHAIN].find_one({"seq": 4})["hash"])
    # A sealer that read the tail before the last batch (its lock had expired).
    pending = list(database[audit.OUTBOX].find())
    record = next(audit.chain_records(pending, stale))
    with pytest.raises(DuplicateKeyError):
        database[audit.CHAIN].insert_one(record)
    assert audit.seal(database, redis_client) == 1
    assert audit.verify(database, redis_client).ok


def test_the_sealer_stops_when_the_chain_disagrees_with_its_head(chain):
    database, redis_client = chain
    database[audit.CHAIN].delete_one({"seq": 5})
    audit.append(database, "admin.test", {"n": 1})
    with pytest.raises(audit.ChainBroken):
        audit.seal(database, redis_client)
    assert database[audit.OUTBOX].count_documents({}) == 1


def test_a_head_left_behind_by_a_stopped_sealer_is_caught_up_from(chain):
    """The sealer committed records 4 and 5 and stopped before moving the head: the next
    run finds the tail from the head, chains after record 5, and moves the head."""
    database, redis_client = chain
    third = database[audit.CHAIN].find_one({"seq": 3})
    audit.write_head(redis_client, audit.Head(3, third["hash"]))
    audit.append(database, "admin.test", {"n": 1})

    assert audit.seal(database, redis_client) == 1

    assert database[audit.CHAIN].find_one({"payload.n": 1})["seq"] == 6
    assert audit.read_head(redis_client).seq == 6
    assert audit.verify(database, redis_client).ok


def test_concurrent_sealers_seal_each_record_exactly_once(isolated):
    database, redis_client = isolated
    for n in range(60):
        audit.append(database, "admin.test", {"n": n})
    threads = [
        threading.Thread(target=audit.seal, args=(database, redis_client), kwargs={"batch": 7})
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    audit.seal(database, redis_client, batch=7)  # whatever a loser of the lock left
    assert sorted(r["payload"]["n"] for r in database[audit.CHAIN].find()) == list(range(60))
    report = audit.verify(database, redis_client)
    assert report.ok and report.checked == 60, report.describe()


def test_the_seal_task_runs_in_the_worker(db, redis_client, celery_worker, runtime):
    runtime.ledger().credit(f"audit-task-{uuid.uuid4().hex}", _wallet(), 100)
    celery_worker.send_task("audit.seal").get(timeout=30)
    assert audit.pending_count(db) == 0
    report = audit.verify(db, redis_client)
    assert report.ok, report.describe()


def _wallet() -> str:
    return wallet_id(ObjectId(), "NGN")


def _cli(isolated, servers, command: str = "verify") -> subprocess.CompletedProcess:
    database, _ = isolated
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": with_database(servers["database_url"], database.name),
        "REDIS_URL": redis_database(servers["redis_url"], "audit"),
    }
    return subprocess.run(
        [sys.executable, "-m", "services.manage", f"audit-{command}"],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_exits_0_on_an_intact_chain_and_1_on_a_tampered_one(chain, servers):
    intact = _cli(chain, servers)
    assert intact.returncode == 0, intact.stderr
    assert "intact: 5 records" in intact.stdout
    chain[0][audit.CHAIN].update_one({"seq": 1}, {"$set": {"kind": "ledger.debit"}})
    tampered = _cli(chain, servers)
    assert tampered.returncode == 1, tampered.stderr
    assert "at seq 1: altered" in tampered.stdout


def _restore_backup_taken_at_seq_3(database) -> None:
    """What restoring a backup taken before the last seal leaves: the chain ends at 3,
    the head in Redis still says 5."""
    database[audit.CHAIN].delete_many({"seq": {"$gt": 3}})


def test_reanchoring_after_a_restore_lets_the_sealer_go_on(chain):
    database, redis_client = chain
    _restore_backup_taken_at_seq_3(database)
    audit.append(database, "admin.test", {"n": 1})
    with pytest.raises(audit.ChainBroken):
        audit.seal(database, redis_client)

    report = audit.reanchor(database, redis_client)

    assert report.ok and report.checked == 3
    assert audit.read_head(redis_client).seq == 3
    assert audit.seal(database, redis_client) == 1
    assert audit.verify(database, redis_client, settle_seconds=0).ok


def test_reanchoring_refuses_a_chain_broken_inside(chain):
    database, redis_client = chain
    database[audit.CHAIN].update_one({"seq": 3}, {"$set": {"payload.result.entryId": "forged"}})

    report = audit.reanchor(database, redis_client)

    assert (report.finding.seq, report.finding.problem) == (3, "altered")
    assert audit.read_head(redis_client).seq == 5  # left where it was


def test_the_reanchor_command_moves_the_head_only_over_an_intact_chain(chain, servers):
    database, _ = chain
    _restore_backup_taken_at_seq_3(database)
    assert _cli(chain, servers).returncode == 1
    moved = _cli(chain, servers, "reanchor")
    assert moved.returncode == 0, moved.stderr
    assert "intact: 3 records" in moved.stdout
    assert _cli(chain, servers).returncode == 0
    database[audit.CHAIN].update_one({"seq": 1}, {"$set": {"kind": "ledger.debit"}})
    refused = _cli(chain, servers, "reanchor")
    assert refused.returncode == 1 and "head not moved" in refused.stdout


def test_an_admin_action_is_recorded_with_its_audit_record(isolated):
    database, redis_client = isolated
    action_id = record_admin_action(
        database, actor="cli:ops", action="lift_restriction", target="wallet:x:NGN", reason="ok"
    )
    (record,) = database[audit.OUTBOX].find()
    assert record["kind"] == "admin.lift_restriction"
    assert record["payload"]["adminActionId"] == action_id
    assert record["payload"]["reason"] == "ok" and record["payload"]["actor"] == "cli:ops"
    assert audit.seal(database, redis_client) == 1
    assert audit.verify(database, redis_client).ok
