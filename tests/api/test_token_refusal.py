"""A token's session and user checked in Redis, on fakeredis: what the gateway's one MGET
decides alone, what it reads from MongoDB when Redis has lost a key (here a few documents
in memory, counting reads), and that a cache fill never overwrites a revocation. The same
rules through the real app, Mongo and Redis: test_auth.py and test_auth_per_request.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import pytest
from bson import ObjectId

from services.api.tokens import NO_USER_MESSAGE, token_refusal
from shared import auth_sessions
from shared.auth_sessions import ENDED, LIVE, REVOKED_MESSAGE
from shared.users import DISABLED_MARKER, DISABLED_MARKERS_SYNCED


class Collection:
    """The reads the session checks make, on documents in memory, counted."""

    def __init__(self) -> None:
        self.documents: dict[Any, dict[str, Any]] = {}
        self.reads = 0

    def insert_one(self, document: dict[str, Any]) -> None:
        self.documents[document["_id"]] = dict(document)

    def find_one(self, query: dict[str, Any], _fields: Any = None) -> dict[str, Any] | None:
        self.reads += 1
        return self.documents.get(query["_id"])

    def find(self, query: dict[str, Any], _fields: Any = None) -> list[dict[str, Any]]:
        self.reads += 1
        return [d for d in self.documents.values() if query.items() <= d.items()]


class Database:
    def __init__(self) -> None:
        self.users = Collection()
        self.sessions = Collection()

    def __getitem__(self, name: str) -> Collection:
        return getattr(self, name)

    @property
    def reads(self) -> int:
        return self.users.reads + self.sessions.reads


@pytest.fixture()
def fake() -> fakeredis.FakeRedis:
    redis_client = fakeredis.FakeRedis()
    redis_client.set(DISABLED_MARKERS_SYNCED, 1)  # as a gateway finds it once synced
    return redis_client


@pytest.fixture()
def db() -> Database:
    return Database()


def login(db: Database, fake: fakeredis.FakeRedis, max_age: int = 3600) -> dict[str, Any]:
    """A user with a new session; the claims its tokens carry."""
    user = {"_id": ObjectId(), "email": "someone@example.com"}
    db.users.insert_one(user)
    session = auth_sessions.start(db, fake, user, max_age)
    return {"sub": str(user["_id"]), "sid": session.id, "sv": session.version}


def test_a_live_session_is_decided_by_redis_alone(db, fake):
    claims = login(db, fake)
    reads = db.reads
    assert token_refusal(fake, db, claims) is None
    assert db.reads == reads


def test_an_ended_session_is_refused_from_the_cache(db, fake):
    claims = login(db, fake)
    fake.set(auth_sessions.STATE_KEY + claims["sid"], ENDED)
    assert token_refusal(fake, db, claims) == REVOKED_MESSAGE


def test_a_token_older_than_the_users_session_version_is_refused(db, fake):
    claims = login(db, fake)
    fake.set(auth_sessions.VERSION_KEY + claims["sub"], claims["sv"] + 1)
    assert token_refusal(fake, db, claims) == REVOKED_MESSAGE


def test_a_lost_session_state_is_read_from_mongo_once_and_cached_no_longer_than_it_lives(db, fake):
    claims = login(db, fake, max_age=600)
    fake.flushall()
    fake.set(DISABLED_MARKERS_SYNCED, 1)
    assert token_refusal(fake, db, claims) is None
    assert fake.get(auth_sessions.STATE_KEY + claims["sid"]) == LIVE
    assert 0 < fake.ttl(auth_sessions.STATE_KEY + claims["sid"]) <= 600
    reads = db.reads
    assert token_refusal(fake, db, claims) is None
    assert db.reads == reads


def test_a_session_ended_in_mongo_is_cached_as_ended_when_redis_lost_it(db, fake):
    claims = login(db, fake)
    db.sessions.documents[claims["sid"]]["endedAt"] = datetime.now(UTC)
    fake.delete(auth_sessions.STATE_KEY + claims["sid"])
    assert token_refusal(fake, db, claims) == REVOKED_MESSAGE
    assert fake.get(auth_sessions.STATE_KEY + claims["sid"]) == ENDED


def test_an_expired_session_is_refused_when_read_back_from_mongo(db, fake):
    claims = login(db, fake)
    db.sessions.documents[claims["sid"]]["expiresAt"] = datetime.now(UTC) - timedelta(seconds=1)
    fake.delete(auth_sessions.STATE_KEY + claims["sid"])
    assert token_refusal(fake, db, claims) == REVOKED_MESSAGE


def test_a_cache_fill_never_overwrites_a_revocation_that_landed_meanwhile(db, fake):
    """The gateway read nothing for the session, then a logout wrote Redis, then the
    gateway's fill (from a Mongo read made before the logout) writes its answer: NX."""
    claims = login(db, fake)
    fake.set(auth_sessions.STATE_KEY + claims["sid"], ENDED)  # the logout, after the MGET
    auth_sessions.is_live(db, fake, claims, (None, str(claims["sv"]).encode()))
    assert fake.get(auth_sessions.STATE_KEY + claims["sid"]) == ENDED


def test_a_disabled_users_marker_refuses_their_tokens(db, fake):
    claims = login(db, fake)
    fake.set(DISABLED_MARKER + claims["sub"], 1)
    assert token_refusal(fake, db, claims) == NO_USER_MESSAGE


def test_lost_disabled_markers_are_written_again_from_mongo_before_their_absence_counts(db, fake):
    claims = login(db, fake)
    other = login(db, fake)
    db.users.documents[ObjectId(claims["sub"])]["disabled"] = True
    fake.delete(DISABLED_MARKERS_SYNCED)
    assert token_refusal(fake, db, claims) == NO_USER_MESSAGE
    assert fake.exists(DISABLED_MARKER + claims["sub"], DISABLED_MARKERS_SYNCED) == 2
    assert token_refusal(fake, db, other) is None
