"""The embedded runner: events in, outcome files out, no broker.

Reads inputs in order, feeds the engine, and at the end writes (into ``out_dir``):
``failures.jsonl`` (the latest record of every failure, including withdrawn ones),
``outcomes.jsonl`` (every decided opportunity), ``open.jsonl`` (undecided ones) and
``rejected.jsonl`` (the dead letter). Records are sorted by (detector, failure_id), so
the same events always give the same files.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from detectors.engine import Engine
from detectors.events import Event, format_time
from detectors.records import FAILURE_OUTCOMES, Outcome
from detectors.rules import Settings
from streams.deadletter import Rejected

__all__ = ["RunResult", "Runner", "format_summary", "summary_rows"]

ProgressFn = Callable[[str], None]


@dataclass
class RunResult:
    """What a run produced. ``outcomes`` holds the latest record per opportunity."""

    outcomes: dict[str, Outcome]
    open: list[Outcome]
    rejected: list[Rejected]
    events: int
    duplicates: int
    watermark: float
    detectors: list[str]
    files: dict[str, Path] = field(default_factory=dict)

    def failures(self) -> list[Outcome]:
        """Records that are, or were, failures (latest version), canonically sorted."""
        return sorted(
            (o for o in self.outcomes.values() if o.failure_status is not None),
            key=_canon,
        )


def _canon(o: Outcome) -> tuple[str, str]:
    return (o.detector, o.failure_id)


class Runner:
    """Feeds events to an engine built from ``settings`` and collects what it says."""

    def __init__(
        self,
        settings: Settings,
        *,
        allowed_lateness: float | None = None,
        on_reject: Callable[[Rejected], None] | None = None,
    ) -> None:
        self.settings = settings
        self.outcomes: dict[str, Outcome] = {}
        self.rejected: list[Rejected] = []
        self._on_reject = on_reject
        self.engine = Engine(
            settings.detectors,
            allowed_lateness=(
                settings.allowed_lateness if allowed_lateness is None else allowed_lateness
            ),
            late_retention=settings.late_retention,
            dedupe_window=settings.dedupe_window,
            sink=self._keep,
            site_labels=settings.site_labels,
        )
        self.events = 0

    def _keep(self, o: Outcome) -> None:
        self.outcomes[o.failure_id] = o

    def feed(
        self,
        records: Iterable[Event | Rejected],
        progress: ProgressFn | None = None,
        every: float = 2.0,
    ) -> None:
        """Process events and collect rejects. ``progress`` gets a line every ``every`` s."""
        process = self.engine.process
        n = self.events
        next_report = time.monotonic() + every if progress else float("inf")
        started = time.monotonic()
        for rec in records:
            if type(rec) is Event:
                process(rec)
                n += 1
                if n & 0xFFF == 0 and time.monotonic() >= next_report:
                    assert progress is not None
                    rate = (n - self.events) / max(1e-9, time.monotonic() - started)
                    wm = self.engine.watermark
                    progress(
                        f"{n:,} events ({rate:,.0f}/s), {len(self.rejected):,} rejected, "
                        f"watermark {format_time(wm) if wm > float('-inf') else '-'}"
                    )
                    next_report = time.monotonic() + every
            else:
                assert isinstance(rec, Rejected)
                self.rejected.append(rec)
                if self._on_reject is not None:
                    self._on_reject(rec)
        self.events = n

    def finish(self, as_of: float | None = None) -> RunResult:
        """Apply ``as_of`` (epoch seconds) to the watermark and gather the result."""
        if as_of is not None:
            self.engine.advance_to(as_of)
        return RunResult(
            outcomes=self.outcomes,
            open=self.engine.open_records(),
            rejected=self.rejected,
            events=self.events,
            duplicates=self.engine.stats.duplicates,
            watermark=self.engine.watermark,
            detectors=[d.name for d in self.engine.detectors],
        )


def write_result(result: RunResult, out_dir: Path) -> dict[str, Path]:
    """Write the four output files; returns their paths by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    decided = sorted(result.outcomes.values(), key=_canon)
    files = {
        "failures": out_dir / "failures.jsonl",
        "outcomes": out_dir / "outcomes.jsonl",
        "open": out_dir / "open.jsonl",
        "rejected": out_dir / "rejected.jsonl",
    }
    _write(files["failures"], (o.to_failure_dict() for o in result.failures()))
    _write(files["outcomes"], (o.to_outcome_dict() for o in decided))
    _write(files["open"], (o.to_outcome_dict() for o in result.open))
    _write(files["rejected"], (r.to_dict() for r in result.rejected))
    result.files = files
    return files


def _write(path: Path, rows: Iterator[dict[str, Any]]) -> None:
    dumps = orjson.dumps
    with path.open("wb") as f:
        for row in rows:
            f.write(dumps(row))
            f.write(b"\n")


_COLUMNS = ("opportunities", "met", "late", "missed", "void", "violation", "open")


def summary_rows(result: RunResult) -> list[dict[str, Any]]:
    """Per detector: decided opportunities, each outcome, open, and the failure rate."""
    rows: dict[str, dict[str, Any]] = {d: dict.fromkeys(_COLUMNS, 0) for d in result.detectors}
    for o in result.outcomes.values():
        r = rows.setdefault(o.detector, dict.fromkeys(_COLUMNS, 0))
        r[o.outcome] += 1
        r["opportunities"] += 1
    for o in result.open:
        rows.setdefault(o.detector, dict.fromkeys(_COLUMNS, 0))["open"] += 1
    out = []
    for det, r in rows.items():
        failures = sum(r[k] for k in FAILURE_OUTCOMES)
        rate = failures / r["opportunities"] if r["opportunities"] else None
        out.append({"detector": det, **r, "failures": failures, "failure_rate": rate})
    return out


def format_summary(result: RunResult) -> str:
    """The summary table people read at the end of a run."""
    head = (
        "detector",
        "opportunities",
        "met",
        "late",
        "missed",
        "void",
        "violations",
        "open",
        "failure rate",
    )
    lines = [head]
    for r in summary_rows(result):
        rate = "-" if r["failure_rate"] is None else f"{100 * r['failure_rate']:.1f}%"
        lines.append(
            (
                r["detector"],
                f"{r['opportunities']:,}",
                f"{r['met']:,}",
                f"{r['late']:,}",
                f"{r['missed']:,}",
                f"{r['void']:,}",
                f"{r['violation']:,}",
                f"{r['open']:,}",
                rate,
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    text = []
    for j, row in enumerate(lines):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        text.append("  ".join(cells))
        if j == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def stderr_progress(msg: str, stream: IO[str] = sys.stderr) -> None:
    """Default progress line writer."""
    print(f"carewatch: {msg}", file=stream, flush=True)
