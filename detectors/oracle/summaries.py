"""The summary sentence of many expectation outcomes at once.

``ExpectationDetector.summary`` spends most of its time formatting the same minutes over
and over (``human_time`` of the opening and due times). For detectors that keep that
summary, this module writes the same sentence with ``human_time`` called once per
distinct minute and ``format_duration`` once per distinct duration: the very functions
``summary`` calls, so the text is identical (a test holds it to ``summary`` itself).
Detectors that override ``summary`` are asked one record at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from string import Formatter
from typing import Any

import numpy as np
import pandas as pd

from detectors.contract import ExpectationDetector, human_time
from detectors.durations import format_duration

__all__ = ["TextCache", "expectation_summaries", "uses_base_summary"]

# human_time shows minutes; times this close below a minute's end may round up into the
# next one when datetime takes them to microseconds, so they are formatted one by one
_EDGE = 1e-6


class _Names(dict[str, str]):
    """Refs for summary templates; a missing ref reads as ``?`` (as in the contract)."""

    def __missing__(self, key: str) -> str:
        return "?"


def uses_base_summary(det: ExpectationDetector) -> bool:
    """Whether ``det`` writes its summaries with ``ExpectationDetector.summary``."""
    return type(det).summary is ExpectationDetector.summary


class TextCache:
    """``human_time`` per minute and ``format_duration`` per value, remembered across the
    detectors of one run (the same minutes recur in every detector's deadlines)."""

    def __init__(self) -> None:
        self._minutes: dict[float, str] = {}
        self._durations: dict[float, str] = {}

    def human_times(self, seconds: np.ndarray) -> list[str]:
        """``human_time`` of every value (epoch s UTC)."""
        minute = np.floor(seconds / 60.0)
        codes, minutes = pd.factorize(minute)
        known = self._minutes
        texts = np.array(
            [known.get(m) or known.setdefault(m, human_time(m * 60.0)) for m in minutes.tolist()],
            dtype=object,
        )[codes]
        edge = seconds >= (minute + 1) * 60.0 - _EDGE
        for i in np.flatnonzero(edge):
            texts[i] = human_time(float(seconds[i]))
        return texts.tolist()

    def durations(self, seconds: np.ndarray) -> list[str]:
        """``format_duration`` of every value (s)."""
        codes, values = pd.factorize(seconds)
        known = self._durations
        texts = [known.get(v) or known.setdefault(v, format_duration(v)) for v in values.tolist()]
        return np.array(texts, dtype=object)[codes].tolist()


def _renderer(template: str) -> Callable[[_Names], str] | str:
    """The template itself when it names no field (it reads the same for every record),
    else its ``format_map``."""
    if all(field is None for _, field, _, _ in Formatter().parse(template)):
        return template.format_map({})
    return template.format_map


def expectation_summaries(
    det: ExpectationDetector,
    cache: TextCache,
    outcome: Sequence[str],
    key: Sequence[str],
    refs: Sequence[dict[str, str]],
    attrs: Sequence[dict[str, Any]],
    opened_at: np.ndarray,
    due_at: np.ndarray,
    closed_at: np.ndarray,
    detected_at: np.ndarray,
) -> list[str]:
    """``det.summary`` of each outcome given column-wise (times in epoch s UTC,
    ``closed_at`` NaN when not closed), for a detector that ``uses_base_summary``."""
    opened_text = cache.human_times(opened_at)
    due_text = cache.human_times(due_at)
    late = np.asarray(outcome) == "late"
    # how far past the deadline: the closing time when late, else the detection time
    end = np.where(late & ~np.isnan(closed_at), closed_at, detected_at)
    duration = cache.durations(np.where(late, end - due_at, np.maximum(0.0, end - due_at)))
    what_of = _renderer(det.opened_words)
    expected_of = _renderer(det.expected_words)
    out = []
    for i, result in enumerate(outcome):
        if isinstance(what_of, str) and isinstance(expected_of, str):
            what, expected = what_of, expected_of
        else:
            names = _Names({k: str(v) for k, v in attrs[i].items()}, **refs[i], key=key[i])
            what = what_of if isinstance(what_of, str) else what_of(names)
            expected = expected_of if isinstance(expected_of, str) else expected_of(names)
        head = f"{what} at {opened_text[i]}; "
        if result == "met":
            out.append(f"{head}{expected} in time.")
        elif result == "void":
            out.append(f"{head}no longer expected (voided).")
        elif result == "late":
            out.append(f"{head}{expected} came {duration[i]} after {due_text[i]}.")
        else:
            out.append(
                f"{head}{expected} was due by {due_text[i]} and has not happened "
                f"({duration[i]} overdue)."
            )
    return out
