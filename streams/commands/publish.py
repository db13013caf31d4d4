"""Publish canonical events (JSON Lines files, .gz, or - for stdin) to the events topic,
keyed by patient. Malformed lines go to the rejected topic with their reason and are
counted. Only --format jsonl exists for now; the HL7 v2 and FHIR adapters come later."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detectors.errors import ConfigError

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from streams.kafka.cli_args import add_config_arguments

    p.add_argument("inputs", nargs="+", metavar="INPUT", help="event files or - for stdin")
    p.add_argument(
        "--format",
        default="jsonl",
        choices=["jsonl"],
        help="input format (only jsonl for now; other formats come with the adapters)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_config_arguments(p)


def main(args: argparse.Namespace) -> int:
    from streams.jsonl import read_jsonl
    from streams.kafka.cli_args import config_from_args
    from streams.kafka.publisher import PublishStats, make_producer, publish_events

    for path in args.inputs:
        if path != "-" and not Path(path).is_file():
            raise ConfigError(f"input {path} does not exist or is not a file")
    config = config_from_args(args)

    def progress(st: PublishStats) -> None:
        rate = st.events / max(st.seconds, 1e-9)
        print(
            f"carewatch: {st.events:,} events published ({rate:,.0f}/s), {st.rejected:,} rejected",
            file=sys.stderr,
            flush=True,
        )

    producer = make_producer(config)
    total = PublishStats()
    try:
        for path in args.inputs:
            st = publish_events(
                producer, config, read_jsonl(path), None if args.quiet else progress
            )
            total.events += st.events
            total.rejected += st.rejected
            total.seconds += st.seconds
    finally:
        producer.close()
    print(
        f"{total.events:,} events published to {config.topics.events}, "
        f"{total.rejected:,} malformed lines sent to {config.topics.rejected} "
        f"({total.seconds:.1f}s)"
    )
    return 0
