"""The composition root: each dependency is built once per (process, settings), from the
same collaborators the others get. Nothing here connects: the database client is lazy and
Redis is fakeredis, both made here rather than taken from (or left in) the process's own."""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import fakeredis
import pymongo
import pytest

from shared.runtime import Runtime
from shared.settings import Settings, load_settings


@cache
def _lazy_database(url: str) -> pymongo.database.Database:
    return pymongo.MongoClient(url, connect=False).get_database("runtime_test")


@pytest.fixture()
def settings(monkeypatch) -> Settings:
    monkeypatch.setattr("shared.runtime.get_db", _lazy_database)
    monkeypatch.setattr("shared.runtime.get_redis", cache(lambda url: fakeredis.FakeRedis()))
    return load_settings({})


def test_a_dependency_is_built_once_per_settings(settings):
    runtime = Runtime(lambda: settings)
    assert runtime.ledger() is runtime.ledger()
    assert runtime.monnify() is runtime.monnify()
    assert runtime.calls() is runtime.calls()


def test_services_share_the_runtimes_collaborators(settings):
    runtime = Runtime(lambda: settings)
    assert runtime.calls().ledger is runtime.ledger()
    assert runtime.reconciler().confirmer is runtime.confirmer()
    assert runtime.reconciler().refunder is runtime.refunds()
    assert runtime.withdrawals().monnify is runtime.monnify()
    assert runtime.withdrawals().policy is settings.payouts
    assert runtime.reserved_accounts().vault is runtime.kyc_vault()
    assert runtime.ledger_reads() is runtime.ledger().reads


def test_other_settings_get_their_own(settings):
    current = [settings]
    runtime = Runtime(lambda: current[0])
    ledger, calls = runtime.ledger(), runtime.calls()
    current[0] = replace(settings, lock_wait_seconds=settings.lock_wait_seconds + 1)
    assert runtime.ledger() is not ledger
    assert runtime.ledger().lock_wait == settings.lock_wait_seconds + 1
    assert runtime.calls() is not calls


def test_a_forked_process_builds_its_own(settings, monkeypatch):
    runtime = Runtime(lambda: settings)
    parents = runtime.monnify()
    monkeypatch.setattr("shared.runtime.os.getpid", lambda: -1)
    assert runtime.monnify() is not parents
