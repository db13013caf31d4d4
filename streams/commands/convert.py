"""Convert HL7 v2, FHIR R4, CSV/Parquet event logs (or canonical JSON Lines, to check
them) into canonical events, one JSON object per line.

Events go to standard output, or to --out (gzip-compressed when the name ends in .gz).
Every input record that does not become an event is reported on standard error, one line
each (origin, place, kind, reason), followed by a count. The exit status is 0 when
anything could be converted; it is 1 only when the inputs held records and not one of
them became an event (records that carry no care event under the mapping, kind
no-event, do not count as failures). One adapter memory is kept across all inputs, so an
FHIR Appointment whose start moved between two files is a reschedule.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable
from itertools import chain
from typing import IO

import orjson

from detectors.events import Event
from streams.commands.inputs import add_input_arguments, read_inputs, report_ended_early
from streams.deadletter import NO_EVENT, Rejected
from streams.synthetic.output import open_output

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    p.add_argument(
        "--out",
        metavar="FILE",
        help="write the events to FILE instead of standard output (gzip if it ends in .gz)",
    )


def main(args: argparse.Namespace) -> int:
    readers = read_inputs(args)
    records = chain.from_iterable(readers)

    with open_output(args.out) as out:  # a reader going away: see streams.cli
        events, rejected = _write(records, out)

    kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(rejected.items()))
    total = sum(rejected.values())
    print(
        f"carewatch convert: {events:,} events, {total:,} rejected"
        + (f" ({kinds})" if kinds else ""),
        file=sys.stderr,
    )
    failed = total - rejected.get(NO_EVENT, 0)
    if report_ended_early("convert", readers):
        return 1
    return 1 if events == 0 and failed else 0


def _write(records: Iterable[Event | Rejected], out: IO[bytes]) -> tuple[int, Counter[str]]:
    """Write the events as JSON lines to ``out`` and report each rejection on stderr."""
    events = 0
    rejected: Counter[str] = Counter()
    dumps = orjson.dumps
    for record in records:
        if isinstance(record, Rejected):
            rejected[record.kind] += 1
            print(_reject_line(record), file=sys.stderr)
        else:
            out.write(dumps(record.to_dict()) + b"\n")
            events += 1
    return events, rejected


def _reject_line(r: Rejected) -> str:
    # One line per rejection, whatever the reason text holds, so it can be grepped.
    reason = " ".join(r.reason.split())
    return f"{r.origin}: {r.location}: {r.kind}: {reason}"
