"""Users: creation with a unique normalised email, look-up, role changes, and disabling.

A user is disabled in Mongo (`disabled: true`, the truth, which login and every full
look-up read) and marked in Redis (`user:disabled:<id>`), which the gateway checks with
the token blocklist in one round trip, so a disabled user's tokens stop working on every
gateway process from the next request without a Mongo read per request. Redis can lose
the markers (a restart without persistence, a failover): `DISABLED_MARKERS_SYNCED` is
written once every disabled user's marker is in Redis, and a gateway that finds it
missing writes them again from Mongo before it trusts their absence.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis
from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.errors import Conflict, ErrorCode
from shared.passwords import hash_password, needs_rehash, verify_password

ROLES = ("user", "admin")
DISABLED_MARKER = "user:disabled:"
DISABLED_MARKERS_SYNCED = "users:disabled-markers-synced"


def create_user(db: Database, email: str, password: str) -> dict[str, Any]:
    """Insert a user; a taken email (even in a race, through the unique index) is Conflict."""
    user = {
        "_id": ObjectId(),
        "email": email,
        "passwordHash": hash_password(password),
        "role": "user",
        "disabled": False,
        "createdAt": datetime.now(UTC),
    }
    try:
        db.users.insert_one(user)
    except DuplicateKeyError:
        raise Conflict(
            "An account with this email already exists", code=ErrorCode.EMAIL_TAKEN
        ) from None
    return user


def authenticate(db: Database, email: str, password: str) -> dict[str, Any] | None:
    """The user if the password matches (upgrading its hash if needed), else None."""
    user = db.users.find_one({"email": email})
    if not verify_password(user["passwordHash"] if user else None, password):
        return None
    if user.get("disabled"):
        return None
    if needs_rehash(user["passwordHash"]):
        db.users.update_one(
            {"_id": user["_id"]}, {"$set": {"passwordHash": hash_password(password)}}
        )
    return user


def find_active_user(db: Database, user_id: str) -> dict[str, Any] | None:
    if not ObjectId.is_valid(user_id):
        return None
    user = db.users.find_one({"_id": ObjectId(user_id)})
    if user is None or user.get("disabled"):
        return None
    return user


def set_role(db: Database, email: str, role: str, *, session: ClientSession | None = None) -> bool:
    """Give the user with this email `role`; False if there is none. `session`: the
    transaction it belongs to, if any (the admin action recording it)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    result = db.users.update_one(
        {"email": email.strip().lower()}, {"$set": {"role": role}}, session=session
    )
    return result.matched_count == 1


def set_disabled(db: Database, redis_client: redis.Redis, email: str, disabled: bool) -> bool:
    """Disable (or enable) the user with this email; False if there is none."""
    user_id = mark_disabled(db, email, disabled)
    if user_id is None:
        return False
    publish_disabled(redis_client, user_id, disabled)
    return True


def mark_disabled(
    db: Database, email: str, disabled: bool, *, session: ClientSession | None = None
) -> ObjectId | None:
    """The truth, in Mongo (in the caller's transaction, if any): the user's id, or None
    if no user has this email. `publish_disabled` then tells the token checks."""
    user = db.users.find_one_and_update(
        {"email": email.strip().lower()},
        {"$set": {"disabled": disabled}},
        {"_id": 1},
        session=session,
    )
    return None if user is None else user["_id"]


def publish_disabled(redis_client: redis.Redis, user_id: ObjectId, disabled: bool) -> None:
    """The marker every token check reads. If this write fails the command raises, and
    running it again finishes it (meanwhile the routes that read the user see Mongo)."""
    marker = DISABLED_MARKER + str(user_id)
    if disabled:
        redis_client.set(marker, 1)
    else:
        redis_client.delete(marker)


def sync_disabled_markers(db: Database, redis_client: redis.Redis) -> None:
    """Write every disabled user's marker from Mongo, then say that they are all there."""
    pipe = redis_client.pipeline(transaction=False)
    for user in db.users.find({"disabled": True}, {"_id": 1}):
        pipe.set(DISABLED_MARKER + str(user["_id"]), 1)
    pipe.set(DISABLED_MARKERS_SYNCED, 1)
    pipe.execute()
