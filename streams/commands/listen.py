"""Listen for hospital messages on the network and hand them on as canonical events.

  carewatch listen mllp --port 2575 --out events.jsonl --rejected rejected.jsonl
  carewatch listen mllp --port 2575 --kafka-bootstrap broker:9092

Each HL7 v2 message received over MLLP is converted with the site mapping; its events
are appended to --out (flushed and fsync-ed) or produced to Kafka (acks=all) before the
message is answered AA. Messages that cannot be used are answered AE (content) or AR
(not HL7, too large, cut off) and written to the dead-letter file. See docs/mllp.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from detectors.durations import parse_duration
from detectors.errors import ConfigError, RuntimeFault
from streams.commands import port

__all__ = ["add_arguments", "main", "parse_size"]

log = logging.getLogger("carewatch.mllp")

_SIZE = re.compile(r"(\d+)\s*(b|k|kib|m|mib)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "k": 1024, "kib": 1024, "m": 1024 * 1024, "mib": 1024 * 1024}


def parse_size(text: str) -> int:
    """Bytes from ``1048576``, ``512KiB``/``512K`` or ``1MiB``/``1M`` (K and M are 1024
    and 1024²). Raises ``ConfigError`` for anything else."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"{text!r} is not a size; write e.g. 1048576, 512KiB or 2MiB")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    mllp = sub.add_parser(
        "mllp",
        help="HL7 v2 over MLLP (TCP)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_mllp_arguments(mllp)


def _add_mllp_arguments(p: argparse.ArgumentParser) -> None:
    from streams.mllp.kafka_handoff import DEFAULT_TOPIC
    from streams.mllp.server import DEFAULT_PORT

    net = p.add_argument_group("network")
    net.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s; 0.0.0.0 for every interface)",
    )
    net.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="TCP port (default: %(default)s, the HL7 MLLP port; 0 picks a free one)",
    )
    net.add_argument(
        "--max-message-size",
        metavar="SIZE",
        default="1MiB",
        help="largest message accepted; larger ones are answered AR and dead-lettered "
        "(default: %(default)s; bytes, or K/KiB, M/MiB)",
    )
    net.add_argument(
        "--idle-timeout",
        metavar="DURATION",
        default="5m",
        help="close a connection that completes no message for this long, counted from "
        "its start or its last message (default: %(default)s; e.g. 90s, 5m)",
    )
    net.add_argument(
        "--frame-timeout",
        metavar="DURATION",
        default="60s",
        help="a message must arrive whole within this long of its first byte, or of any "
        "byte outside a message (blank lines included, bar one CR/LF after a message), or "
        "the connection is closed (default: %(default)s)",
    )
    net.add_argument(
        "--max-connections",
        metavar="N",
        type=int,
        default=100,
        help="connections open at once; more are closed at once, cleanly (default: %(default)s)",
    )
    net.add_argument(
        "--shutdown-grace",
        metavar="DURATION",
        default="30s",
        help="on SIGINT/SIGTERM, how long to wait for messages in flight (default: %(default)s)",
    )

    tls = p.add_argument_group("TLS (for links that leave this machine)")
    tls.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="serve TLS with this certificate (PEM, then any intermediates); needs --tls-key",
    )
    tls.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    tls.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        help="mutual TLS: require a client certificate signed by a CA in this PEM bundle",
    )

    out = p.add_argument_group("where events go (one of)")
    where = out.add_mutually_exclusive_group()
    where.add_argument(
        "--out",
        metavar="FILE",
        help="append events as canonical JSON Lines to FILE, fsync-ed before each AA "
        "(carewatch run FILE reads it)",
    )
    where.add_argument(
        "--kafka-bootstrap",
        metavar="HOST:PORT",
        help="produce events to Kafka (acks=all, idempotent) instead; "
        "default from CAREWATCH_KAFKA_BOOTSTRAP when --out is not given",
    )
    out.add_argument(
        "--kafka-config",
        metavar="FILE",
        help="Kafka settings YAML, as the worker's --config: bootstrap, TLS and SASL "
        "(kafka_security_protocol, kafka_ssl_*, kafka_sasl_*), topic_events; "
        "CAREWATCH_KAFKA_* variables override it (docs/kafka.md)",
    )
    out.add_argument(
        "--kafka-topic",
        metavar="TOPIC",
        help=f"events topic (default: CAREWATCH_TOPIC_EVENTS, else {DEFAULT_TOPIC})",
    )
    out.add_argument(
        "--kafka-timeout",
        metavar="DURATION",
        default="30s",
        help="longest wait for Kafka to acknowledge a message's events (or to connect "
        "again after a failure); after it the message is answered AE, 'send the message "
        "again', and kept whole in the dead letter (default: %(default)s)",
    )
    out.add_argument(
        "--rejected",
        metavar="FILE",
        default="mllp-rejected.jsonl",
        help="dead-letter file: rejected messages with reason and raw bytes, fsync-ed "
        "before each AE/AR (default: %(default)s)",
    )
    out.add_argument(
        "--keep-no-event",
        action="store_true",
        help="also dead-letter messages that carry no care event (default: only count them)",
    )

    conv = p.add_argument_group("conversion")
    conv.add_argument(
        "--mapping",
        metavar="FILE",
        help="site mapping YAML (codes, identifiers, timezone); see docs/adapters.md",
    )
    conv.add_argument(
        "--memory",
        metavar="FILE",
        help="where the adapters' memory (appointment starts, report orders) is kept: a "
        "snapshot FILE and a journal FILE.journal, fsync-ed before each AA so it survives "
        "a crash (default: OUT.memory with --out, else mllp-memory.json beside --rejected)",
    )

    ops = p.add_argument_group("operations")
    ops.add_argument(
        "--metrics-port",
        metavar="N",
        type=port,
        help="serve Prometheus metrics on --metrics-host:N",
    )
    ops.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address for the metrics endpoint (default: %(default)s)",
    )
    ops.add_argument(
        "--feeds",
        metavar="RULES",
        help="rules YAML whose metrics.feeds name the feeds to report the health of "
        "(last message heard per feed; docs/monitoring.md)",
    )
    ops.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="log detail on stderr; logs never carry message content (default: %(default)s)",
    )


def main(args: argparse.Namespace) -> int:
    from streams.mllp.server import ListenerSettings

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The Kafka client logs every connection at INFO and request details at DEBUG;
    # only its warnings are of use here, and they carry no message content.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = ListenerSettings(
        tls=_tls(args),
        frame_timeout=parse_duration(args.frame_timeout),
        max_connections=args.max_connections,
        host=args.host,
        port=args.port,
        max_message_bytes=parse_size(args.max_message_size),
        idle_timeout=parse_duration(args.idle_timeout),
        shutdown_grace=parse_duration(args.shutdown_grace),
        keep_no_event=args.keep_no_event,
    )
    if args.out and args.kafka_config:
        raise ConfigError("--out and --kafka-config exclude each other: events go to one place")
    kafka = None
    if not args.out:
        if not (
            args.kafka_bootstrap or args.kafka_config or os.environ.get("CAREWATCH_KAFKA_BOOTSTRAP")
        ):
            raise ConfigError(
                "say where events go: --out FILE, or --kafka-bootstrap HOST:PORT "
                "(or CAREWATCH_KAFKA_BOOTSTRAP, or --kafka-config FILE)"
            )
        from streams.kafka.config import load_config

        # The worker's and publisher's settings: bootstrap, TLS, SASL, the events topic.
        kafka = load_config(args.kafka_config, kafka_bootstrap=args.kafka_bootstrap)
    return asyncio.run(_serve(args, settings, kafka))


async def _serve(args: argparse.Namespace, settings: Any, kafka: Any) -> int:
    from prometheus_client import CollectorRegistry

    from streams.adapters import load_mapping
    from streams.mllp.appender import AppendError
    from streams.mllp.dead_letter import DeadLetterFile
    from streams.mllp.handoff import FileHandoff, Handoff
    from streams.mllp.memory_file import MemoryFile
    from streams.mllp.metrics import MllpMetrics
    from streams.mllp.server import MllpListener

    mapping = load_mapping(args.mapping) if args.mapping else None
    memory_file = await asyncio.to_thread(MemoryFile.open, _memory_path(args))
    registry = CollectorRegistry()
    metrics = MllpMetrics(registry)
    if args.metrics_port is not None:
        from detectors.feeds import FeedHealth
        from detectors.rules import load_settings

        feeds = load_settings(args.feeds).feeds if args.feeds else ()
        metrics.feeds = FeedHealth(feeds, registry)
    try:
        dead_letter = DeadLetterFile(args.rejected)
    except AppendError as exc:
        memory_file.close()
        raise ConfigError(str(exc)) from None
    handoff: Handoff
    try:
        if args.out:
            handoff = FileHandoff(args.out)
        else:
            assert kafka is not None
            handoff = await asyncio.to_thread(_kafka_handoff, args, kafka)
    except RuntimeFault as exc:  # the file cannot be opened, Kafka cannot be reached
        await dead_letter.close()
        memory_file.close()
        raise ConfigError(str(exc)) from None
    listener = MllpListener(
        settings, handoff, dead_letter, mapping=mapping, memory_file=memory_file, metrics=metrics
    )
    try:
        await listener.start()
        metrics_server = _serve_metrics(registry, args) if args.metrics_port is not None else None
    except ConfigError:
        await listener.stop()  # closes the handoff and the dead letter
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("signal received: finishing messages in flight")
    finally:
        await listener.stop()
        if metrics_server is not None:
            metrics_server.shutdown()
    return 0


def _tls(args: argparse.Namespace) -> Any:
    if not (args.tls_cert or args.tls_key or args.tls_client_ca):
        return None
    if not (args.tls_cert and args.tls_key):
        raise ConfigError("TLS needs both --tls-cert and --tls-key")
    from streams.mllp.tls import server_tls

    return server_tls(args.tls_cert, args.tls_key, client_ca=args.tls_client_ca)


def _kafka_handoff(args: argparse.Namespace, kafka: Any) -> Any:
    from streams.mllp.kafka_handoff import KafkaHandoff

    return KafkaHandoff.connect(
        kafka.bootstrap,
        args.kafka_topic or kafka.topics.events,
        timeout=parse_duration(args.kafka_timeout),
        security=kafka.kafka_python_kwargs(),
        senders=args.max_connections,  # every connection may wait on Kafka at once
    )


def _serve_metrics(registry: Any, args: argparse.Namespace) -> Any:
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(
            args.metrics_port, addr=args.metrics_host, registry=registry
        )
    except OSError as exc:
        where = f"{args.metrics_host}:{args.metrics_port}"
        raise ConfigError(f"cannot serve metrics on {where}: {exc.strerror}") from None
    return server


def _memory_path(args: argparse.Namespace) -> Path:
    """--memory, else beside the events file, else beside the dead letter."""
    if args.memory:
        return Path(args.memory)
    if args.out:
        out = Path(args.out)
        return out.with_name(out.name + ".memory")
    return Path(args.rejected).with_name("mllp-memory.json")
