"""Admin actions, recorded so that every one can be accounted for: who did what to what,
when, and why. One function writes them all, so the audit trail can take them from one
place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.database import Database

from shared import audit

COLLECTION = "admin_actions"


def record_admin_action(
    db: Database,
    *,
    actor: str,
    action: str,
    target: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> ObjectId:
    """Store one admin action. `actor` is the admin's user id, or `cli:<os user>` for the
    command-line tool; `target` names what was acted on (an event, a wallet, a funding)."""
    record = {
        "_id": ObjectId(),
        "actor": actor,
        "action": action,
        "target": target,
        "reason": reason,
        "details": details or {},
        "at": datetime.now(UTC),
    }
    # One transaction: no admin action is on record without its audit-trail entry.
    with db.client.start_session() as session, session.start_transaction():
        db[COLLECTION].insert_one(record, session=session)
        audit.append(db, f"admin.{action}", _audit_payload(record), session=session)
    return record["_id"]


def _audit_payload(record: dict[str, Any]) -> dict[str, Any]:
    return {"adminActionId": record["_id"], **{k: v for k, v in record.items() if k != "_id"}}
