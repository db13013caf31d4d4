"""Write a synthetic hospital's messaging traffic as canonical events (JSON Lines), HL7 v2
messages or FHIR R4 resources (NDJSON), and with --truth the expected outcome of every
opportunity the detectors will see in it. The same options and seed always give the
same bytes."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import date
from typing import Any

from detectors.durations import parse_duration
from detectors.errors import ConfigError
from streams.synthetic import (
    DEFAULT_START,
    FAILURE_PRESETS,
    SCALES,
    DeliveryFaults,
    FailureRates,
    GeneratorConfig,
    generate,
)
from streams.synthetic.formats import (
    DETECTORS,
    DETECTORS_FED,
    NOT_CARRIED,
    OUTPUT_FORMATS,
    deliver_as,
    format_truth,
    mapping_text,
)
from streams.synthetic.output import open_output, write_json_lines, write_lines

__all__ = ["add_arguments", "main"]

#: FailureRates fields that are not failures get plainer option names.
_RATE_OPTIONS = {"order_cancelled": "--order-cancel-rate", "edge_cases": "--edge-case-rate"}


_RATE_HELP = {
    "notice_late": "hospital reschedules/cancellations notified after the deadline",
    "notice_missed": "hospital reschedules/cancellations never notified",
    "result_late": "orders whose result comes after the turnaround",
    "result_missed": "orders whose result never comes",
    "order_cancelled": "orders cancelled before their result (void, not a failure)",
    "ack_late": "abnormal/critical results acknowledged late",
    "ack_missed": "abnormal/critical results never acknowledged",
    "summary_late": "discharge summaries sent after 24h",
    "summary_missed": "discharge summaries never sent",
    "letter_late": "clinic letters sent after 7d",
    "letter_missed": "clinic letters never sent",
    "overbooked": "clinic sessions booked past their capacity",
    "contact_after_death": "deaths followed by a contact (1 or 2) with the patient",
    "edge_cases": "outcomes drawn at a boundary (at the deadline, ties); not failures",
}


def _option(field_name: str) -> str:
    return _RATE_OPTIONS.get(field_name, "--failure-rate-" + field_name.replace("_", "-"))


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-03-02") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``carewatch generate``."""
    parser.add_argument("--days", type=int, default=7, help="days of care to simulate (default 7)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--start",
        type=_date,
        default=DEFAULT_START,
        help=f"first day, midnight UTC (default {DEFAULT_START.isoformat()}, a Monday)",
    )
    parser.add_argument(
        "--scale",
        choices=list(SCALES),
        default="medium",
        help="small (~1/20 of medium), medium (a mid-size acute hospital: ~2,000 outpatient "
        "appointments, 5,000 lab orders, 150 discharges a weekday) or large (~3x medium)",
    )
    parser.add_argument(
        "--format",
        choices=list(OUTPUT_FORMATS),
        default="jsonl",
        help="output format: jsonl (canonical events, one per line), hl7 (HL7 v2 messages, "
        "CR after each segment) or fhir (FHIR R4 resources, one per line); see "
        "docs/generator.md for what each event becomes",
    )
    parser.add_argument(
        "--mllp",
        action="store_true",
        help="with --format hl7: frame each message with MLLP start and end bytes",
    )
    parser.add_argument(
        "--out", metavar="PATH", help="events file (.gz: gzip); - or absent: stdout"
    )
    parser.add_argument(
        "--truth",
        metavar="PATH",
        help="write the expected outcomes here (.gz: gzip); for hl7 and fhir, those a reader "
        "of that format can find",
    )
    parser.add_argument(
        "--mapping-out",
        metavar="PATH",
        help="write the site mapping that reads the hl7/fhir output (carewatch run --mapping)",
    )
    parser.add_argument(
        "--failures",
        choices=list(FAILURE_PRESETS),
        default="default",
        help="preset of failure rates (none, low = half, default, high = three times)",
    )
    rates = parser.add_argument_group("rates (fractions of opportunities; override the preset)")
    for f in fields(FailureRates):
        rates.add_argument(
            _option(f.name),
            dest=f"rate_{f.name}",
            type=_fraction,
            metavar="F",
            help=f"{_RATE_HELP[f.name]} (default {getattr(FailureRates(), f.name)})",
        )
    faults = parser.add_argument_group("delivery faults (the truth holds under all of them)")
    faults.add_argument(
        "--shuffle-within",
        metavar="DURATION",
        default="0",
        help="deliver out of order, each event at most DURATION (e.g. 5m) behind the latest "
        "event time delivered before it; keep it within the engine's allowed lateness",
    )
    faults.add_argument(
        "--duplicates",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="re-deliver this fraction of events later (same id and content), within the "
        "--shuffle-within bound, or 10m without one",
    )
    faults.add_argument(
        "--malformed",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="insert malformed lines (this fraction of the number of events); not in the truth",
    )
    faults.add_argument(
        "--delayed",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="deliver this fraction of events late, up to --delay-within behind (deaths "
        "registered days later, discharges keyed in after the summary); keep it within "
        "the engine's correction horizon (30d)",
    )
    faults.add_argument(
        "--delay-within",
        metavar="DURATION",
        default="0",
        help="how late --delayed events may come, e.g. 5d",
    )
    faults.add_argument(
        "--resend-after",
        metavar="DURATION",
        default="0",
        help="send the run's first whole day of messages again this long after it (an "
        "interface re-sending a day after an outage), e.g. 3d",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")


def main(args: argparse.Namespace) -> int:
    """Run ``carewatch generate``."""
    rates = FAILURE_PRESETS[args.failures]
    overrides = {
        f.name: getattr(args, f"rate_{f.name}")
        for f in fields(FailureRates)
        if getattr(args, f"rate_{f.name}") is not None
    }
    config = GeneratorConfig(
        days=args.days,
        seed=args.seed,
        start=args.start,
        scale=args.scale,
        rates=replace(rates, **overrides),
    )
    faults = DeliveryFaults(
        shuffle_within=parse_duration(args.shuffle_within),
        duplicates=args.duplicates,
        malformed=args.malformed,
        delayed=args.delayed,
        delay_within=parse_duration(args.delay_within),
        resend_after=parse_duration(args.resend_after),
    )
    config.validate()
    faults.validate()
    if args.mllp and args.format != "hl7":
        raise ConfigError("--mllp frames HL7 v2 messages; use it with --format hl7")
    _check_paths(args)
    began = time.perf_counter()
    say = _reporter(args.quiet)
    say(f"{config.days} day(s) from {config.start}, {config.scale} scale, seed {config.seed}")
    run = generate(config)
    items = deliver_as(run.records, args.format, faults, config.seed, mllp=args.mllp)
    unit = {"jsonl": "lines", "hl7": "messages", "fhir": "resources"}[args.format]
    with open_output(args.out) as out:
        written = write_lines(items, out, progress=lambda n: say(f"{n:,} {unit} written"))
    truth = format_truth(run, args.format)
    if args.truth:
        with open_output(args.truth) as out:
            write_json_lines(truth, out)
    if args.mapping_out:
        with open_output(args.mapping_out) as out:
            out.write(mapping_text().encode("utf-8"))
    failures = sum(1 for r in truth if r["outcome"] in ("late", "missed", "violation"))
    seconds = time.perf_counter() - began
    say(
        f"{len(run.records):,} events ({written:,} {unit}) in {seconds:.1f}s; "
        f"{len(truth):,} opportunities, {failures:,} failures"
    )
    left_out = _left_out(run.events, NOT_CARRIED[args.format])
    if left_out:
        unfed = ", ".join(sorted(DETECTORS - DETECTORS_FED[args.format]))
        say(
            f"not carried by {args.format} (no message the adapters read): {left_out}; "
            f"the truth leaves out {unfed} (switch them off in carewatch run's --rules)"
        )
    return 0


def _check_paths(args: argparse.Namespace) -> None:
    """Refuse two outputs going to the same place."""
    named = {"--out": args.out or "-", "--truth": args.truth, "--mapping-out": args.mapping_out}
    seen: dict[str, str] = {}
    for option, path in named.items():
        if path is None:
            continue
        if path in seen:
            where = "stdout" if path == "-" else "the same file"
            raise ConfigError(
                f"{seen[path]} and {option} both go to {where}; give them different paths"
            )
        seen[path] = option


def _left_out(events: list[dict[str, Any]], types: frozenset[str]) -> str:
    """``"29 session.capacity, 408 result.acknowledged"`` for the events of ``types``."""
    counts: dict[str, int] = {}
    for event in events:
        if event["type"] in types:
            counts[event["type"]] = counts.get(event["type"], 0) + 1
    return ", ".join(f"{n:,} {kind}" for kind, n in sorted(counts.items()))


def _reporter(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(f"carewatch generate: {message}", file=sys.stderr, flush=True)

    return say
