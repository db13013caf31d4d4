"""CSV and Parquet event logs (one row per event) -> canonical events.

Which column holds the id, type, time, patient, refs and attrs comes from the site
mapping (``tabular``); columns named ``refs.<kind>`` and ``attrs.<name>`` are taken as
such without being listed. Rows are numbered from 1 after the header (blank CSV lines
are not counted); a bad row is a ``Rejected`` naming its row and what is wrong, and
reading goes on. Times without an offset are read in the mapping's timezone (default
Europe/London); events carry UTC epoch seconds.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
import pandas as pd

from detectors.errors import InputError
from detectors.events import Event
from streams.adapters.mapping import SiteMapping, TabularSettings, default_mapping
from streams.adapters.records import INVALID, Record, Rejected, excerpt
from streams.adapters.times import SiteClock, format_time

__all__ = ["iter_table"]

_CHUNK_ROWS = 10_000
_BAD_ROW = "\x00carewatch-bad-row"
_BOOL_ATTRS = frozenset({"abnormal", "critical"})
_INT_ATTRS = frozenset({"capacity"})
_TIME_ATTRS = frozenset({"start", "previous_start"})
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})

#: A file path, or the file's bytes.
Source = str | os.PathLike[str] | bytes


def iter_table(
    source: Source,
    fmt: str,
    mapping: SiteMapping | None = None,
    *,
    origin: str = "<table>",
) -> Iterator[Record]:
    """Events and rejections from a CSV or Parquet event log (``fmt`` ``"csv"`` or
    ``"parquet"``). Never raises for bad content: a file that cannot be read at all
    (missing columns, not Parquet) is one ``Rejected`` at location ``"file"``. Event
    times are UTC epoch seconds; times without an offset are read in
    ``mapping.timezone``."""
    mapping = mapping or default_mapping()
    rows = _csv_rows(source, mapping.tabular) if fmt == "csv" else _parquet_rows(source)
    columns: _Columns | None = None
    number = 0
    try:
        for header, chunk in rows:
            if columns is None:
                columns = _Columns.resolve(header, mapping.tabular)
            for row in chunk:
                number += 1
                yield _row_record(row, number, columns, mapping, fmt, origin)
    except InputError as exc:
        yield Rejected(origin, "file" if columns is None else f"after row {number}", str(exc))
    except Exception as exc:  # a broken file must cost the rest of this file, not the run
        where = "file" if number == 0 else f"after row {number}"
        yield Rejected(
            origin, where, f"cannot read this {fmt} file further: {type(exc).__name__}: {exc}"
        )


@dataclass(frozen=True)
class _Columns:
    id: str | None
    type: str
    time: str
    patient: str | None
    refs: dict[str, str]
    attrs: dict[str, str]

    @classmethod
    def resolve(cls, header: list[str], settings: TabularSettings) -> _Columns:
        present = set(header)
        for role, column in (("type", settings.type_column), ("time", settings.time_column)):
            if column not in present:
                raise InputError(
                    f"column {column!r} (tabular.columns.{role}) is not in the file; "
                    f"it has: {', '.join(header) or '(no columns)'}"
                )
        refs = {c.removeprefix("refs."): c for c in header if c.startswith("refs.")}
        attrs = {c.removeprefix("attrs."): c for c in header if c.startswith("attrs.")}
        for table, mapped, what in (
            (refs, settings.ref_columns, "refs"),
            (attrs, settings.attr_columns, "attrs"),
        ):
            for name, column in mapped.items():
                if column not in present:
                    raise InputError(
                        f"column {column!r} (tabular.columns.{what}.{name}) is not in the file"
                    )
                table[name] = column
        return cls(
            id=settings.id_column if settings.id_column in present else None,
            type=settings.type_column,
            time=settings.time_column,
            patient=settings.patient_column if settings.patient_column in present else None,
            refs=refs,
            attrs=attrs,
        )


def _csv_rows(
    source: Source, settings: TabularSettings
) -> Iterator[tuple[list[str], list[dict[str, Any]]]]:
    done = 0
    try:
        for header, rows in _csv_chunks(source, settings, _CHUNK_ROWS):
            yield header, rows
            done += len(rows)
    except Exception:
        # A broken file fails a whole chunk; read it again row by row so that every row
        # before the break still counts, then fail where it breaks.
        seen = 0
        for header, rows in _csv_chunks(source, settings, 1):
            seen += len(rows)
            if seen > done:
                yield header, rows
        raise


def _csv_chunks(
    source: Source, settings: TabularSettings, chunk_rows: int
) -> Iterator[tuple[list[str], list[dict[str, Any]]]]:
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    width: list[int] = [0]

    def bad_line(fields: list[str]) -> list[str]:
        # Keep the row's place (so later row numbers stay right) but mark it bad.
        return [_BAD_ROW + orjson.dumps(fields).decode()] + [""] * (width[0] - 1)

    # header=None: the header line is read as the first row, so it fixes the width and
    # a longer first data row is a bad line (with a header, pandas would silently take
    # its extra fields for an index, or truncate them).
    reader = pd.read_csv(
        handle,
        header=None,
        dtype=str,
        keep_default_na=False,
        na_values=[],
        sep=settings.delimiter,
        encoding=settings.encoding,
        encoding_errors="replace",
        engine="python",
        index_col=False,
        on_bad_lines=bad_line,
        chunksize=chunk_rows,
    )
    header: list[str] | None = None
    with reader:
        for frame in reader:
            rows = frame.values.tolist()
            if header is None:
                header = [str(c).strip() for c in rows.pop(0)]
                width[0] = len(header)
                if len(set(header)) != len(header):
                    raise InputError(f"the header names a column twice: {', '.join(header)}")
            yield header, [dict(zip(header, row, strict=False)) for row in rows]


def _parquet_rows(source: Source) -> Iterator[tuple[list[str], list[dict[str, Any]]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("reading Parquet needs pyarrow: pip install pyarrow") from None
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    parquet = pq.ParquetFile(handle)
    header = [str(name) for name in parquet.schema_arrow.names]
    empty = True
    for batch in parquet.iter_batches(batch_size=_CHUNK_ROWS):
        empty = False
        yield header, batch.to_pandas().to_dict("records")
    if empty:
        yield header, []


def _row_record(
    row: dict[str, Any], number: int, columns: _Columns, mapping: SiteMapping, fmt: str, origin: str
) -> Record:
    location = f"row {number}"
    try:
        return _row_event(row, number, columns, mapping, fmt)
    except InputError as exc:
        return Rejected(origin, location, str(exc), excerpt(_dump(row)), INVALID)
    except Exception as exc:  # a bug must cost one row, not the run
        return Rejected(
            origin, location, f"internal error: {type(exc).__name__}: {exc}", excerpt(_dump(row))
        )


def _row_event(
    row: dict[str, Any], number: int, columns: _Columns, mapping: SiteMapping, fmt: str
) -> Event:
    bad = _bad_fields(row)
    if bad is not None:
        raise InputError(f"the row has {len(bad)} fields but the header has {len(row)}")
    clock = mapping.clock
    raw_type = _text(row.get(columns.type))
    if not raw_type:
        raise InputError(f"no event type in column {columns.type!r}")
    event_type = mapping.tabular.type_values.get(raw_type, raw_type)
    time = _time(row.get(columns.time), clock, f"time (column {columns.time!r})")
    if time is None:
        raise InputError(f"no event time in column {columns.time!r}")
    patient = _text(row.get(columns.patient)) if columns.patient else None
    refs = {name: text for name, col in columns.refs.items() if (text := _text(row.get(col)))}
    attrs: dict[str, Any] = {}
    for name, col in columns.attrs.items():
        value = _attr(name, row.get(col), clock, col)
        if value is not None:
            attrs[name] = value
    event_id = _text(row.get(columns.id)) if columns.id else None
    if not event_id:
        event_id = _row_hash(event_type, time, patient, refs, attrs)
    return Event(
        event_id, event_type, time, patient or None, refs, attrs, {"format": fmt, "row": number}
    )


def _bad_fields(row: dict[str, Any]) -> list[str] | None:
    """For a row pandas could not split to the header's width: its fields."""
    for value in row.values():
        if isinstance(value, str) and value.startswith(_BAD_ROW):
            fields = orjson.loads(value.removeprefix(_BAD_ROW))
            return [str(f) for f in fields] if isinstance(fields, list) else []
    return None


def _missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _text(value: Any) -> str | None:
    """A cell as an id-like string: numbers without a spurious ``.0``."""
    if _missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip() or None
    return str(value).strip() or None


def _time(value: Any, clock: SiteClock, what: str) -> float | None:
    if _missing(value):
        return None
    if isinstance(value, datetime):
        return clock.local(value.to_pydatetime() if isinstance(value, pd.Timestamp) else value)
    if isinstance(value, date):
        return clock.iso(value.isoformat(), what)
    if isinstance(value, str):
        return clock.iso(value, what)
    raise InputError(f"{what} must be an ISO-8601 text or a timestamp, got {value!r}")


def _attr(name: str, value: Any, clock: SiteClock, column: str) -> Any:
    if _missing(value):
        return None
    if name in _TIME_ATTRS:
        seconds = _time(value, clock, f"attrs.{name} (column {column!r})")
        return None if seconds is None else format_time(seconds)
    if name in _BOOL_ATTRS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise InputError(f"attrs.{name} (column {column!r}) must be true or false, got {value!r}")
    if name in _INT_ATTRS:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not number.is_integer():
            raise InputError(
                f"attrs.{name} (column {column!r}) must be a whole number, got {value!r}"
            )
        return int(number)
    if isinstance(value, datetime | date):
        return format_time(_time(value, clock, f"attrs.{name}") or 0.0)
    if hasattr(value, "item"):  # numpy scalars from Parquet
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool):
        return value.strip() if isinstance(value, str) else value
    return str(value)


def _row_hash(
    event_type: str, time: float, patient: str | None, refs: dict[str, str], attrs: dict[str, Any]
) -> str:
    # Without an id column the row's content is its identity: the same row read twice
    # (or from two exports) is one event.
    body = orjson.dumps(
        [event_type, format_time(time), patient, refs, attrs], option=orjson.OPT_SORT_KEYS
    )
    return "row-" + hashlib.sha256(body).hexdigest()[:20]


def _dump(row: dict[str, Any]) -> str:
    bad = _bad_fields(row)
    if bad is not None:
        return ",".join(bad)
    return orjson.dumps(row, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
