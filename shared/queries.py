"""Document operations the domain runs on whichever server holds its data (MongoDB, or
the embedded SecantusDB in development and tests): a conditional update read back, and
`$in` filters in chunks. No connections here: those are `shared/mongo.py`'s."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from pymongo import MongoClient, ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.collection import Collection

T = TypeVar("T")


@functools.cache
def find_and_modify_uses_indexes(client: MongoClient) -> bool:
    """Whether the server's findAndModify finds its document through an index, as
    MongoDB's does. SecantusDB (the embedded server) re-plans the write with an $and
    and walks the whole collection; there an update followed by a read by _id is the
    cheaper way to see what a write did. Asked once per client."""
    return "secantusVersion" not in client.server_info()


def update_and_read(
    collection: Collection,
    condition: dict[str, Any],
    update: dict[str, Any],
    *,
    fields: dict[str, int] | None = None,
    upsert: bool = False,
    session: ClientSession | None = None,
    find_and_modify: bool | None = None,
) -> dict[str, Any] | None:
    """Apply a conditional update to the document `condition` names by `_id`, and return
    it as it is after the update (`fields` of it); None if nothing matched.

    One findAndModify where the server serves it from an index (MongoDB); an update and
    a read by `_id` where it doesn't (SecantusDB: see `find_and_modify_uses_indexes`).
    `find_and_modify` overrides the server's answer (the tests run both ways). Keep
    `$or` out of `condition`: the embedded server then walks the collection for either."""
    client = collection.database.client
    if find_and_modify if find_and_modify is not None else find_and_modify_uses_indexes(client):
        return collection.find_one_and_update(
            condition,
            update,
            projection=fields,
            upsert=upsert,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
    written = collection.update_one(condition, update, upsert=upsert, session=session)
    if written.matched_count == 0 and written.upserted_id is None:
        return None
    return collection.find_one({"_id": condition["_id"]}, fields, session=session)


IN_CHUNK = 100


def in_chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    """`values` in lists of at most `size`, for `$in` filters: SecantusDB's cost for an
    `$in` grows with the square of its length (2,000 ids take seconds, 100 take ms)."""
    for start in range(0, len(values), size):
        yield list(values[start : start + size])
