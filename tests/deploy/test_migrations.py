"""`python -m services.manage migrate` builds what the services need, any number of times;
the gateway and the worker only check for it, and refuse to start with one line naming
what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pymongo
import pytest

from services.manage import migrate
from shared.indexes import INDEXES, missing_indexes
from tests.support.server_urls import with_database

MIGRATE = [sys.executable, "-m", "services.manage", "migrate"]


@pytest.fixture()
def fresh_database(test_env) -> Iterator[tuple[dict[str, str], pymongo.database.Database]]:
    """An environment naming a database nothing has touched yet, and that database."""
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    url = with_database(test_env["DATABASE_URL"], name)
    env = {**os.environ, **test_env, "DATABASE_URL": url}
    with pymongo.MongoClient(url) as client:
        yield env, client[name]
        client.drop_database(name)


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_migrate_builds_every_index_and_running_it_again_changes_nothing(fresh_database):
    env, db = fresh_database
    first = _run(MIGRATE, env)
    assert first.returncode == 0, first.stderr
    assert "users.email_unique" in first.stdout
    assert missing_indexes(db) == []
    before = {name: db[name].index_information() for name in INDEXES}

    second = _run(MIGRATE, env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "migrated: indexes built: none"
    assert {name: db[name].index_information() for name in INDEXES} == before


def test_migrate_drops_a_retired_index(fresh_database):
    env, db = fresh_database
    db.fundings.create_index("transactionReference", name="funding_by_transaction_reference")
    assert _run(MIGRATE, env).returncode == 0
    assert "funding_by_transaction_reference" not in db.fundings.index_information()


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "celery", "-A", "services.worker.celery_app", "worker",
         "--pool", "solo", "--loglevel", "ERROR"],
        [sys.executable, "-c", "import services.api.wsgi"],
    ],
    ids=["worker", "gateway"],
)  # fmt: skip
def test_a_missing_index_stops_start_up_with_one_line_naming_it(fresh_database, command):
    env, db = fresh_database
    migrate(db)  # in process: the command itself is the test above's
    db.users.drop_index("email_unique")

    result = _run(command, env)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "configuration error: indexes missing: users.email_unique; "
        "run `python -m services.manage migrate`"
    )
