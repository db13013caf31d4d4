"""Local accounts of the worklist (carewatch serve).

  carewatch users add ann --role coordinator --store carewatch.db   asks for a password
  carewatch users list --store carewatch.db
  carewatch users disable ann --store carewatch.db

Roles: viewer (reads), coordinator (acts on failures), admin (also reads and exports the
audit trail). Passwords: at least 10 characters, stored as scrypt hashes. An account
without a password (--no-password) can sign in only through the trusted proxy
(docs/worklist.md).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from detectors.errors import ConfigError

__all__ = ["add_arguments", "main"]


def _store_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        metavar="URL",
        default=os.environ.get("CAREWATCH_STORE"),
        help="the store: an SQLite file or a postgresql:// URL (default: $CAREWATCH_STORE)",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    from streams.store.accounts import ROLES

    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser(
        "add",
        help="add an account, or change its role and password",
        description="Add an account (or change an existing one's role and password). The "
        "password is asked for twice on the terminal, or read as one line from stdin with "
        "--password-stdin.",
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", choices=ROLES, required=True, help="what the account may do")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument(
        "--no-password",
        action="store_true",
        help="no password: signs in only through the trusted proxy (SSO)",
    )
    _store_argument(add)
    lst = sub.add_parser("list", help="list the accounts")
    _store_argument(lst)
    dis = sub.add_parser(
        "disable", help="stop an account signing in (its actions and audit rows stay)"
    )
    dis.add_argument("name", metavar="NAME")
    _store_argument(dis)


def _password(args: argparse.Namespace) -> str | None:
    if args.no_password:
        return None
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ")
    return first


def main(args: argparse.Namespace) -> int:
    from streams.store import open_store

    if not args.store:
        raise ConfigError("name the store with --store URL (or set CAREWATCH_STORE)")
    store = open_store(args.store)
    try:
        if args.action == "add":
            store.add_user(args.name, args.role, _password(args))
            print(f"{args.name}: {args.role}")
        elif args.action == "list":
            for user in store.users():
                print(f"{user.name:<24} {user.role:<12} {'active' if user.active else 'disabled'}")
        elif not store.disable_user(args.name):
            raise ConfigError(f"no account called {args.name!r}")
        else:
            print(f"{args.name}: disabled")
    finally:
        store.close()
    return 0
