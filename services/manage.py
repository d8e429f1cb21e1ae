"""Operator commands, run on a host with the service's environment:

    python -m services.manage grant-admin EMAIL
    python -m services.manage revoke-admin EMAIL
    python -m services.manage disable-user EMAIL   (its tokens stop working at once)
    python -m services.manage enable-user EMAIL
    python -m services.manage audit-verify     (exit 0 if the chain is intact, 1 if not)
    python -m services.manage audit-reanchor   (after a restore: the head to the chain's end)
    python -m services.manage check-invariants [--full]
    python -m services.manage migrate          (indexes; run before each release)

The admin role is granted, and users disabled, here and nowhere else (never through the
public API); each change is recorded as an admin action by `cli:<operating-system user>`.
"""

from __future__ import annotations

import argparse
import getpass
import sys

import redis
from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.database import Database

from shared import audit
from shared.admin_actions import Effect, record_admin_action
from shared.indexes import ensure_indexes, missing_indexes
from shared.ledger import check_invariants, check_recent
from shared.mongo import get_db, require_transactions
from shared.redis_conn import get_redis
from shared.settings import ConfigError, load_settings
from shared.users import mark_disabled, publish_disabled, set_role

ROLE_BY_COMMAND = {"grant-admin": "admin", "revoke-admin": "user"}
DISABLED_BY_COMMAND = {"disable-user": True, "enable-user": False}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.manage")
    commands = parser.add_subparsers(dest="command", required=True)
    for command, role in ROLE_BY_COMMAND.items():
        sub = commands.add_parser(command, help=f"give the user the {role!r} role")
        sub.add_argument("email")
    for command, disabled in DISABLED_BY_COMMAND.items():
        verb = "refuse the user's login and tokens" if disabled else "let the user in again"
        commands.add_parser(command, help=verb).add_argument("email")
    commands.add_parser("audit-verify", help="check the audit trail's hash chain")
    commands.add_parser(
        "audit-reanchor",
        help="after restoring MongoDB: check the chain and move its head in Redis to its end",
    )
    invariants = commands.add_parser(
        "check-invariants",
        help="check the ledger's entries since the last check (what the beat job runs)",
    )
    invariants.add_argument(
        "--full", action="store_true", help="read the whole ledger in one snapshot instead"
    )
    commands.add_parser(
        "migrate",
        help="build missing indexes, drop retired ones (idempotent; the services refuse to "
        "start without them)",
    )
    return parser


def migrate(db: Database) -> str:
    """Bring the database to what this release expects; safe to run any number of times."""
    missing = missing_indexes(db)
    ensure_indexes(db)
    built = ", ".join(missing) or "none"
    return f"migrated: indexes built: {built}"


def report_invariants(db: Database, full: bool, settle_seconds: int) -> int:
    """Print each violation; exit 1 if there is one."""
    if full:
        violations = check_invariants(db)
        print(f"full check: {len(violations)} violation(s)")
    else:
        check = check_recent(db, settle_seconds=settle_seconds)
        violations = check.violations
        more = "" if check.caught_up else "; more to check: run it again"
        print(
            f"checked {check.entries} entries touching {check.accounts} accounts: "
            f"{len(violations)} violation(s){more}"
        )
    for violation in violations:
        print(
            f"  {violation.rule} {violation.subject}: expected {violation.expected}, "
            f"found {violation.actual}"
        )
    return 1 if violations else 0


class _NoSuchUser(Exception):
    """No user has the email: the transaction is abandoned, nothing is recorded."""


def change_role(db: Database, command: str, email: str) -> bool:
    """Apply the command's role, recorded in the same transaction; False if no user has
    this email."""
    role = ROLE_BY_COMMAND[command]

    def effect(session: ClientSession) -> None:
        if not set_role(db, email, role, session=session):
            raise _NoSuchUser

    try:
        _record(db, command, email, {"role": role}, effect)
    except _NoSuchUser:
        return False
    return True


def change_disabled(db: Database, redis_client: redis.Redis, command: str, email: str) -> bool:
    """Disable or enable the user; False if no user has this email."""
    disabled = DISABLED_BY_COMMAND[command]
    changed: list[ObjectId] = []

    def effect(session: ClientSession) -> None:
        user_id = mark_disabled(db, email, disabled, session=session)
        if user_id is None:
            raise _NoSuchUser
        changed.append(user_id)

    try:
        _record(db, command, email, {"disabled": disabled}, effect)
    except _NoSuchUser:
        return False
    publish_disabled(redis_client, changed[0], disabled)  # once the change has committed
    return True


def _record(
    db: Database, command: str, email: str, details: dict, effect: Effect | None = None
) -> None:
    record_admin_action(
        db,
        actor=f"cli:{getpass.getuser()}",
        action=command.replace("-", "_"),
        target=email.strip().lower(),
        details=details,
        effect=effect,
    )


def _apply(command: str, email: str, database_url: str, redis_url: str) -> str | None:
    """The command's outcome for the operator, None if no user has this email."""
    db = get_db(database_url)
    if command in ROLE_BY_COMMAND:
        changed = change_role(db, command, email)
        return f"{email}: role is now {ROLE_BY_COMMAND[command]}" if changed else None
    changed = change_disabled(db, get_redis(redis_url), command, email)
    state = "disabled" if DISABLED_BY_COMMAND[command] else "enabled"
    return f"{email}: {state}" if changed else None


def check_audit_chain(command: str, db: Database, redis_client: redis.Redis) -> int:
    """audit-verify: 0 if the chain is intact, 1 if not. audit-reanchor: the same check,
    and the head moved to the chain's end when it passes."""
    report = (audit.verify if command == "audit-verify" else audit.reanchor)(db, redis_client)
    if report.ok or command == "audit-verify":
        print(report.describe())
    else:
        print(f"head not moved: {report.describe()}")
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command in ("audit-verify", "audit-reanchor"):  # read-only, or the head only
            return check_audit_chain(
                args.command, get_db(settings.database_url), get_redis(settings.redis_url)
            )
        require_transactions(settings.database_url)  # the change is audited in one
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-invariants":
        db = get_db(settings.database_url)
        return report_invariants(db, args.full, settings.invariants_settle_seconds)
    if args.command == "migrate":
        print(migrate(get_db(settings.database_url)))
        return 0
    outcome = _apply(args.command, args.email, settings.database_url, settings.redis_url)
    if outcome is None:
        print(f"no user with email {args.email}", file=sys.stderr)
        return 1
    print(outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main())
