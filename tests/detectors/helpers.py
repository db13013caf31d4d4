"""Shared helpers for detector tests: times as offsets from a fixed Monday morning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(hours: float = 0.0, *, days: float = 0.0, minutes: float = 0.0) -> str:
    """ISO time ``hours``/``days``/``minutes`` after T0 (Mon 2 Mar 2026 09:00 UTC)."""
    return (T0 + timedelta(hours=hours, days=days, minutes=minutes)).isoformat()


def epoch(hours: float = 0.0, *, days: float = 0.0, minutes: float = 0.0) -> float:
    """The same as ``at`` in epoch seconds."""
    return (T0 + timedelta(hours=hours, days=days, minutes=minutes)).timestamp()


FAR = at(days=90)  # an as-of beyond every deadline and retention
