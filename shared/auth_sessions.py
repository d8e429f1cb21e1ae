"""Login sessions: durable in MongoDB, cached in Redis for the check every request makes.

A login starts a session (collection `sessions`, `_id` the `sid` every token of that
login carries): its absolute end (SESSION_MAX_AGE_SECONDS after the login), the `jti` of
the one refresh token that may rotate it next, and `endedAt` once it has ended.
Refreshing moves `refreshJti` to the new refresh token with a conditional write; a
refresh token that no longer matches was used before, so a copy of it is in someone
else's hands, and the whole session ends (reuse detection, as the OAuth 2.0 security
guidance asks): the newest tokens of the session stop working too.

A user's `sessionVersion` (users collection, 0 when absent) is carried in every token as
`sv`; ending all of a user's sessions increments it, and a token carrying less is refused.

Every request reads both from Redis in the gateway's one MGET: `session:state:<sid>` and
`user:session-version:<userId>`. A key Redis does not have (flushed, restarted, expired)
is read from MongoDB and written back with SET NX; revocations write MongoDB first and
then Redis unconditionally, so a flush re-reads the durable state instead of forgetting
it, and a cache fill that raced a revocation can't overwrite it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from bson import ObjectId
from pymongo.database import Database

from shared.errors import ErrorCode, Unauthorized
from shared.logs import get_logger
from shared.queries import update_and_read

log = get_logger(__name__)

SESSIONS = "sessions"
STATE_KEY = "session:state:"
VERSION_KEY = "user:session-version:"
LIVE = b"live"
ENDED = b"ended"
CACHE_SECONDS = 86_400  # any lifetime is correct: a miss reads MongoDB again
REVOKED_MESSAGE = "Token has been revoked"
EXPIRED_MESSAGE = "The session has reached its maximum age; log in again"


@dataclass(frozen=True)
class Session:
    id: str
    refresh_jti: str  # the refresh token to issue now: the only one that may rotate next
    expires_at: datetime
    version: int  # the user's session version when the session started

    def seconds_left(self, now: datetime | None = None) -> int:
        return int((self.expires_at - (now or datetime.now(UTC))).total_seconds())


def start(
    db: Database, redis_client: redis.Redis, user: dict[str, Any], max_age_seconds: int
) -> Session:
    """A new session, in MongoDB and then in the cache, so that its first requests read
    Redis only (the version only if Redis has none: a newer one may be there)."""
    now = datetime.now(UTC)
    session = Session(
        id=uuid.uuid4().hex,
        refresh_jti=uuid.uuid4().hex,
        expires_at=now + timedelta(seconds=max_age_seconds),
        version=int(user.get("sessionVersion", 0)),
    )
    db[SESSIONS].insert_one(
        {
            "_id": session.id,
            "userId": user["_id"],
            "createdAt": now,
            "expiresAt": session.expires_at,
            "version": session.version,
            "refreshJti": session.refresh_jti,
            "endedAt": None,
        }
    )
    pipe = redis_client.pipeline(transaction=False)
    pipe.set(STATE_KEY + session.id, LIVE, ex=min(CACHE_SECONDS, max_age_seconds))
    pipe.set(VERSION_KEY + str(user["_id"]), session.version, ex=CACHE_SECONDS, nx=True)
    pipe.execute()
    return session


def rotate(db: Database, redis_client: redis.Redis, session_id: str, used_jti: str) -> Session:
    """Move the session to a new refresh token, if `used_jti` is its current one; a used
    one ends the whole session. Raises Unauthorized when refused."""
    now = datetime.now(UTC)
    new_jti = uuid.uuid4().hex
    current = {"_id": session_id, "refreshJti": used_jti, "endedAt": None}
    rotated = update_and_read(
        db[SESSIONS], {**current, "expiresAt": {"$gt": now}}, {"$set": {"refreshJti": new_jti}}
    )
    if rotated is not None:
        return Session(session_id, new_jti, rotated["expiresAt"], int(rotated["version"]))
    found = db[SESSIONS].find_one({"_id": session_id}, {"expiresAt": 1, "endedAt": 1})
    if found is None or found["endedAt"] is not None:
        raise Unauthorized(REVOKED_MESSAGE, code=ErrorCode.TOKEN_REVOKED)
    if found["expiresAt"] <= now:
        raise Unauthorized(EXPIRED_MESSAGE)
    log.warning("refresh_token_reused", session_id=session_id)
    end(db, redis_client, session_id)
    raise Unauthorized(REVOKED_MESSAGE, code=ErrorCode.TOKEN_REVOKED)


def end(db: Database, redis_client: redis.Redis, session_id: str) -> None:
    """End one session: every token of it stops working."""
    now = datetime.now(UTC)
    db[SESSIONS].update_one({"_id": session_id, "endedAt": None}, {"$set": {"endedAt": now}})
    redis_client.set(STATE_KEY + session_id, ENDED, ex=CACHE_SECONDS)


def end_all(db: Database, redis_client: redis.Redis, user_id: ObjectId) -> None:
    """End every session of the user: tokens issued before this stop working."""
    user = update_and_read(
        db.users, {"_id": user_id}, {"$inc": {"sessionVersion": 1}}, fields={"sessionVersion": 1}
    )
    if user is not None:
        version = int(user["sessionVersion"])
        redis_client.set(VERSION_KEY + str(user_id), version, ex=CACHE_SECONDS)


def cache_keys(session_id: str, user_id: str) -> tuple[str, str]:
    """The Redis keys `is_live` reads, for the caller's MGET."""
    return STATE_KEY + session_id, VERSION_KEY + user_id


def is_live(
    db: Database,
    redis_client: redis.Redis,
    claims: dict[str, Any],
    cached: tuple[bytes | None, bytes | None],
) -> bool:
    """Whether the token's session is live and not ended by an end_all since it started.
    `cached` is what Redis held at `cache_keys`; what it lacked is read from MongoDB."""
    state, version = cached
    if state is None:
        state = _fill_state(db, redis_client, str(claims["sid"]))
    if version is None:
        version = _fill_version(db, redis_client, str(claims["sub"]))
    return state == LIVE and int(claims["sv"]) >= int(version)


def _fill_state(db: Database, redis_client: redis.Redis, session_id: str) -> bytes:
    now = datetime.now(UTC)
    found = db[SESSIONS].find_one({"_id": session_id}, {"expiresAt": 1, "endedAt": 1})
    live = found is not None and found["endedAt"] is None and found["expiresAt"] > now
    if not live:
        redis_client.set(STATE_KEY + session_id, ENDED, ex=CACHE_SECONDS, nx=True)
        return ENDED
    # Cached no longer than the session lives: the next miss then reads it expired.
    seconds = min(CACHE_SECONDS, max(int((found["expiresAt"] - now).total_seconds()), 1))
    redis_client.set(STATE_KEY + session_id, LIVE, ex=seconds, nx=True)
    return LIVE


def _fill_version(db: Database, redis_client: redis.Redis, user_id: str) -> int:
    found = db.users.find_one({"_id": ObjectId(user_id)}, {"sessionVersion": 1})
    version = int((found or {}).get("sessionVersion", 0))
    redis_client.set(VERSION_KEY + user_id, version, ex=CACHE_SECONDS, nx=True)
    return version
