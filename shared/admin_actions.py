"""Admin actions, recorded so that every one can be accounted for: who did what to what,
when, and why. One module writes them all, so the audit trail can take them from one
place.

An action is recorded in the same MongoDB transaction as its effect: neither commits
without the other, so no effect is off the record and no record describes an effect that
never happened. `record_admin_action` runs a simple effect (its writes, given the
session) with its record; an effect with steps of its own (a refund) writes its record
with `write_admin_action` inside its own transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.database import Database

from shared import audit

COLLECTION = "admin_actions"

# An action's writes, made with the session of the transaction that records it.
Effect = Callable[[ClientSession], None]


def record_admin_action(
    db: Database,
    *,
    actor: str,
    action: str,
    target: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    effect: Effect | None = None,
) -> ObjectId:
    """Do `effect` (if any) and store the action, in one transaction. `actor` is the
    admin's user id, or `cli:<os user>` for the command-line tool; `target` names what was
    acted on (an event, a wallet, a funding)."""
    with db.client.start_session() as session, session.start_transaction():
        if effect is not None:
            effect(session)
        return write_admin_action(
            db, session, actor=actor, action=action, target=target, reason=reason, details=details
        )


def write_admin_action(
    db: Database,
    session: ClientSession,
    *,
    actor: str,
    action: str,
    target: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> ObjectId:
    """Store one admin action and its audit-trail entry inside the caller's transaction
    (`session`), the one that makes its effect."""
    record = {
        "_id": ObjectId(),
        "actor": actor,
        "action": action,
        "target": target,
        "reason": reason,
        "details": details or {},
        "at": datetime.now(UTC),
    }
    db[COLLECTION].insert_one(record, session=session)
    audit.append(db, f"admin.{action}", _audit_payload(record), session=session)
    return record["_id"]


def _audit_payload(record: dict[str, Any]) -> dict[str, Any]:
    return {"adminActionId": record["_id"], **{k: v for k, v in record.items() if k != "_id"}}
