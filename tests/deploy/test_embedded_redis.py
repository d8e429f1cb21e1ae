"""`make run`'s embedded Valkey keeps an append-only file in the data folder, so what
was queued survives the server being killed; the tests' servers keep nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from services.embedded import free_port, redis_command, start_redis

# Real servers of its own, not the session's.
pytestmark = pytest.mark.integration


def test_queued_messages_survive_a_killed_server(tmp_path: Path):
    port, data_dir = free_port(), tmp_path / "redis"
    server = start_redis(port, data_dir=data_dir)
    try:
        client = redis.Redis.from_url(server.url)
        client.lpush("payments", "task-1", "task-2")
        # Wait for the append-only file's fsync on this server (everysec), then crash.
        assert client.execute_command("WAITAOF", 1, 0, 10_000)[0] == 1
        server.process.kill()
        server.process.wait()

        server = start_redis(port, data_dir=data_dir)
        assert redis.Redis.from_url(server.url).lrange("payments", 0, -1) == [b"task-2", b"task-1"]
    finally:
        server.stop()


def test_persistence_is_an_fsynced_append_only_file_only_with_a_data_folder(tmp_path: Path):
    persisted = " ".join(redis_command(6379, tmp_path))
    assert f"--dir {tmp_path}" in persisted
    assert "--appendonly yes --appendfsync everysec" in persisted
    assert "--appendonly no" in " ".join(redis_command(6379, None))
