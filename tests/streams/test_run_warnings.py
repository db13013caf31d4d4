"""A run must not look fine when its input cannot support it: the warnings and the exit
code of ``carewatch run`` for rejected, refused and never-linking input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.cli import main


def write(path: Path, rows: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" if isinstance(r, dict) else r for r in rows))
    return path


def order(i: int, day: int = 2) -> dict[str, Any]:
    return {
        "id": f"o{i}",
        "type": "order.placed",
        "time": f"2026-03-{day:02d}T09:{i % 60:02d}:00Z",
        "patient": f"P{i}",
        "refs": {"order": f"O{i}"},
        "attrs": {"priority": "stat"},
    }


def run(tmp_path: Path, rows: list[Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = write(tmp_path / "in.jsonl", rows)
    code = main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet",
                 "--as-of", "2026-03-20T00:00:00Z"])  # fmt: skip
    return code, capsys.readouterr().err


def test_a_run_where_nothing_became_an_event_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(tmp_path, [b"not json\n", b'{"id": 7}\n'], capsys)
    assert code == 1
    assert "not one input record became an event" in err


def test_many_rejects_are_named_with_their_main_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows: list[Any] = [order(i) for i in range(10)] + [b"not json\n"] * 2
    code, err = run(tmp_path, rows, capsys)
    assert code == 0
    assert "2 of 12 input records (17%) were rejected (mostly: invalid 2)" in err


def test_a_detector_failing_nearly_always_gets_a_likely_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(tmp_path, [order(i) for i in range(25)], capsys)
    assert code == 0
    assert "result-overdue: 25 of 25 opportunities failed (100%)" in err
    assert "never link" in err


def test_documents_present_but_no_discharge_summaries_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"id": "d1", "type": "encounter.discharged", "time": "2026-03-02T10:00:00Z",
         "patient": "P1", "refs": {"encounter": "E1"}},
        {"id": "l1", "type": "document.sent", "time": "2026-03-02T12:00:00Z",
         "patient": "P1", "refs": {"encounter": "E1"}, "attrs": {"kind": "clinic-letter"}},
    ]  # fmt: skip
    _, err = run(tmp_path, rows, capsys)
    assert "discharge-summary-overdue: the input has documents (clinic-letter)" in err


def test_events_beyond_the_horizon_and_id_conflicts_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        order(1, day=10),
        {**order(2, day=10), "id": "o1"},  # another event under a used id
        order(3, day=10),
        {**order(4), "time": "2026-01-01T09:00:00Z"},  # far behind the others
    ]
    _, err = run(tmp_path, rows, capsys)
    assert "1 events were further behind the newest events than the correction horizon" in err
    assert "1 events reused an id of a different event" in err
    dead = [
        orjson.loads(x) for x in (tmp_path / "out" / "rejected.jsonl").read_bytes().splitlines()
    ]
    assert sorted(d["kind"] for d in dead) == ["beyond-horizon", "id-conflict"]


def test_changes_with_no_initiator_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"id": "c1", "type": "appointment.cancelled", "time": "2026-03-02T10:00:00Z",
         "patient": "P1", "refs": {"appointment": "A1"}},
    ]  # fmt: skip
    _, err = run(tmp_path, rows, capsys)
    assert "1 appointment changes did not say who asked for them" in err
