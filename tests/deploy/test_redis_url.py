"""REDIS_URL naming Redis Sentinel: parsed once, and handed to each client in the form it
takes (redis-py, kombu/Celery, the rate limiter's `limits`). No server needed here;
tests/deploy/test_redis_sentinel.py runs them against a real sentinel."""

from __future__ import annotations

import pytest
from celery import Celery
from kombu import Connection
from redis.sentinel import SentinelConnectionPool

from shared.redis_conn import connect
from shared.redis_url import (
    SentinelURL,
    celery_connection,
    limiter_storage,
    parse_sentinel_url,
    validate_redis_url,
)
from shared.settings import ConfigError, load_settings

SENTINELS = (("sentinel-a", 26379), ("sentinel-b", 26380))
URL = "redis+sentinel://:s3cret@sentinel-a:26379,sentinel-b:26380/mymaster/2"


@pytest.mark.parametrize(
    "url, expected",
    [
        (URL, SentinelURL(SENTINELS, "mymaster", 2, None, "s3cret")),
        ("sentinel://s1/main", SentinelURL((("s1", 26379),), "main", 0, None, None)),
        ("redis+sentinel://app:p%40ss@s1:1/m", SentinelURL((("s1", 1),), "m", 0, "app", "p@ss")),
    ],
)  # fmt: skip
def test_sentinel_urls_parse(url, expected):
    assert parse_sentinel_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1:26379",  # no master
        "redis+sentinel://s1:26379/m/zero",
        "redis+sentinel://s1:port/m",
        "redis+sentinel://:26379/m",
        "redis+sentinel://s1/m/0/extra",
    ],
)
def test_malformed_sentinel_urls_are_refused_by_the_settings_without_the_password(url):
    with pytest.raises(ConfigError) as caught:
        load_settings({"REDIS_URL": url.replace("://", "://:hunter2@", 1)})
    assert str(caught.value).startswith("REDIS_URL is malformed: ")
    assert "hunter2" not in str(caught.value)


def test_the_settings_accept_both_forms():
    for url in (URL, "sentinel://s1:26379/main", "redis://cache:6379/0", "rediss://c:6380/1"):
        assert load_settings({"REDIS_URL": url}).redis_url == url
    with pytest.raises(ValueError):
        validate_redis_url("http://cache:6379")


def test_plain_urls_pass_through_unchanged():
    assert celery_connection("redis://c:6379/0") == ("redis://c:6379/0", {})
    assert limiter_storage("redis://c:6379/0") == ("redis://c:6379/0", {})


def test_celery_gets_one_sentinel_url_each_and_the_master_as_an_option():
    broker, options = celery_connection(URL)
    assert broker == "sentinel://:s3cret@sentinel-a:26379/2;sentinel://:s3cret@sentinel-b:26380/2"
    assert options == {"master_name": "mymaster", "sentinel_kwargs": {"password": "s3cret"}}
    connection = Connection(broker, transport_options=options)
    assert connection.transport_cls == "sentinel"
    assert [alt.split("@")[-1] for alt in connection.alt] == [
        "sentinel-a:26379/2",
        "sentinel-b:26380/2",
    ]


def test_celery_result_backend_reads_the_same_url():
    broker, options = celery_connection(URL)
    app = Celery("t", broker=broker, backend=broker)
    app.conf.result_backend_transport_options = options
    backend = app.backend
    assert type(backend).__name__ == "SentinelBackend"
    hosts = [(host["host"], host["port"], host["db"]) for host in backend.connparams["hosts"]]
    assert hosts == [("sentinel-a", 26379, 2), ("sentinel-b", 26380, 2)]


def test_the_rate_limiter_gets_the_master_in_the_path_and_the_database_as_an_option():
    assert limiter_storage(URL) == (
        "redis+sentinel://:s3cret@sentinel-a:26379,sentinel-b:26380/mymaster",
        {"db": 2},
    )


def test_our_client_asks_the_sentinels_for_the_master():
    client = connect(URL)  # no connection is made until a command runs
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "s3cret"
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["host"] for s in sentinels] == [
        "sentinel-a",
        "sentinel-b",
    ]
