"""Outcome ledger records for the QI tests, made by hand."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def record(
    fid: str,
    outcome: str,
    due: str | None,
    *,
    detector: str = "result-overdue",
    detected: str | None = None,
    opened: str | None = None,
    site: str | None = "north",
    amended_from: str | None = None,
    patient: str | None = "P0000001",
    **attrs: Any,
) -> dict[str, Any]:
    """One outcome record as `carewatch run` writes it; times ISO-8601 with offsets."""
    rec: dict[str, Any] = {
        "failure_id": fid,
        "detector": detector,
        "patient": patient,
        "refs": {"order": f"O{fid[-6:]}"},
        "opened_at": opened or due,
        "due_at": due,
        "closed_at": None,
        "detected_at": detected or due or opened,
        "evidence": [f"E{fid[-6:]}"],
        "attrs": ({"site": site} if site else {}) | attrs,
        "summary": f"Order O{fid[-6:]} for the patient.",
        "outcome": outcome,
        "key": f"O{fid[-6:]}",
    }
    if amended_from:
        rec["amended_from"] = amended_from
    return rec


def write_ledger(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write records as JSON Lines (gzip when the name ends in .gz)."""
    text = "".join(json.dumps(r) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)
    return path


def fid(n: int) -> str:
    """A 16-hex-digit failure id like the engine's."""
    return f"{n:016x}"
