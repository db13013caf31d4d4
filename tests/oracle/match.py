"""Row-wise conditions as column operations: attribute filters, event patterns and
per-event thresholds with overrides."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from detectors.contract import Thresholds
from detectors.rules import EventPattern

__all__ = ["attr_equals", "attrs_match", "pattern_mask", "per_row", "when_keys"]

_SCALARS = (str, int, float, bool)


def attr_equals(table: pd.DataFrame, name: str, value: Any) -> np.ndarray:
    """Rows where ``attrs.get(name) == value`` (Python equality: ``1 == 1.0 == True``)."""
    column = table[f"attrs.{name}"]
    if value is None:
        return column.isna().to_numpy()  # a missing attribute reads as None too
    if isinstance(value, _SCALARS):
        return (column == value).to_numpy()
    # lists and mappings in a rules file: rare, so compared one by one
    return np.fromiter((v == value for v in column), dtype=bool, count=len(column))


def attrs_match(table: pd.DataFrame, when: Mapping[str, Any]) -> np.ndarray:
    """Rows whose attrs hold every ``name: value`` of ``when``."""
    mask = np.ones(len(table), dtype=bool)
    for name, value in when.items():
        mask &= attr_equals(table, name, value)
    return mask


def pattern_mask(table: pd.DataFrame, patterns: Iterable[EventPattern]) -> np.ndarray:
    """Rows matching any of ``patterns`` (type and attrs), as ``EventPattern.matches``."""
    mask = np.zeros(len(table), dtype=bool)
    types = table["type"]
    for p in patterns:
        mask |= (types == p.type).to_numpy() & attrs_match(table, p.attrs)
    return mask


def per_row(thresholds: Thresholds, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each named threshold (seconds) for every row, as ``Thresholds.for_event`` gives it:
    the defaults, replaced wherever an override's ``when`` holds, later overrides last."""
    values = {name: np.full(len(table), seconds) for name, seconds in thresholds.defaults.items()}
    for when, replaced in thresholds.overrides:
        mask = attrs_match(table, when)
        for name, seconds in replaced.items():
            values.setdefault(name, np.full(len(table), np.nan))[mask] = seconds
    return values


def when_keys(thresholds: Thresholds) -> set[str]:
    """The attribute names the overrides of ``thresholds`` test."""
    return {name for when, _ in thresholds.overrides for name in when}
