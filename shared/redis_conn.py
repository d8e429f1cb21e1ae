"""Redis access: one connection pool per process, created lazily after fork.

REDIS_URL may name one server or a Sentinel-managed master (shared/redis_url.py): the
latter's client asks the sentinels for the master on every new connection, so after a
failover the next command reaches the new master.
"""

from __future__ import annotations

import os
import threading

import redis
from redis.sentinel import Sentinel

from shared.redis_url import is_sentinel, parse_sentinel_url

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}
_TIMEOUTS = {"socket_connect_timeout": 5, "socket_timeout": 10}


def connect(url: str) -> redis.Redis:
    """A new client for REDIS_URL, whichever form it has."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, health_check_interval=30, **_TIMEOUTS)
    sentinel = parse_sentinel_url(url)
    sentinels = Sentinel(
        list(sentinel.sentinels), sentinel_kwargs={**sentinel.auth, **_TIMEOUTS}, **_TIMEOUTS
    )
    return sentinels.master_for(
        sentinel.master, db=sentinel.db, health_check_interval=30, **sentinel.auth
    )


def get_redis(url: str) -> redis.Redis:
    key = (os.getpid(), url)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = connect(url)
            _clients[key] = client
        return client
