"""Command-line options shared by the Kafka sub-commands."""

from __future__ import annotations

import argparse
from typing import Any

from streams.kafka.config import KafkaConfig, load_config

__all__ = ["add_config_arguments", "config_from_args"]


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """``--config`` and the few settings worth a flag (flags win over file and env)."""
    p.add_argument(
        "--config",
        metavar="FILE",
        help="Kafka settings (YAML); CAREWATCH_* environment variables override it "
        "(see docs/kafka.md)",
    )
    p.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
    p.add_argument("--group-id", metavar="ID", help="consumer group / application id")


def config_from_args(args: argparse.Namespace, **more: Any) -> KafkaConfig:
    """The validated config: file, then environment, then flags."""
    return load_config(
        args.config,
        kafka_bootstrap=args.bootstrap,
        group_id=args.group_id,
        **more,
    )
