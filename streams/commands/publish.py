"""Publish events to the events topic, keyed by patient: canonical JSON Lines, HL7 v2,
FHIR R4 or CSV/Parquet input (files, .gz, or - for stdin), through the same adapters as
`carewatch run`. Input that cannot be used goes to the rejected topic with its reason
and is counted. The producer is idempotent with acks=all."""

from __future__ import annotations

import argparse
import sys

from streams.commands.inputs import add_input_arguments, read_inputs, report_ended_early

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from streams.kafka.cli_args import add_config_arguments

    add_input_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_config_arguments(p)


def main(args: argparse.Namespace) -> int:
    from streams.kafka.cli_args import config_from_args
    from streams.kafka.publisher import PublishStats, make_producer, publish_events

    readers = read_inputs(args)
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
        for records in readers:
            st = publish_events(producer, config, records, None if args.quiet else progress)
            total.events += st.events
            total.rejected += st.rejected
            total.seconds += st.seconds
    finally:
        producer.close()
    print(
        f"{total.events:,} events published to {config.topics.events}, "
        f"{total.rejected:,} rejected input records sent to {config.topics.rejected} "
        f"({total.seconds:.1f}s)"
    )
    return report_ended_early("publish", readers)
