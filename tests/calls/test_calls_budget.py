"""The Mongo commands each path of a call costs, counted by a CommandListener on a
client of this test's own: the written-down budget of the performance issue, so a change
that adds a read or a write to a hot path fails here and says which.

A call with a connect fee, so the capture pays the receiver and the platform fee:
initiate 6 + end 1 + settle 7 = 14 on MongoDB; the renewal a short call leaves behind
finds it ended with one more point read, some minutes later. Each write that returns
its document ("write-read" below) is one findAndModify there, and an update plus a read
by _id on the embedded server this test runs on (shared.queries.update_and_read): 19."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from bson import ObjectId
from pymongo import MongoClient, monitoring

from shared.calls import renewals, service, settlement
from shared.calls.deps import CallContext
from shared.ledger import Ledger
from shared.queries import find_and_modify_uses_indexes

HOLD = ["write-read accounts", "insert holds", "insert entries", "commitTransaction"]
CAPTURE = [
    "write-read holds",
    "write-read accounts",  # the caller's wallet
    "write-read accounts",  # the receiver's (platform revenue keeps no document)
    "insert entries",
    "commitTransaction",
]
BUDGET = {
    "initiate": ["find users", *HOLD, "insert calls"],
    "end": ["write-read calls"],  # a hang-up before paidUntil
    "settle": ["find calls", *CAPTURE, "update calls"],
    "renewal of an ended call": ["find calls"],
}


def on_this_server(budget: list[str], find_and_modify: bool) -> Counter[str]:
    """The budget in the commands this server is sent."""
    sent: list[str] = []
    for command in budget:
        name, _, target = command.partition(" ")
        if name != "write-read":
            sent.append(command)
        elif find_and_modify:
            sent.append(f"findAndModify {target}")
        else:
            sent += [f"update {target}", f"find {target}"]
    return Counter(sent)


class Commands(monitoring.CommandListener):
    """Every command sent, as 'name collection'."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.sent.append(
            f"{event.command_name} {target}".strip()
            if isinstance(target, str)
            else event.command_name
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def during(self, step: Callable[[], object]) -> Counter[str]:
        self.sent = []
        step()
        return Counter(self.sent)


@pytest.fixture()
def counted(settings, redis_client) -> Iterator[tuple[CallContext, Commands]]:
    """The calls domain over a client whose commands are counted; a 1 NGN connect fee."""
    commands = Commands()
    client = MongoClient(settings.database_url, tz_aware=True, event_listeners=[commands])
    db = client.get_default_database()
    ctx = CallContext(
        db=db,
        ledger=Ledger(db, redis_client),
        redis=redis_client,
        config=replace(settings.calls, connect_fee=100),
        currency=settings.default_currency,
    )
    yield ctx, commands
    client.close()


def test_a_call_costs_its_budget_of_mongo_commands(counted, party):
    ctx, commands = counted
    caller, receiver = party(100_000), party()
    caller_id, receiver_id = ObjectId(caller.id), ObjectId(receiver.id)
    started: list[service.Initiated] = []

    spent = {
        "initiate": commands.during(
            lambda: started.append(service.initiate(ctx, caller_id, receiver_id, None))
        )
    }
    call_id = started[0].call["_id"]
    spent["end"] = commands.during(lambda: service.end(ctx, call_id, caller_id))
    spent["settle"] = commands.during(lambda: settlement.settle_call(ctx, str(call_id)))
    spent["renewal of an ended call"] = commands.during(
        lambda: renewals.renew(ctx, str(call_id), started[0].call["reservedSeconds"])
    )

    fam = find_and_modify_uses_indexes(ctx.db.client)
    assert spent == {path: on_this_server(budget, fam) for path, budget in BUDGET.items()}
    assert sum(len(budget) for budget in BUDGET.values()) - 1 == 14  # the renewal comes later
