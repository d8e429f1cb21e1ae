"""REDIS_URL in its two forms, and what each client needs from it.

    redis://[[user]:password@]host:port/DB     (or rediss://) one server
    redis+sentinel://[[user]:password@]host:port[,host:port...]/MASTER[/DB]
                                               Redis Sentinel: ask these sentinels
                                               where MASTER is now (`sentinel://` too)

Behind Sentinel a failover moves the master; every client here (our own, Celery's broker
and results, the rate limiter's storage) asks the sentinels again instead of holding
on to a dead address. The password, if any, authenticates to the master and the
sentinels alike. Pure parsing: no connection is made here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

SENTINEL_SCHEMES = ("redis+sentinel", "sentinel")
PLAIN_SCHEMES = ("redis", "rediss")
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelURL:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    username: str | None
    password: str | None

    @property
    def auth(self) -> dict[str, str]:
        """Keyword arguments for redis-py's connections (master and sentinels)."""
        auth = {"username": self.username, "password": self.password}
        return {key: value for key, value in auth.items() if value}


def is_sentinel(url: str) -> bool:
    return urlsplit(url).scheme in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelURL:
    """Raises ValueError, never echoing the password, when the URL is malformed."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        raise ValueError("must start with redis+sentinel:// or sentinel://")
    auth, _, hosts = parts.netloc.rpartition("@")
    username, _, password = auth.partition(":")
    sentinels = tuple(_host_port(location) for location in hosts.split(","))
    path = [segment for segment in parts.path.split("/") if segment]
    if not 1 <= len(path) <= 2:
        raise ValueError("must name the master: redis+sentinel://host:port/MASTER[/DB]")
    db = path[1] if len(path) == 2 else "0"
    if not db.isdigit():
        raise ValueError("the database after the master's name must be a number")
    return SentinelURL(
        sentinels=sentinels,
        master=unquote(path[0]),
        db=int(db),
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def _host_port(location: str) -> tuple[str, int]:
    host, _, port = location.rpartition(":") if ":" in location else (location, "", "")
    if not host:
        raise ValueError("must list sentinels as host:port, separated by commas")
    if port and not port.isdigit():
        raise ValueError("a sentinel's port must be a number")
    return host, int(port) if port else DEFAULT_SENTINEL_PORT


def validate_redis_url(raw: str) -> str:
    """The settings' parser for REDIS_URL: either form, checked."""
    url = raw.strip()
    scheme = urlsplit(url).scheme
    if scheme in SENTINEL_SCHEMES:
        parse_sentinel_url(url)
        return url
    host = urlsplit(url).netloc.rsplit("@", 1)[-1].strip(":")
    if scheme not in PLAIN_SCHEMES or not host:
        raise ValueError(
            "must be a URL like redis://host:port/0 or redis+sentinel://host:port/MASTER"
        )
    return url.rstrip("/")


def celery_connection(url: str) -> tuple[str, dict[str, Any]]:
    """Celery's broker (and result backend) URL and the transport options that go with it:
    kombu's and Celery's Sentinel support take `sentinel://` URLs, one per sentinel joined
    by `;`, and the master's name as an option."""
    if not is_sentinel(url):
        return url, {}
    sentinel = parse_sentinel_url(url)
    credentials = _credentials(sentinel)
    urls = ";".join(
        f"sentinel://{credentials}{host}:{port}/{sentinel.db}" for host, port in sentinel.sentinels
    )
    options: dict[str, Any] = {"master_name": sentinel.master}
    if sentinel.auth:
        options["sentinel_kwargs"] = sentinel.auth
    return urls, options


def limiter_storage(url: str) -> tuple[str, dict[str, Any]]:
    """flask-limiter's storage URI and options: the `limits` library reads the master's
    name from the whole path, so the database goes in the options instead."""
    if not is_sentinel(url):
        return url, {}
    sentinel = parse_sentinel_url(url)
    hosts = ",".join(f"{host}:{port}" for host, port in sentinel.sentinels)
    return f"redis+sentinel://{_credentials(sentinel)}{hosts}/{sentinel.master}", {
        "db": sentinel.db
    }


def _credentials(sentinel: SentinelURL) -> str:
    """`user:password@` as URLs carry them (quoted again), or nothing."""
    if not sentinel.auth:
        return ""
    return f"{quote(sentinel.username or '', safe='')}:{quote(sentinel.password or '', safe='')}@"
