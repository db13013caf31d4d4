"""Synthetic failure records for the store's tests (the format of failures.jsonl)."""

from __future__ import annotations

from typing import Any

import orjson

from detectors.events import format_time

T0 = 1_772_000_000.0  # 2026-02-25, epoch seconds UTC


def record(
    n: int,
    status: str = "missed",
    *,
    detector: str = "reschedule-notice",
    site: str = "north",
    specialty: str = "cardiology",
    clinic: str = "CARD-1",
    patient: str | None = None,
    due: float | None = None,
    detected: float | None = None,
) -> dict[str, Any]:
    """Failure record number ``n``: same ``n``, same failure_id."""
    due_at = T0 + n * 60.0 if due is None else due
    return {
        "failure_id": f"f{n:06d}",
        "detector": detector,
        "status": status,
        "patient": patient or f"P{n:05d}",
        "refs": {"appointment": f"A-{n}", "order": f"O-{n}"},
        "opened_at": format_time(due_at - 3600.0),
        "due_at": format_time(due_at),
        "closed_at": format_time(due_at + 600.0) if status in ("late", "withdrawn") else None,
        "detected_at": format_time(detected if detected is not None else due_at + 60.0),
        "evidence": [f"e{n}-open"],
        "attrs": {"site": site, "specialty": specialty, "clinic": clinic},
        "summary": f"Appointment A-{n} was moved on Wed 25 Feb 2026 10:15 UTC and nobody told the patient.",
    }


def line(rec: dict[str, Any]) -> bytes:
    """One failure record as a JSON line (no newline)."""
    return orjson.dumps(rec)
