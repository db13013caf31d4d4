"""The input options every reading command shares (``run``, ``convert``): the files, their
format and the site mapping, and one reader over all of them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from detectors.errors import ConfigError
from detectors.events import Event
from streams.deadletter import Rejected

__all__ = ["add_input_arguments", "read_inputs"]

FORMAT_CHOICES = ("auto", "jsonl", "hl7", "fhir", "csv", "parquet")


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    """INPUT..., --format and --mapping."""
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="input files (.gz ok), or - for stdin"
    )
    p.add_argument(
        "--format",
        choices=FORMAT_CHOICES,
        default="auto",
        help="input format (default: told from each input's content and name)",
    )
    p.add_argument(
        "--mapping",
        metavar="FILE",
        help="site mapping YAML for HL7/FHIR/CSV input (codes, identifiers, timezone); "
        "see docs/adapters.md",
    )


def read_inputs(args: argparse.Namespace) -> list[Iterator[Event | Rejected]]:
    """One lazy reader per input, in order. Checks every path first (a one-line error
    naming the problem); one adapter memory serves all inputs, so an FHIR Appointment
    whose start moved between two files is a reschedule."""
    for path in args.inputs:
        if path != "-" and not Path(path).is_file():
            raise ConfigError(f"input {path} does not exist or is not a file")
    if args.inputs.count("-") > 1:
        raise ConfigError("standard input (-) can be named only once")

    from streams.adapters import AdapterMemory, iter_records, iter_stream, load_mapping

    mapping = load_mapping(args.mapping) if args.mapping else None
    memory = AdapterMemory()
    fmt = None if args.format == "auto" else args.format
    return [
        iter_stream(sys.stdin.buffer, fmt, mapping, memory=memory, origin="-")
        if path == "-"
        else iter_records(path, fmt, mapping, memory=memory)
        for path in args.inputs
    ]
