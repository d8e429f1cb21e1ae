"""Redis access: one connection pool per process, created lazily after fork."""

from __future__ import annotations

import os
import threading

import redis

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}


def get_redis(url: str) -> redis.Redis:
    key = (os.getpid(), url)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = redis.Redis.from_url(
                url, socket_connect_timeout=5, socket_timeout=10, health_check_interval=30
            )
            _clients[key] = client
        return client
