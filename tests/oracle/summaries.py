"""The summary sentence of many expectation outcomes at once.

``ExpectationDetector.summary`` spends most of its time formatting the same minutes over
and over (``human_time`` of the opening and due times). For detectors that keep that
summary, this module writes the same sentence with ``human_time`` called once per
distinct minute and ``format_duration`` once per distinct duration: the very functions
``summary`` calls, so the text is identical (a test holds it to ``summary`` itself).
Detectors that override ``summary`` are asked one record at a time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from string import Formatter
from typing import Any

import numpy as np
import pandas as pd

from detectors.contract import ExpectationDetector, human_time, sentence_context, summary_sentence
from detectors.durations import format_duration

__all__ = ["TextCache", "expectation_summaries", "uses_base_summary"]

# human_time shows minutes; times this close below a minute's end may round up into the
# next one when datetime takes them to microseconds, so they are formatted one by one
_EDGE = 1e-6


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


def _roots(template: str) -> tuple[str, ...] | None:
    """The names a template looks up (``{order}``, ``{attr.x}`` -> ``attr``), or ``None``
    when it looks up nothing."""
    roots = [
        re.match(r"[^.\[]*", field).group()  # type: ignore[union-attr]
        for _, field, _, _ in Formatter().parse(template)
        if field is not None
    ]
    return tuple(dict.fromkeys(roots)) if roots else None


def _rendered(
    template: str,
    key: Sequence[str],
    refs: Sequence[dict[str, str]],
    attrs: Sequence[dict[str, Any]],
) -> list[str] | str:
    """``template`` filled in for every record as ``summary`` fills it: a name is the key,
    else a ref, else an attribute as text, else ``?``. One string when it names nothing."""
    roots = _roots(template)
    if roots is None:
        return template.format_map({})
    fill = template.format_map
    out = []
    for k, r, a in zip(key, refs, attrs, strict=True):
        names = {}
        for root in roots:
            if root == "key":
                names[root] = k
            elif root in r:
                names[root] = r[root]
            elif root in a:
                names[root] = str(a[root])
            else:
                names[root] = "?"
        out.append(fill(names))
    return out


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
    n = len(outcome)
    opened_text = cache.human_times(opened_at)
    due_text = cache.human_times(due_at)
    late = np.asarray(outcome) == "late"
    # how far past the deadline: the closing time when late, else the detection time
    end = np.where(late & ~np.isnan(closed_at), closed_at, detected_at)
    duration = cache.durations(np.where(late, end - due_at, np.maximum(0.0, end - due_at)))
    what = _rendered(det.opened_words, key, refs, attrs)
    expected = _rendered(det.expected_words, key, refs, attrs)
    out = []
    for result, w, e, opened, due, took, a in zip(
        outcome,
        [what] * n if isinstance(what, str) else what,
        [expected] * n if isinstance(expected, str) else expected,
        opened_text,
        due_text,
        duration,
        attrs,
        strict=True,
    ):
        if result in ("late", "missed"):
            w += sentence_context(a)
        out.append(summary_sentence(result, w, e, opened, due, took))
    return out
