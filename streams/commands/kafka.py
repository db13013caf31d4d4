"""Kafka housekeeping: `kafka init` creates the topics (idempotent); `kafka advance --to
TIME` moves the watermark of every events partition to TIME (backfills, or to compare
with `carewatch run --as-of TIME`)."""

from __future__ import annotations

import argparse

from detectors.errors import ConfigError
from detectors.events import parse_time

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from streams.kafka.cli_args import add_config_arguments

    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = sub.add_parser(
        "init",
        help="create the topics (existing ones are left alone)",
        description="Create Carewatch's topics on the broker (events, outcomes, failures, "
        "rejected and the internal sessions topic) with the partitions and settings of the "
        "configuration (docs/kafka.md). Topics that exist already are left alone.",
    )
    add_config_arguments(init)
    adv = sub.add_parser(
        "advance",
        help="move the watermark of every events partition",
        description="Send a control message into every events partition that moves its "
        "watermark to --to, so the workers decide everything due by then: how a backfill "
        "or replay is settled (docs/kafka.md).",
    )
    add_config_arguments(adv)
    adv.add_argument("--to", required=True, metavar="TIME", help="ISO-8601 time with a UTC offset")
    sink = sub.add_parser(
        "sink",
        help="write the failures topic into the operations store",
        description="Consume the failures topic into the store (an SQLite file or a "
        "postgresql:// URL), in a consumer group of its own, from the earliest record on "
        "its first start. Idempotent: a replay, a restart after a crash or several sinks "
        "at once leave each failure once with its latest status (docs/worklist.md).",
    )
    add_config_arguments(sink)
    sink.add_argument("--store", required=True, metavar="URL", help="the store to fill")
    sink.add_argument(
        "--sink-group",
        metavar="ID",
        help="the sink's consumer group (default: the application id + '-store-sink')",
    )
    sink.add_argument(
        "--batch",
        metavar="N",
        type=int,
        default=5000,
        help="records written per transaction, at most (default: %(default)s)",
    )
    sink.add_argument(
        "--idle-exit",
        metavar="SECONDS",
        type=float,
        help="stop after this many seconds without a record (default: run until stopped)",
    )


def main(args: argparse.Namespace) -> int:
    from streams.kafka.cli_args import config_from_args

    config = config_from_args(args)
    if args.action == "sink":
        from streams.store.kafka_sink import run_sink

        return run_sink(config, args.store, args.sink_group, args.idle_exit, args.batch)
    if args.action == "init":
        from streams.kafka.admin import create_topics

        for name, state in create_topics(config).items():
            print(f"{name}: {state}")
        return 0
    try:
        at = parse_time(args.to, field_name="--to")
    except Exception as exc:
        raise ConfigError(str(exc)) from None
    from streams.kafka.publisher import make_producer, publish_control

    producer = make_producer(config)
    try:
        n = publish_control(producer, config, "advance", at)
    finally:
        producer.close()
    print(f"advance to {args.to} sent to {n} partitions of {config.topics.events}")
    return 0
