"""SPC: the reference numbers of NHSRplotthedots' own tests, and the rules' edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.errors import ConfigError
from streams.qi.spc import (
    assurance,
    laney_p_prime,
    segments_from_changes,
    summarise,
    xmr,
)

# The 20 values of the reference tests (rnorm(20) with set.seed(123) in R).
VALUES = [
    -0.56047565,
    -0.23017749,
    1.55870831,
    0.07050839,
    0.12928774,
    1.71506499,
    0.46091621,
    -1.26506123,
    -0.68685285,
    -0.44566197,
    1.22408180,
    0.35981383,
    0.40077145,
    0.11068272,
    -0.55584113,
    1.78691314,
    0.49785048,
    -1.96661716,
    0.70135590,
    -0.47279141,
]


def limits(chart: pd.DataFrame, row: int = 0) -> tuple[float, float, float]:
    r = chart.iloc[row]
    return float(r["centre"]), float(r["lower"]), float(r["upper"])


def test_reference_limits_of_the_twenty_values() -> None:
    assert limits(xmr(VALUES)) == pytest.approx((0.1416238, -3.01138, 3.294627), abs=1e-6)


def test_reference_limits_with_an_outlier_screened_and_not() -> None:
    values = list(VALUES)
    values[14] = 10.0  # "value 15" counted from 1
    assert limits(xmr(values)) == pytest.approx((0.6694159, -2.383666, 3.722497), abs=1e-6)
    assert limits(xmr(values, screen_outliers=False)) == pytest.approx(
        (0.6694159, -4.596625, 5.935457), abs=1e-6
    )


def test_reference_limits_of_each_half() -> None:
    first = limits(xmr(VALUES[:10]))
    last = limits(xmr(VALUES[10:]))
    assert first == pytest.approx((0.0746, -2.60, 2.75), abs=0.006)
    assert last == pytest.approx((0.209, -3.28, 3.70), abs=0.006)


def test_a_rebase_gives_each_half_its_own_limits() -> None:
    chart = xmr(VALUES, segment=[0] * 10 + [1] * 10)
    assert limits(chart, 0) == pytest.approx(limits(xmr(VALUES[:10])))
    assert limits(chart, 19) == pytest.approx(limits(xmr(VALUES[10:])))
    # the moving range across the boundary is no part of either half
    assert chart["trial"].all()  # 10 points each: fewer than 13


def test_reference_trend_flags_only_the_seven_rising_points() -> None:
    chart = xmr([2, 1, 2, 3, 4, 5, 6, 7, 3])
    assert chart["rule"].tolist() == [""] + ["trend"] * 7 + [""]
    assert chart["direction"].tolist()[1:8] == [1] * 7


def test_six_rising_points_are_no_trend_and_a_tie_breaks_one() -> None:
    assert (xmr([1, 2, 3, 4, 5, 6, 1, 1, 1])["rule"] != "trend").all()
    assert (xmr([1, 2, 3, 4, 4, 5, 6, 7, 1])["rule"] != "trend").all()


# A noisy baseline of 12 points (mean 1, AMR 2: limits 1 ± 5.32, near band beyond ± 3.55)
# that the tests below fix the limits on, so what follows it stays inside the limits.
BASE = [2.0, 0.0] * 6


def test_a_shift_needs_seven_on_one_side_and_a_point_on_the_mean_breaks_it() -> None:
    above = xmr([*BASE, *[1.5] * 7], baseline=12)
    assert limits(above) == pytest.approx((1.0, 1.0 - 5.32, 1.0 + 5.32))
    assert above["rule"].tolist() == [""] * 12 + ["shift"] * 7
    assert (above["variation"].iloc[12:] == "concern").all()  # more failures: worse
    below = xmr([*BASE, *[0.5] * 7], baseline=12)
    assert (below["variation"].iloc[12:] == "improvement").all()
    six = xmr([*BASE, *[1.5] * 6, 0.5], baseline=12)
    assert (six["rule"] == "").all()
    broken = xmr([*BASE, *[1.5] * 3, 1.0, *[1.5] * 3], baseline=12)
    assert (broken["rule"] == "").all()


def test_two_of_three_near_a_limit_on_one_side() -> None:
    base = [0.0, 1.0] * 8  # mean 0.5, AMR 1: limits 0.5 ± 2.66, near band beyond ± 1.773
    values = [*base, 2.5, 0.6, 2.4, 0.4, 0.6]
    chart = xmr(values, baseline=16)
    assert limits(chart) == pytest.approx((0.5, 0.5 - 2.66, 0.5 + 2.66))
    rules = chart["rule"].tolist()
    assert rules[16] == "two of three" and rules[18] == "two of three"
    assert rules[17] == ""  # in the window, but not itself near a limit
    # near a limit on opposite sides does not count
    opposite = xmr([*base, 2.5, 0.6, -1.5, 0.4], baseline=16)
    assert (opposite["rule"] == "").all()


def test_outside_limits_outranks_the_trend_it_ends() -> None:
    chart = xmr([*BASE, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 9.0], baseline=12)
    # the seven rising points are also seven above the mean: trend outranks shift
    # the rise starts at the baseline's last point (0.0): eight rising points in all
    assert chart["rule"].iloc[11:].tolist() == ["trend"] * 7 + ["outside limits"]
    assert (chart["variation"].iloc[11:] == "concern").all()
    assert (chart["rule"].iloc[:11] == "").all()


def test_a_falling_trend_above_the_mean_is_an_improvement() -> None:
    # all seven are above the mean (a shift, a concern), but the trend outranks the shift
    # and falling failures are better
    chart = xmr([*BASE, 4.0, 3.5, 3.0, 2.5, 2.0, 1.5, 1.2], baseline=12)
    assert chart["rule"].iloc[12:].tolist() == ["trend"] * 7
    assert (chart["variation"].iloc[12:] == "improvement").all()
    assert chart["direction"].iloc[12:].tolist() == [-1] * 7


def test_short_series() -> None:
    assert xmr([]).empty
    one = xmr([0.3])
    assert one["centre"].iloc[0] == pytest.approx(0.3)
    assert np.isnan(one["upper"].iloc[0]) and one["rule"].iloc[0] == ""
    two = xmr([0.2, 0.4])
    assert limits(two) == pytest.approx((0.3, 0.3 - 2.66 * 0.2, 0.3 + 2.66 * 0.2))
    assert bool(two["trial"].iloc[0])


def test_a_constant_series_has_no_special_cause_and_screening_leaves_it() -> None:
    chart = xmr([0.05] * 20)
    assert limits(chart) == pytest.approx((0.05, 0.05, 0.05))
    assert (chart["rule"] == "").all()
    assert not chart["trial"].any()


def test_the_baseline_fixes_the_limits_and_is_at_least_twelve_points() -> None:
    values = VALUES + [5.0] * 6
    fixed = xmr(values, baseline=20)
    assert limits(fixed) == pytest.approx(limits(xmr(VALUES)))
    assert (fixed["rule"].iloc[20:] == "outside limits").all()
    with pytest.raises(ConfigError, match="at least 12"):
        xmr(values, baseline=11)


def test_neutral_direction_and_increase() -> None:
    values = [0.0] * 12 + [9.0]
    assert xmr(values, improvement="neutral")["variation"].iloc[-1] == "neutral"
    assert xmr(values, improvement="increase")["variation"].iloc[-1] == "improvement"
    s = summarise(xmr(values), None, "decrease")
    assert s is not None and s.icon == "special cause concern (high)"


def test_assurance_against_a_target() -> None:
    assert assurance(0.10, 0.02, 0.08, "decrease") == "consistently passes"
    assert assurance(0.01, 0.02, 0.08, "decrease") == "consistently fails"
    assert assurance(0.05, 0.02, 0.08, "decrease") == "hit and miss"
    assert assurance(0.10, 0.02, 0.08, "increase") == "consistently fails"
    assert assurance(None, 0.02, 0.08, "decrease") == ""


def test_segments_start_at_the_first_point_on_or_after_a_change() -> None:
    dates = list(pd.date_range("2026-01-05", periods=6, freq="7D", tz="Europe/London"))
    change = pd.Timestamp("2026-01-14", tz="Europe/London")  # a Wednesday
    assert segments_from_changes(dates, [change]).tolist() == [0, 0, 1, 1, 1, 1]
    before, after = pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2027-01-01", tz="UTC")
    assert segments_from_changes(dates, [before, after]).tolist() == [0] * 6
    assert segments_from_changes(dates, [change, change]).tolist() == [0, 0, 1, 1, 1, 1]


def test_p_prime_with_no_overdispersion_is_the_classical_p_chart() -> None:
    # equal z spread of exactly 1.128 between neighbours gives sigma_z = 1
    n = np.full(20, 400.0)
    pbar = 0.1
    sigma = np.sqrt(pbar * (1 - pbar) / 400)
    z = np.array([0.564, -0.564] * 10)
    x = (pbar + z * sigma) * n
    chart = laney_p_prime(x, n)
    assert chart["centre"].iloc[0] == pytest.approx(pbar)
    assert chart["upper"].iloc[0] == pytest.approx(pbar + 3 * sigma)
    assert chart["near_lower"].iloc[0] == pytest.approx(pbar - 2 * sigma)


def test_p_prime_limits_vary_with_the_denominator_and_clamp_at_zero() -> None:
    x = np.array([5, 1, 30, 2, 6, 4, 8, 3, 5, 7, 2, 9, 4], dtype=float)
    n = np.array([100, 10, 500, 20, 100, 80, 120, 60, 90, 110, 30, 150, 70], dtype=float)
    chart = laney_p_prime(x, n)
    pbar = x.sum() / n.sum()
    assert chart["centre"].iloc[0] == pytest.approx(pbar)
    width = chart["upper"] - chart["centre"]
    assert width.iloc[1] > width.iloc[0] > width.iloc[2]  # n 10, 100, 500
    assert (chart["lower"] >= 0).all() and (chart["upper"] <= 1).all()
    none = laney_p_prime([0, 0, 0], [10, 20, 30])
    assert (none["upper"] == 0).all() and (none["rule"] == "").all()
    with pytest.raises(ValueError, match="opportunities > 0"):
        laney_p_prime([1, 0], [10, 0])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=40),
    st.floats(-100, 100, allow_nan=False),
)
def test_property_limits_move_with_the_data(values: list[float], offset: float) -> None:
    chart = xmr(values)
    moved = xmr([v + offset for v in values])
    for col in ("centre", "lower", "upper"):
        assert moved[col].to_numpy() == pytest.approx(chart[col].to_numpy() + offset, abs=1e-6)
    assert (chart["lower"] <= chart["near_lower"]).all()
    assert (chart["near_lower"] <= chart["centre"]).all()
    assert (chart["centre"] <= chart["near_upper"]).all()
    assert (chart["near_upper"] <= chart["upper"]).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 20), min_size=2, max_size=30),
    st.integers(1, 29),
)
def test_property_no_rule_crosses_a_segment_boundary(values: list[int], cut: int) -> None:
    cut = min(cut, len(values) - 1)
    seg = [0] * cut + [1] * (len(values) - cut)
    whole = xmr(values, segment=seg)
    left, right = xmr(values[:cut]), xmr(values[cut:])
    assert whole["rule"].tolist() == left["rule"].tolist() + right["rule"].tolist()
    assert whole["centre"].to_numpy() == pytest.approx(
        np.concatenate([left["centre"].to_numpy(), right["centre"].to_numpy()])
    )
