"""Run a Kafka worker (faust): reads the events topic, runs the detectors (the same
engine as `carewatch run`) and publishes outcomes, failures and rejected records. State
survives restarts and rebalances (a journal in faust tables); see docs/kafka.md.
Live by default (ticks move the watermark with the wall clock); --replay uses event time
alone."""

from __future__ import annotations

import argparse

from detectors.durations import parse_duration
from streams.commands import port

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from streams.kafka.cli_args import add_config_arguments

    add_config_arguments(p)
    p.add_argument(
        "--replay",
        action="store_true",
        help="no wall-clock ticks: the watermark moves with event time only (backfills)",
    )
    p.add_argument("--rules", metavar="FILE", help="rules YAML (default: the config's rules)")
    p.add_argument("--allowed-lateness", metavar="D", help="e.g. 10m (overrides the rules file)")
    p.add_argument("--metrics-port", metavar="N", type=port, help="serve metrics on port N")
    p.add_argument(
        "--metrics-host",
        metavar="ADDR",
        help="address of the metrics endpoint (default 127.0.0.1; 0.0.0.0 in a container)",
    )
    p.add_argument("--data-dir", metavar="DIR", help="local working directory of this worker")
    p.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error", "critical"),
        default="warning",
        help="faust's log level (default: %(default)s)",
    )


def main(args: argparse.Namespace) -> int:
    from detectors.rules import load_settings
    from streams.kafka.cli_args import config_from_args
    from streams.kafka.worker import run_worker

    config = config_from_args(
        args,
        rules=args.rules,
        allowed_lateness=parse_duration(args.allowed_lateness) if args.allowed_lateness else None,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        data_dir=args.data_dir,
    )
    settings = load_settings(config.rules)
    return run_worker(config, settings, replay=args.replay, log_level=args.log_level)
