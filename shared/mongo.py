"""MongoDB access: one client per process, created lazily after fork.

Celery's prefork pool and gunicorn fork after import; a MongoClient must not cross a
fork, so `get_db()` checks the pid and builds a new client in each child.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from pymongo import MongoClient, ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from shared.settings import ConfigError

_lock = threading.Lock()
_client: MongoClient | None = None
_client_pid: int | None = None
_client_url: str | None = None

DEFAULT_DATABASE = "payment_calls"
T = TypeVar("T")


class TransactionsUnavailable(ConfigError):
    """The configured server cannot run multi-document transactions."""


def get_client(url: str) -> MongoClient:
    global _client, _client_pid, _client_url
    with _lock:
        if _client is None or _client_pid != os.getpid() or _client_url != url:
            _client = MongoClient(
                url,
                tz_aware=True,
                serverSelectionTimeoutMS=5000,
                retryWrites=True,
            )
            _client_pid = os.getpid()
            _client_url = url
        return _client


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


def get_db(url: str) -> Database:
    return get_client(url).get_default_database(DEFAULT_DATABASE)


def check_transactions(db: Database) -> None:
    """Run a throwaway transaction; raise TransactionsUnavailable if the server can't."""
    client = db.client
    try:
        with client.start_session() as session, session.start_transaction():
            db["_transaction_probe"].find_one({}, session=session)
    except ConnectionFailure as exc:
        raise TransactionsUnavailable(
            f"the database at DATABASE_URL is unreachable: {type(exc).__name__}"
        ) from exc
    except (OperationFailure, PyMongoError) as exc:
        raise TransactionsUnavailable(
            "the database at DATABASE_URL cannot run multi-document transactions "
            "(MongoDB needs a replica set): "
            f"{type(exc).__name__}"
        ) from exc


@contextmanager
def startup_db(url: str) -> Iterator[Database]:
    """The database on a throwaway client, for start-up checks: no connection may cross
    a later fork."""
    with MongoClient(url, serverSelectionTimeoutMS=5000) as client:
        yield client.get_default_database(DEFAULT_DATABASE)


def require_transactions(url: str) -> None:
    with startup_db(url) as db:
        check_transactions(db)
