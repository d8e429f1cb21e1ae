"""A process's clients (Mongo, Redis, ledger, Monnify) for whatever settings are current.

The gateway reads its settings from the Flask app and the worker loads them once; both
hand a settings provider to `Runtime` and get the same accessors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import redis
from pymongo.database import Database

from shared.ledger import Ledger
from shared.mongo import get_db
from shared.monnify.client import MonnifyClient
from shared.redis_conn import get_redis
from shared.settings import Settings


class Runtime:
    """Clients built lazily from `settings()`, each belonging to the current process."""

    def __init__(self, settings: Callable[[], Settings]):
        self.settings = settings
        self._lock = threading.Lock()
        self._monnify_clients: dict[tuple[int, Settings], MonnifyClient] = {}

    def db(self) -> Database:
        return get_db(self.settings().database_url)

    def redis_client(self) -> redis.Redis:
        return get_redis(self.settings().redis_url)

    def ledger(self) -> Ledger:
        return Ledger.from_settings(self.settings())

    def monnify(self) -> MonnifyClient:
        """One client per (process, settings): its HTTP session must not cross a fork,
        and two apps configured differently must not share one."""
        settings = self.settings()
        key = (os.getpid(), settings)
        with self._lock:
            client = self._monnify_clients.get(key)
            if client is None:
                client = MonnifyClient.from_settings(settings)
                self._monnify_clients[key] = client
            return client
