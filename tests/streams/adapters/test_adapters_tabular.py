"""CSV and Parquet event logs -> canonical events, with a site column mapping."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from adapters_support import convert, iso

from streams.adapters import INVALID, mapping_from_text

CSV = b"""id,type,time,patient,refs.appointment,attrs.start,attrs.initiated_by
e-1,appointment.booked,2026-03-02T09:30:00+00:00,P000123,A-88,2026-03-09T09:00:00+00:00,
e-2,appointment.rescheduled,2026-03-02T10:15:00,P000123,A-88,2026-07-16 09:00,hospital
e-3,appointment.cancelled,,P000123,A-88,,
e-4,appointment.booked,2026-03-02T09:30:00+00:00,P000124,A-89,tomorrow,
"""


def test_canonical_columns_are_picked_up() -> None:
    events, rejected = convert(CSV, "csv")
    assert [(e.id, e.type, iso(e), e.patient, e.refs, e.attrs) for e in events] == [
        (
            "e-1",
            "appointment.booked",
            "2026-03-02T09:30:00+00:00",
            "P000123",
            {"appointment": "A-88"},
            {"start": "2026-03-09T09:00:00+00:00"},
        ),
        (
            "e-2",
            "appointment.rescheduled",
            "2026-03-02T10:15:00+00:00",  # no offset: London, GMT in March
            "P000123",
            {"appointment": "A-88"},
            # no offset: London, BST in July
            {"start": "2026-07-16T08:00:00+00:00", "initiated_by": "hospital"},
        ),
    ]
    assert events[0].source == {"format": "csv", "row": 1}
    assert [(r.location, r.kind) for r in rejected] == [("row 3", INVALID), ("row 4", INVALID)]
    assert "no event time" in rejected[0].reason
    assert "attrs.start" in rejected[1].reason and "'tomorrow'" in rejected[1].reason


def test_site_column_mapping_and_type_values(tmp_path: Path) -> None:
    mapping = mapping_from_text(
        """
tabular:
  columns:
    id: null
    type: Activity
    time: Timestamp
    patient: Case
    refs: {order: OrderNo}
    attrs: {test: Test, priority: Urgency, abnormal: Flag, capacity: Slots}
  type_values:
    Order placed: order.placed
    Result: result.reported
  csv:
    delimiter: ";"
"""
    )
    data = (
        b"Case;Activity;Timestamp;OrderNo;Test;Urgency;Flag;Slots\n"
        b"C1;Order placed;02/03/2026 09:30;O-1;CRP;stat;;\n"
        b"C1;Order placed;2026-03-02T09:30:00Z;O-1;CRP;stat;;\n"
        b"C1;Result;2026-03-02T10:10:00Z;O-1;CRP;;Y;\n"
        b"C1;Result;2026-03-02T10:10:00Z;O-1;CRP;;perhaps;\n"
        b"C2;session.capacity;2026-03-02T08:00:00Z;;;;;12\n"
        b"C2;session.capacity;2026-03-02T08:00:00Z;;;;;12.5\n"
        b"C3;Order placed;2026-03-02T09:30:00Z;O-3;CRP;stat;;;extra;fields\n"
    )
    path = tmp_path / "log.csv"
    path.write_bytes(data)
    events, rejected = convert(path, None, mapping)
    assert [(e.type, e.refs, e.attrs) for e in events] == [
        ("order.placed", {"order": "O-1"}, {"test": "CRP", "priority": "stat"}),
        ("result.reported", {"order": "O-1"}, {"test": "CRP", "abnormal": True}),
        ("session.capacity", {}, {"capacity": 12}),
    ]
    assert all(e.id.startswith("row-") for e in events)
    assert [r.location for r in rejected] == ["row 1", "row 4", "row 6", "row 7"]
    assert "not an ISO-8601" in rejected[0].reason
    assert "must be true or false" in rejected[1].reason
    assert "whole number" in rejected[2].reason
    assert "10 fields but the header has 8" in rejected[3].reason
    assert rejected[3].excerpt.startswith("C3;") or rejected[3].excerpt.startswith("C3,")


def test_hashed_ids_are_stable() -> None:
    data = b"type,time,refs.order\norder.placed,2026-03-02T09:30:00Z,O-1\n"
    mapping = mapping_from_text("tabular:\n  columns:\n    id: null\n")
    first, _ = convert(data, "csv", mapping)
    second, _ = convert(data + b"order.placed,2026-03-02T09:30:00Z,O-1\n", "csv", mapping)
    assert first[0].id == second[0].id == second[1].id


def test_missing_mapped_column_rejects_the_file() -> None:
    events, rejected = convert(b"kind,when\nx,y\n", "csv")
    assert events == []
    assert [(r.location, r.kind) for r in rejected] == [("file", INVALID)]
    assert (
        "column 'type' (tabular.columns.type) is not in the file; it has: kind, when"
        in rejected[0].reason
    )


def test_broken_csv_keeps_earlier_rows() -> None:
    data = b'type,time\norder.placed,2026-03-02T09:30:00Z\n"order.placed,2026-03-02\n'
    events, rejected = convert(data, "csv")
    assert len(events) == 1
    assert (
        rejected[-1].location == "after row 1"
        and "cannot read this csv file further" in rejected[-1].reason
    )


def test_parquet_with_typed_columns(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (in the test extras)")
    frame = pd.DataFrame(
        {
            "id": ["e-1", "e-2", "e-3"],
            "type": ["order.placed", "result.reported", "order.placed"],
            "time": pd.to_datetime(["2026-07-02 09:30", "2026-07-02 10:00", None]),  # naive
            "patient": [123, 123, 124],
            "refs.order": ["O-1", "O-1", "O-2"],
            "attrs.abnormal": [None, True, None],
            "attrs.capacity": [None, None, 4.0],
        }
    )
    path = tmp_path / "log.parquet"
    frame.to_parquet(path)
    events, rejected = convert(path, None)
    assert [(e.id, iso(e), e.patient, e.refs, e.attrs) for e in events] == [
        ("e-1", "2026-07-02T08:30:00+00:00", "123", {"order": "O-1"}, {}),  # BST
        ("e-2", "2026-07-02T09:00:00+00:00", "123", {"order": "O-1"}, {"abnormal": True}),
    ]
    assert events[0].source == {"format": "parquet", "row": 1}
    assert [r.location for r in rejected] == ["row 3"]
    aware = frame.assign(time=pd.to_datetime(["2026-07-02 09:30"] * 3).tz_localize("UTC"))
    buffer = io.BytesIO()
    aware.to_parquet(buffer)
    events, _ = convert(buffer.getvalue(), "parquet")
    assert iso(events[0]) == "2026-07-02T09:30:00+00:00"


def test_not_parquet() -> None:
    pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (in the test extras)")
    events, rejected = convert(b"PAR1 not really", "parquet")
    assert events == [] and rejected[0].location == "file"


def test_a_csv_stream_without_a_format_is_read_as_a_table() -> None:
    """Told from its first bytes, a CSV on standard input is read as a table (the format
    table says tables are read whole), as the same bytes from a file are."""
    import io

    from detectors.events import Event
    from streams.adapters import iter_records, iter_stream

    from_stream = list(iter_stream(io.BytesIO(CSV)))
    from_bytes = list(iter_records(CSV))
    assert [type(r).__name__ for r in from_stream] == [type(r).__name__ for r in from_bytes]
    assert [r.to_dict() for r in from_stream if isinstance(r, Event)] == [
        r.to_dict() for r in from_bytes if isinstance(r, Event)
    ]
    assert any(isinstance(r, Event) for r in from_stream)
