"""Run the detectors over input files with the embedded runner (no Kafka needed).

Reads canonical JSON Lines, HL7 v2, FHIR R4 (resources, Bundles, NDJSON) or CSV/Parquet
event logs (files, '-' for stdin, .gz), writes failures.jsonl, outcomes.jsonl, open.jsonl
and rejected.jsonl into --out, and prints a summary table. Input that cannot be used goes
to rejected.jsonl with its origin, place and reason; the run goes on.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from detectors.durations import parse_duration
from detectors.errors import ConfigError
from detectors.events import Event, format_time, parse_time
from detectors.rules import Settings, load_settings
from streams.commands import port
from streams.commands.inputs import add_input_arguments, read_inputs, report_ended_early
from streams.deadletter import Rejected
from streams.monitoring import observe_feeds
from streams.report import feed_gaps, format_summary, input_warnings, stderr_progress
from streams.runner import Runner, tune_gc
from streams.sinks import FileSink, Sink

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    p.add_argument(
        "--rules",
        metavar="FILE",
        help="rules YAML (thresholds, on/off, custom rules); see docs/rules.md",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default="carewatch-out",
        help="output directory (default: %(default)s)",
    )
    p.add_argument(
        "--as-of",
        metavar="TIME",
        help="move the watermark to TIME (ISO-8601 with offset) at the end, declaring everything due by then",
    )
    p.add_argument(
        "--allowed-lateness",
        metavar="D",
        help="how far behind the newest event time an event may arrive and still count as in order "
        "(e.g. 10m; default from the rules file, else 10m)",
    )
    p.add_argument(
        "--metrics-port",
        metavar="N",
        type=port,
        help="serve Prometheus metrics on 127.0.0.1:N during the run",
    )
    p.add_argument(
        "--batch",
        action="store_true",
        help="retired: the streaming run is the one way (README, Running on files)",
    )
    p.add_argument(
        "--store",
        metavar="URL",
        help="also write each failure into this operations store as it is decided (an "
        "SQLite file or a postgresql:// URL, created if new; docs/worklist.md)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


#: Why ``--batch`` is refused (README, Running on files).
BATCH_RETIRED = (
    "--batch is retired: the pandas oracle it ran is now a test reference only, and the "
    "streaming run replays a year of events in minutes in a fraction of the memory; "
    "run again without --batch"
)


def main(args: argparse.Namespace) -> int:
    if args.batch:
        raise ConfigError(BATCH_RETIRED)
    settings = load_settings(args.rules)
    tune_gc()
    lateness = parse_duration(args.allowed_lateness) if args.allowed_lateness else None
    as_of = None
    if args.as_of:
        try:
            as_of = parse_time(args.as_of, field_name="--as-of")
        except Exception as exc:
            raise ConfigError(str(exc)) from None
    readers = read_inputs(args)
    out_dir = Path(args.out)
    progress = None if args.quiet else stderr_progress
    files: Sink = FileSink(out_dir)
    store_sink = None
    if args.store:
        from streams.store.sink import StoreSink
        from streams.store.store import open_store

        files = store_sink = StoreSink(files, open_store(args.store, create=True))

    runner = Runner(settings, files, allowed_lateness=lateness)
    feeds = None
    if args.metrics_port is not None:
        metrics, feeds = _serve_metrics(runner, settings, args.metrics_port)
        runner.on_reject = lambda r: metrics.count_rejected(r.kind)
    for reader in readers:
        records: Iterable[Event | Rejected] = reader
        if feeds is not None:
            records = observe_feeds(reader, feeds)
        runner.feed(records, progress=progress)
    summary = runner.finish(as_of)
    print(format_summary(summary))
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(summary.rejected_kinds.items()))
    print(
        f"\n{summary.events:,} events, {summary.duplicates:,} duplicates ignored, "
        f"{summary.rejected:,} rejected{f' ({kinds})' if kinds else ''}. Files in {out_dir}/: "
        + ", ".join(p.name for p in summary.files.values())
    )
    if as_of is not None and as_of < summary.watermark:
        print(
            f"carewatch: warning: --as-of {args.as_of} is earlier than the input's own "
            f"watermark ({format_time(summary.watermark)}); a watermark never moves back, "
            "so the run is as of that time",
            file=sys.stderr,
        )
    if store_sink is not None:
        store_sink.store.close()
        print(f"Store: {store_sink.counts.text()}")
    for gap in feed_gaps(summary, settings.detectors) + input_warnings(summary, settings.detectors):
        print(f"carewatch: warning: {gap}", file=sys.stderr)
    if summary.rejected and not args.quiet:
        print(
            f"carewatch: {summary.rejected:,} input records rejected; see {summary.files['rejected']}",
            file=sys.stderr,
        )
    if summary.events == 0 and summary.rejected:
        print(
            "carewatch: error: not one input record became an event; the figures above "
            "mean nothing (see the dead letter for why)",
            file=sys.stderr,
        )
        return 1
    return report_ended_early("run", readers)


def _serve_metrics(runner: Runner, settings: Settings, port: int):  # type: ignore[no-untyped-def]
    from prometheus_client import CollectorRegistry, start_http_server

    from detectors.feeds import FeedHealth
    from detectors.metrics import EngineMetrics

    registry = CollectorRegistry()
    metrics = EngineMetrics(runner.engine, registry)
    feeds = FeedHealth(settings.feeds, registry)
    try:
        start_http_server(port, addr="127.0.0.1", registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on 127.0.0.1:{port}: {exc.strerror}") from None
    return metrics, feeds
