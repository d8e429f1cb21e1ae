"""URLs of another database on the session's servers, for tests that need one of their
own (to flush it, or so that the session's worker does not drain their queues).

Redis numbers its databases: each test module that takes one is listed here, so that no
two share one by accident (two did, and one module's audit head broke another's chain).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

REDIS_DATABASES = {
    "metrics": 5,
    "queues": 6,
    "audit": 7,
    "query_plans": 8,
    "auth": 9,
    "worker_liveness": 12,
    "health": 13,
}


def with_database(url: str, database: str | int) -> str:
    """`url` naming another database: a MongoDB database name, or a Redis database
    number (the URL's own number wins over a client's `db=` argument, so this is the way
    to pick one)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def redis_database(url: str, owner: str) -> str:
    """The session's Redis URL with the database `owner` has in REDIS_DATABASES."""
    return with_database(url, REDIS_DATABASES[owner])
