"""Operator commands, run on a host with the service's environment:

    python -m services.manage grant-admin EMAIL
    python -m services.manage revoke-admin EMAIL
    python -m services.manage audit-verify     (the same as python -m shared.audit verify)
    python -m services.manage check-invariants [--full]

The admin role is granted here and nowhere else (never through the public API); each
change is recorded as an admin action by `cli:<operating-system user>`.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from pymongo.database import Database

from shared import audit
from shared.admin_actions import record_admin_action
from shared.ledger import check_invariants, check_recent
from shared.mongo import get_db, require_transactions
from shared.settings import ConfigError, load_settings
from shared.users import set_role

ROLE_BY_COMMAND = {"grant-admin": "admin", "revoke-admin": "user"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.manage")
    commands = parser.add_subparsers(dest="command", required=True)
    for command, role in ROLE_BY_COMMAND.items():
        sub = commands.add_parser(command, help=f"give the user the {role!r} role")
        sub.add_argument("email")
    commands.add_parser("audit-verify", help="check the audit trail's hash chain")
    invariants = commands.add_parser(
        "check-invariants",
        help="check the ledger's entries since the last check (what the beat job runs)",
    )
    invariants.add_argument(
        "--full", action="store_true", help="read the whole ledger in one snapshot instead"
    )
    return parser


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


def change_role(db: Database, command: str, email: str) -> bool:
    """Apply the command's role; False if no user has this email."""
    role = ROLE_BY_COMMAND[command]
    if not set_role(db, email, role):
        return False
    record_admin_action(
        db,
        actor=f"cli:{getpass.getuser()}",
        action=command.replace("-", "_"),
        target=email.strip().lower(),
        details={"role": role},
    )
    return True


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "audit-verify":
        return audit.main(["verify"])
    try:
        settings = load_settings()
        require_transactions(settings.database_url)  # the change is audited in one
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-invariants":
        db = get_db(settings.database_url)
        return report_invariants(db, args.full, settings.invariants_settle_seconds)
    if not change_role(get_db(settings.database_url), args.command, args.email):
        print(f"no user with email {args.email}", file=sys.stderr)
        return 1
    print(f"{args.email}: role is now {ROLE_BY_COMMAND[args.command]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
