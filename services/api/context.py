"""Per-request access to settings and the process's clients."""

from __future__ import annotations

import os
from functools import cache

import redis
from flask import current_app
from pymongo.database import Database

from shared.ledger import Ledger
from shared.mongo import get_db
from shared.monnify.client import MonnifyClient
from shared.redis_conn import get_redis
from shared.settings import Settings


def settings() -> Settings:
    return current_app.extensions["settings"]


def db() -> Database:
    return get_db(settings().database_url)


def redis_client() -> redis.Redis:
    return get_redis(settings().redis_url)


def ledger() -> Ledger:
    return Ledger.from_settings(settings())


@cache
def _monnify(pid: int) -> MonnifyClient:
    return MonnifyClient.from_settings(settings())


def monnify() -> MonnifyClient:
    """This process's Monnify client (its HTTP session must not cross a fork)."""
    return _monnify(os.getpid())
