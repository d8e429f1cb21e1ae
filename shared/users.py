"""Users: creation with a unique normalised email, look-up, and role changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.errors import Conflict
from shared.passwords import hash_password, needs_rehash, verify_password

ROLES = ("user", "admin")


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
        raise Conflict("An account with this email already exists") from None
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


def set_role(db: Database, email: str, role: str) -> bool:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    result = db.users.update_one({"email": email.strip().lower()}, {"$set": {"role": role}})
    return result.matched_count == 1
