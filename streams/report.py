"""What people read about a finished run: the counts (``RunSummary``), the table
printed at its end (``format_summary``), warnings about input that cannot support its
answer (``feed_gaps``, ``input_warnings``) and the progress lines printed while it runs
(``stderr_progress``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from detectors.builtin import BUILTINS
from detectors.records import FAILURE_OUTCOMES

__all__ = [
    "IMPLAUSIBLE_FAILURE_RATE",
    "IMPLAUSIBLE_MIN_DECIDED",
    "REJECTED_WARNING_SHARE",
    "RunSummary",
    "feed_gaps",
    "format_summary",
    "input_warnings",
    "stderr_progress",
]

_COLUMNS = ("met", "late", "missed", "void", "violation")


@dataclass
class RunSummary:
    """Counts of a finished run. ``tally`` maps (detector, outcome) to latest records."""

    detectors: list[str]
    tally: dict[tuple[str, str], int]
    open: dict[str, int]
    events: int
    duplicates: int
    rejected: int
    watermark: float
    rejected_kinds: dict[str, int] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    #: which event types arrived, with counts (what ``feed_gaps`` looks at). Streaming
    #: counts after de-duplication and puts types no detector reads under ``other``;
    #: batch counts every event as read.
    types_seen: dict[str, int] = field(default_factory=dict)
    #: ``document.sent`` events by ``attrs.kind`` (``""``: no kind), as read
    document_kinds: dict[str, int] = field(default_factory=dict)
    #: appointment changes that did not say who asked for them
    unknown_initiator: int = 0
    #: detectors whose outcomes are counts (``Detector.measure``: violations with no
    #: denominator) rather than opportunities that could fail: no failure rate
    count_detectors: frozenset[str] = frozenset()

    def rows(self) -> list[dict[str, Any]]:
        """Per detector: each outcome, decided opportunities, open, failures, failure rate,
        and ``counts_violations``.

        The failure rate is failures out of the opportunities that could fail: a voided
        one (an order cancelled, an appointment cancelled by the patient) was never
        due, so it is in neither count. A detector whose measure is a count
        (``counts_violations``: contact-after-death) has no opportunities, only
        violations (each one a failure): it has no rate. clinic-overbooked decides every
        session (met or a violation): it has one. A detector the run does not know by
        name counts if it has violations.
        """
        names = list(self.detectors)
        names += sorted({d for d, _ in self.tally if d not in names})
        out = []
        for det in names:
            row: dict[str, Any] = {k: self.tally.get((det, k), 0) for k in _COLUMNS}
            row["opportunities"] = sum(row[k] for k in _COLUMNS)
            row["open"] = self.open.get(det, 0)
            failures = sum(row[k] for k in FAILURE_OUTCOMES)
            row["failures"] = failures
            row["counts_violations"] = det in self.count_detectors or (
                det not in self.detectors and row["violation"] > 0
            )
            could_fail = row["opportunities"] - row["void"]
            counts = row["counts_violations"]
            row["failure_rate"] = failures / could_fail if could_fail and not counts else None
            out.append({"detector": det, **row})
        return out


def feed_gaps(summary: RunSummary, detectors: Iterable[object]) -> list[str]:
    """Warnings for expectation rules that failed for want of any closing event at all.

    When not one event of a rule's closing types is in the input, every one of its
    opportunities ends late or missed; usually that means the feed does not carry those
    events (HL7 v2 has no acknowledgement message, for one), not that the hospital
    failed every time. One line per such rule, for people to read.
    """
    rows = {r["detector"]: r for r in summary.rows()}
    out = []
    for det in detectors:
        closes = getattr(det, "closes", ())
        row = rows.get(str(getattr(det, "name", "")))
        if not closes or row is None or not row["failures"]:
            continue
        if any(summary.types_seen.get(t, 0) for t in closes):
            continue
        name = row["detector"]
        remedy = (
            f"switch it off in a rules file ('{name}: off' under detectors, docs/rules.md)"
            if name in BUILTINS
            else "remove the rule or plugin from the rules file"
        )
        n = row["opportunities"]
        out.append(
            f"{name}: {row['failures']:,} of {n:,} {'opportunity' if n == 1 else 'opportunities'} "
            f"failed, and the input has no {' or '.join(closes)} event at all. If this feed "
            f"does not carry them, these are not real failures: {remedy}."
        )
    return out


#: A run whose rejects are more than this share of its input records is warned about.
REJECTED_WARNING_SHARE = 0.05
#: A detector failing this share of its decided opportunities, over at least
#: ``IMPLAUSIBLE_MIN_DECIDED`` of them, more likely has a feed or mapping problem.
IMPLAUSIBLE_FAILURE_RATE = 0.9
IMPLAUSIBLE_MIN_DECIDED = 20

# document.sent kinds that close a built-in detector: a feed with documents but none of a
# kind makes that detector fail every time
_DOCUMENT_KINDS = {
    "discharge-summary-overdue": "discharge-summary",
    "clinic-letter-overdue": "clinic-letter",
}


def input_warnings(summary: RunSummary, detectors: Iterable[object]) -> list[str]:
    """Warnings for a run whose input cannot support its answer, for people to read: many
    rejected records (with the main reasons), events the engine refused (beyond the
    correction horizon, id conflicts), changes with no initiator, closing documents of a
    kind the input never has, and detectors that fail nearly always."""
    out = []
    kinds_rejected = summary.rejected_kinds
    refused = kinds_rejected.get("beyond-horizon", 0) + kinds_rejected.get("id-conflict", 0)
    total = summary.events + summary.rejected - refused  # a refused event was read as one
    if total and summary.rejected > REJECTED_WARNING_SHARE * total:
        reasons = sorted(summary.rejected_kinds.items(), key=lambda kv: -kv[1])[:3]
        named = ", ".join(f"{k} {n:,}" for k, n in reasons)
        out.append(
            f"{summary.rejected:,} of {total:,} input records "
            f"({100 * summary.rejected / total:.0f}%) were rejected (mostly: {named}); the "
            "figures above leave them out. The reasons are in the dead letter."
        )
    horizon = summary.rejected_kinds.get("beyond-horizon", 0)
    if horizon:
        out.append(
            f"{horizon:,} events were further behind the newest events than the correction "
            "horizon and were not used (beyond-horizon in the dead letter); run the input in "
            "time order, or raise engine.correction_horizon in the rules."
        )
    conflicts = summary.rejected_kinds.get("id-conflict", 0)
    if conflicts:
        out.append(
            f"{conflicts:,} events reused an id of a different event and were not used "
            "(id-conflict in the dead letter); for merged HL7 v2 feeds set "
            "hl7v2.event_id_includes_sender: true in the site mapping."
        )
    names = {str(getattr(d, "name", "")): d for d in detectors}
    notice = names.get("reschedule-notice")
    unknown = summary.unknown_initiator
    if unknown:
        monitored = getattr(notice, "monitor_unknown_initiator", True)
        out.append(
            f"{unknown:,} appointment changes did not say who asked for them (initiated_by); "
            + (
                "they are monitored as 'unknown' by reschedule-notice. Map the reason codes "
                "(codes.initiated_by in the site mapping) to tell them apart."
                if monitored
                else "reschedule-notice leaves them out (monitor_unknown_initiator: false)."
            )
        )
    kinds = summary.document_kinds
    for name, kind in _DOCUMENT_KINDS.items():
        row = next((r for r in summary.rows() if r["detector"] == name), None)
        if row and row["failures"] and kinds and not kinds.get(kind):
            present = ", ".join(sorted(k for k in kinds if k))
            out.append(
                f"{name}: the input has documents ({present or 'of no kind'}) but not one "
                f"{kind}: check codes.document_kinds in the site mapping."
            )
    for r in summary.rows():
        det = names.get(r["detector"])
        closing = getattr(det, "closes", ())
        decided = r["opportunities"] - r["void"]
        rate = r["failure_rate"]
        if not closing or rate is None or decided < IMPLAUSIBLE_MIN_DECIDED:
            continue  # a violation detector has no rate to doubt
        if rate >= IMPLAUSIBLE_FAILURE_RATE:
            closes = " or ".join(closing)
            out.append(
                f"{r['detector']}: {r['failures']:,} of {decided:,} opportunities failed "
                f"({100 * rate:.0f}%). A rate this high usually means the closing events "
                f"({closes}) exist but never link to the opening ones: check the site "
                "mapping (document kinds, reason codes) and the refs both sides carry."
            )
    return out


def format_summary(summary: RunSummary) -> str:
    """The table people read at the end of a run. A detector that counts violations
    (``counts_violations``) shows its count under ``violations`` and ``-`` for
    opportunities and failure rate (every violation is a failure: a rate would always
    read 100%)."""
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
    for r in summary.rows():
        rate = "-" if r["failure_rate"] is None else f"{100 * r['failure_rate']:.1f}%"
        cells = [
            "-" if k == "opportunities" and r["counts_violations"] else f"{r[k]:,}"
            for k in ("opportunities", "met", "late", "missed", "void", "violation", "open")
        ]
        lines.append((r["detector"], *cells, rate))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    text = []
    for j, row in enumerate(lines):
        cells_out = [row[0].ljust(widths[0])]
        cells_out += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        text.append("  ".join(cells_out))
        if j == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def stderr_progress(msg: str, stream: IO[str] | None = None) -> None:
    """Default progress line writer: to ``stream``, else to ``sys.stderr`` as it is now
    (not as it was at import: a caller may have replaced it since)."""
    print(f"carewatch: {msg}", file=stream if stream is not None else sys.stderr, flush=True)
