"""Keyset pagination, newest first, in a stable order: (createdAt desc, _id desc).

The cursor is an opaque token of the last item's (createdAt, _id); the next page is
everything strictly older in that order, so inserts never shift a page.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from shared.errors import InvalidRequest

NEWEST_FIRST = [("createdAt", -1), ("_id", -1)]


def encode_cursor(document: dict[str, Any]) -> str:
    millis = int(document["createdAt"].timestamp() * 1000)
    raw = f"{millis}:{document['_id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, ObjectId]:
    try:
        millis, object_id = _cursor_text(cursor).split(":")
        created = datetime.fromtimestamp(int(millis) / 1000, UTC)
        return created, ObjectId(object_id)
    except (ValueError, TypeError, OverflowError, OSError):
        raise _malformed() from None


def _cursor_text(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.urlsafe_b64decode(padded).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError, TypeError):
        raise _malformed() from None


def _malformed() -> InvalidRequest:
    return InvalidRequest("Malformed cursor", {"cursor": ["not a cursor from this API"]})


def older_than(cursor: str | None) -> dict[str, Any]:
    """A filter for the items after `cursor` in NEWEST_FIRST order (none: everything)."""
    if not cursor:
        return {}
    created, object_id = decode_cursor(cursor)
    return {
        "$or": [
            {"createdAt": {"$lt": created}},
            {"createdAt": created, "_id": {"$lt": object_id}},
        ]
    }


def next_cursor(page: list[dict[str, Any]], limit: int) -> str | None:
    return encode_cursor(page[-1]) if len(page) == limit else None
