"""Follow the failures, outcomes or rejected topic: one line per record (time, detector,
status, key, summary), or the records themselves with --json. Ctrl-C to stop."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from streams.kafka.cli_args import add_config_arguments

    p.add_argument("what", choices=["failures", "outcomes", "rejected"])
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    p.add_argument("--json", action="store_true", help="print each record's JSON as it is")
    p.add_argument(
        "--idle-exit",
        metavar="SECONDS",
        type=float,
        help="exit after this long without a new record (default: follow forever)",
    )
    add_config_arguments(p)


def main(args: argparse.Namespace) -> int:
    from streams.kafka.cli_args import config_from_args
    from streams.kafka.tail import follow, format_record

    config = config_from_args(args)
    topic = getattr(config.topics, args.what)
    for key, value in follow(
        config, topic, from_beginning=args.from_beginning, idle_timeout=args.idle_exit
    ):
        if args.json:
            sys.stdout.write((value or b"").decode("utf-8", "replace") + "\n")
        else:
            sys.stdout.write(format_record(args.what, key, value) + "\n")
        sys.stdout.flush()
    return 0
