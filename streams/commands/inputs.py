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

__all__ = ["InputReader", "add_input_arguments", "read_inputs", "report_ended_early"]

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


# The readers' reason for an input whose bytes stopped before its end (a truncated gzip
# file, an I/O error): the records after that point were never read.
_STOPPED = "reading stopped: "


class InputReader:
    """The records of one input, in order, remembering whether its reading stopped
    before the end of the input (``stopped`` holds why), so that the command can say
    so and exit non-zero instead of reporting a short input as a complete one."""

    def __init__(self, name: str, records: Iterator[Event | Rejected]) -> None:
        self.name = name
        self.stopped = ""
        self._records = records

    def __iter__(self) -> Iterator[Event | Rejected]:
        for record in self._records:
            if type(record) is Rejected and record.reason.startswith(_STOPPED):
                self.stopped = record.reason.removeprefix(_STOPPED)
            yield record


def report_ended_early(command: str, readers: list[InputReader]) -> int:
    """Print one error line per input whose reading stopped early; 1 if any did, else 0."""
    stopped = [r for r in readers if r.stopped]
    for r in stopped:
        print(
            f"carewatch {command}: error: input {r.name} ends early ({r.stopped}); "
            "the records after that point were not read",
            file=sys.stderr,
        )
    return 1 if stopped else 0


def _check_path(path: str) -> None:
    p = Path(path)
    if p.is_file():
        return
    if p.is_dir():
        raise ConfigError(f"input {path} is a directory; name the files in it (e.g. {path}/*)")
    if p.exists():
        raise ConfigError(f"input {path} is not a regular file; name a file or - for stdin")
    raise ConfigError(f"input {path} does not exist")


def read_inputs(args: argparse.Namespace) -> list[InputReader]:
    """One lazy reader per input, in order. Checks every path first (a one-line error
    naming the problem); one adapter memory serves all inputs, so an FHIR Appointment
    whose start moved between two files is a reschedule."""
    for path in args.inputs:
        if path != "-":
            _check_path(path)
    if args.inputs.count("-") > 1:
        raise ConfigError("standard input (-) can be named only once")

    from streams.adapters import AdapterMemory, iter_records, iter_stream, load_mapping

    mapping = load_mapping(args.mapping) if args.mapping else None
    memory = AdapterMemory()
    fmt = None if args.format == "auto" else args.format
    return [
        InputReader(
            "- (standard input)" if path == "-" else path,
            iter_stream(sys.stdin.buffer, fmt, mapping, memory=memory, origin="-")
            if path == "-"
            else iter_records(path, fmt, mapping, memory=memory),
        )
        for path in args.inputs
    ]
