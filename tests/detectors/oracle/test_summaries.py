"""The oracle's column-wise summaries read exactly as ``ExpectationDetector.summary``."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.builtin import ClinicLetterOverdue, ResultOverdue, ResultUnacknowledged
from detectors.contract import ExpectationDetector
from detectors.records import Outcome
from detectors.rules import parse_settings
from tests.oracle.summaries import TextCache, expectation_summaries, uses_base_summary

T0 = 1_772_443_800.0  # Mon 02 Mar 2026 09:30 UTC

RULE = parse_settings(
    """
rules:
  - name: custom
    key: referral
    when: referral.received
    expect: referral.triaged
    within: 1d
    opened: "Referral {referral} ({specialty}, {missing}) {{braces}} for {key}"
    expected: "triage by {team!r:>8}"
"""
).detectors[-1]
assert isinstance(RULE, ExpectationDetector)

DETECTORS: list[ExpectationDetector] = [
    ResultOverdue(),
    ResultUnacknowledged(),
    ClinicLetterOverdue(),
    RULE,
]

times = st.one_of(
    st.floats(-86400.0 * 400, 86400.0 * 400, allow_nan=False),
    # next to a minute's end, where rounding to microseconds may change the minute
    st.integers(-10_000, 10_000).map(lambda m: m * 60.0 - 1e-7),
    st.integers(-10_000, 10_000).map(lambda m: m * 60.0 - 0.0000004),
).map(lambda s: T0 + s)

outcomes = st.fixed_dictionaries(
    {
        "outcome": st.sampled_from(["met", "void", "late", "missed", "open"]),
        "opened_at": times,
        "due_after": st.floats(0, 86400.0 * 40),
        "closed_after": st.floats(0, 86400.0 * 40),
        "detected_after": st.floats(-3600.0, 86400.0 * 40),
        "attrs": st.dictionaries(
            st.sampled_from(["site", "specialty", "severity", "test", "priority"]),
            st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none()),
        ),
        "refs": st.dictionaries(
            st.sampled_from(["order", "appointment", "referral", "encounter"]),
            st.text(max_size=6),
        ),
        "key": st.text(max_size=6),
    }
)


def build(d: dict, det: ExpectationDetector) -> Outcome:
    due = d["opened_at"] + d["due_after"]
    closed = due + d["closed_after"] if d["outcome"] in ("met", "late", "void") else None
    return Outcome(
        failure_id="x",
        detector=det.name,
        outcome=d["outcome"],
        key=d["key"],
        patient=None,
        refs=d["refs"],
        opened_at=d["opened_at"],
        due_at=due,
        closed_at=closed,
        detected_at=due + d["detected_after"],
        evidence=[],
        attrs=d["attrs"],
        summary="",
    )


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(DETECTORS), st.lists(outcomes, min_size=1, max_size=30))
def test_summaries_read_as_the_detector_writes_them(
    det: ExpectationDetector, rows: list[dict]
) -> None:
    assert uses_base_summary(det)
    records = [build(d, det) for d in rows]
    closed = np.array([np.nan if o.closed_at is None else o.closed_at for o in records])
    got = expectation_summaries(
        det,
        TextCache(),
        [o.outcome for o in records],
        [o.key for o in records],
        [o.refs for o in records],
        [o.attrs for o in records],
        np.array([o.opened_at for o in records]),
        np.array([o.due_at for o in records]),
        closed,
        np.array([o.detected_at for o in records]),
    )
    assert got == [det.summary(o) for o in records]


def test_a_detector_with_its_own_summary_is_asked_itself() -> None:
    class Custom(ResultOverdue):
        def summary(self, o: Outcome) -> str:
            return "mine"

    assert not uses_base_summary(Custom())
