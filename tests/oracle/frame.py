"""Canonical events as one pandas DataFrame: the input of every oracle detector.

Pulling values out of a million small Python dicts costs far more than any join that
follows, so the frame is built to a *column plan*: each ``patient``, ``refs.<kind>`` and
``attrs.<name>`` column is filled for the event types some enabled detector reads it from
and left missing (``None``) elsewhere. ``id``, ``type`` and ``time`` are always filled.
Values are the events' own Python objects (``object`` dtype), so comparing a column with
a value has exactly the meaning of ``attrs.get(name) == value``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
import pandas as pd

from detectors.errors import EventError
from detectors.events import REF_KINDS, Event, parse_time

__all__ = [
    "BASE_ATTRS",
    "ColumnPlan",
    "EventFrame",
    "build_frame",
    "epoch_of",
    "has_type",
    "is_true",
    "merge_plans",
]

#: The attributes the built-in detectors read; each gets a column, filled per the plan.
BASE_ATTRS: tuple[str, ...] = (
    "priority",
    "test",
    "critical",
    "abnormal",
    "kind",
    "initiated_by",
    "previous_start",
    "start",
    "capacity",
    "site",
    "specialty",
    "clinic",
)

#: Column name (``patient``, ``refs.<kind>``, ``attrs.<name>``) -> the event types whose
#: rows it is filled for.
ColumnPlan = Mapping[str, frozenset[str]]


def merge_plans(*plans: ColumnPlan) -> dict[str, frozenset[str]]:
    """The union of column plans: every column, filled for every type any plan asks for."""
    out: dict[str, frozenset[str]] = {}
    for plan in plans:
        for column, types in plan.items():
            out[column] = out.get(column, frozenset()) | frozenset(types)
    return out


@dataclass(frozen=True)
class EventFrame:
    """De-duplicated events and their frame.

    Row ``i`` of ``table`` is ``events[i]`` (the table keeps a ``RangeIndex``), so a
    detector finds its outcome's refs and attrs on the original event. ``time`` is epoch
    seconds, UTC. ``received`` counts the events given, duplicates included.
    """

    table: pd.DataFrame
    events: list[Event]
    received: int
    plan: ColumnPlan

    @property
    def duplicates(self) -> int:
        """Events given more than once (by ``id``) beyond their first occurrence."""
        return self.received - len(self.events)

    def covers(self, plan: ColumnPlan) -> bool:
        """Whether this frame holds every column of ``plan`` for all the types it asks."""
        return all(types <= self.plan.get(column, frozenset()) for column, types in plan.items())


def build_frame(events: Iterable[Event], plan: ColumnPlan) -> EventFrame:
    """Load ``events`` into a frame filled per ``plan``. Events with an ``id`` seen before
    are dropped (the first occurrence wins, as in the streaming engine)."""
    given = events if isinstance(events, list) else list(events)
    ids = list(map(attrgetter("id"), given))
    if len(set(ids)) == len(ids):
        unique = given
    else:
        # reversed, so that the first occurrence of an id is the value the dict keeps
        first = dict(zip(reversed(ids), reversed(given), strict=True))
        unique = list(reversed(first.values()))
        ids = list(map(attrgetter("id"), unique))
    n = len(unique)
    types = _categorical(list(map(attrgetter("type"), unique)))
    table = pd.DataFrame(
        {
            "id": pd.Series(_objects(ids), dtype=object, copy=False),
            "type": types,
            "time": np.fromiter(map(attrgetter("time"), unique), dtype=np.float64, count=n),
        }
    )
    columns = {
        "patient": np.full(n, None, dtype=object),
        **{f"refs.{kind}": np.full(n, None, dtype=object) for kind in REF_KINDS},
        **{f"attrs.{name}": np.full(n, None, dtype=object) for name in BASE_ATTRS},
    }
    for column in plan:
        columns.setdefault(column, np.full(n, None, dtype=object))
    codes = types.codes
    for code, etype in enumerate(types.categories):
        wanted = [column for column, types_ in plan.items() if etype in types_]
        if not wanted:
            continue
        rows = np.flatnonzero(codes == code)
        these = _pick(unique, rows)
        refs = attrs = None
        for column in wanted:
            source, _, name = column.partition(".")
            if source == "patient":
                values = list(map(attrgetter("patient"), these))
            elif source == "refs":
                refs = refs or list(map(attrgetter("refs"), these))
                values = [r.get(name) for r in refs]
            else:
                attrs = attrs or list(map(attrgetter("attrs"), these))
                values = [a.get(name) for a in attrs]
            columns[column][rows] = _objects(values)
    for column, filled in columns.items():
        table[column] = pd.Series(filled, dtype=object, copy=False)
    return EventFrame(table, unique, len(given), dict(plan))


def _categorical(values: list[str]) -> pd.Categorical:
    # a dict lookup per row is twice as fast as hashing the strings in pd.Categorical
    code_of = {value: code for code, value in enumerate(dict.fromkeys(values))}
    codes = np.fromiter(map(code_of.__getitem__, values), dtype=np.int32, count=len(values))
    return pd.Categorical.from_codes(codes, categories=list(code_of))


def _pick(items: list[Event], rows: np.ndarray) -> list[Event]:
    if len(rows) == 1:
        return [items[int(rows[0])]]
    return list(itemgetter(*rows.tolist())(items))


def _objects(values: list[Any]) -> np.ndarray:
    # fromiter never reads a list-valued attribute as a nested sequence, as np.array would
    return np.fromiter(values, dtype=object, count=len(values))


def epoch_of(values: pd.Series) -> np.ndarray:
    """ISO-8601 timestamps with a UTC offset as epoch seconds (UTC); ``NaN`` for anything
    else (missing, empty, not a string, no offset), as the detectors read ``attrs.start``.

    Each distinct string is parsed once, with the contract's own parser.
    """
    out = np.full(len(values), np.nan)
    is_text = has_type(values, str)
    if not is_text.any():
        return out
    codes, uniques = pd.factorize(values[is_text])
    parsed = np.array([_epoch(v) for v in uniques], dtype=np.float64)
    out[is_text] = parsed[codes]
    return out


def _epoch(text: str) -> float:
    if not text:
        return np.nan
    try:
        return parse_time(text, field_name="attrs")
    except EventError:
        return np.nan


def is_true(values: pd.Series) -> np.ndarray:
    """Where a value *is* ``True`` (the bool, not ``1`` or ``"true"``)."""
    return has_type(values, bool) & values.eq(True).to_numpy()


def has_type(values: pd.Series, cls: type) -> np.ndarray:
    """Where a value is exactly of type ``cls`` (``bool`` is not ``int`` here)."""
    return values.map(type).eq(cls).to_numpy()
