"""MongoDB access: one client per process, created lazily after fork.

Celery's prefork pool and gunicorn fork after import; a MongoClient must not cross a
fork, so `get_db()` checks the pid and builds a new client in each child.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from shared.settings import ConfigError

_lock = threading.Lock()
_client: MongoClient | None = None
_client_pid: int | None = None
_client_url: str | None = None

DEFAULT_DATABASE = "payment_calls"


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
