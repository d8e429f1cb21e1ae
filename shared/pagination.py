"""Keyset pagination, newest first, in a stable order: (createdAt desc, _id desc).

The cursor is an opaque token of the last item's (createdAt, _id); the next page is
everything strictly older in that order, so inserts never shift a page.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from bson import ObjectId
from pymongo.collection import Collection

from shared.errors import ErrorCode, InvalidRequest

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
    return InvalidRequest(
        "Malformed cursor",
        {"cursor": ["not a cursor from this API"]},
        code=ErrorCode.VALIDATION_ERROR,
    )


Position = tuple[datetime, ObjectId]  # (createdAt, _id) of the last item shown


def page_after(
    collection: Collection,
    selector: dict[str, Any],
    limit: int,
    after: Position | None,
    keep: Callable[[dict[str, Any]], bool] = lambda _document: True,
) -> list[dict[str, Any]]:
    """Up to `limit` documents matching `selector` that `keep` accepts, newest first,
    from after the position `after`.

    The position enters the filter as a plain `createdAt <= t` range, which an index on
    (the selector's fields, createdAt, _id) serves on every engine; the documents of
    that millisecond already shown, and those `keep` refuses, are skipped as they are
    read. An $or or an $elemMatch in the filter, or a hint, makes the embedded server
    walk the whole collection instead."""
    if after is not None:
        selector = {**selector, "createdAt": {"$lte": after[0]}}
    cursor = collection.find(selector).sort(NEWEST_FIRST).batch_size(limit + 16)
    with cursor:
        unseen = (d for d in cursor if (after is None or _older(d, after)) and keep(d))
        return list(islice(unseen, limit))


def _older(document: dict[str, Any], than: Position) -> bool:
    created = document["createdAt"]
    created = created if created.tzinfo else created.replace(tzinfo=UTC)
    return created < than[0] or (created == than[0] and document["_id"] < than[1])


def decode_position(cursor: str | None) -> Position | None:
    return decode_cursor(cursor) if cursor else None


def next_cursor(page: list[dict[str, Any]], limit: int) -> str | None:
    return encode_cursor(page[-1]) if len(page) == limit else None
