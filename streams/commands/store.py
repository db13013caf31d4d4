"""The operations store (a database of failures, actions, accounts and the audit trail).

  carewatch store init carewatch.db                        create or upgrade an SQLite store
  carewatch store init postgresql://carewatch@db.example/carewatch
  carewatch store load carewatch.db results/failures.jsonl  add a run's failures

A store is an SQLite file (a path, or sqlite:///PATH) or a PostgreSQL URL
(postgresql://USER[:PASSWORD]@HOST:PORT/DB; PGPASSWORD and ~/.pgpass work too).
See docs/worklist.md.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

from detectors.errors import ConfigError

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = sub.add_parser(
        "init",
        help="create the store's schema, or upgrade an older one",
        description="Create the store's tables in URL, or apply the migrations an older "
        "store lacks. Safe to run again: an up-to-date store is left alone.",
    )
    init.add_argument("url", metavar="URL", help="an SQLite file path or a postgresql:// URL")
    load = sub.add_parser(
        "load",
        help="write failure records (failures.jsonl) into the store",
        description="Write failure records (the failures.jsonl of carewatch run, .gz too) "
        "into the store. Idempotent: loading the same file twice changes nothing.",
    )
    load.add_argument("url", metavar="URL", help="an SQLite file path or a postgresql:// URL")
    load.add_argument("files", nargs="+", metavar="FILE", help="failures.jsonl files")


def main(args: argparse.Namespace) -> int:
    from streams.store import open_store
    from streams.store.db import describe_url
    from streams.store.schema import SCHEMA_VERSION, migrate, schema_version

    if args.action == "init":
        from streams.store.db import open_database

        db = open_database(args.url)
        try:
            before = schema_version(db)
            applied = migrate(db)
        finally:
            db.close()
        where = describe_url(args.url)
        if applied:
            print(f"{where}: schema version {before} -> {SCHEMA_VERSION}")
        else:
            print(f"{where}: schema version {SCHEMA_VERSION}, up to date")
        return 0

    from streams.store.sink import load_failures

    store = open_store(args.url)
    try:
        for name in args.files:
            path = Path(name)
            if not path.is_file():
                raise ConfigError(f"no such file: {name}")
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as f:
                counts = load_failures(store, f, name)
            print(f"{name}: {counts.text()}")
    finally:
        store.close()
    return 0
