"""Reading the ledger: latest record per failure_id, across files, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.errors import InputError
from streams.qi.ledger import read_ledger
from tests.streams.qi.helpers import fid, record, write_ledger


def test_latest_record_wins_across_files_and_gzip(tmp_path: Path) -> None:
    first = write_ledger(
        tmp_path / "run1.jsonl",
        [
            record(fid(1), "missed", "2026-03-02T10:00:00+00:00"),
            record(
                fid(2), "open", "2026-03-03T10:00:00+00:00", detected="2026-03-03T09:00:00+00:00"
            ),
            record(fid(3), "met", "2026-03-04T10:00:00+00:00"),
        ],
    )
    second = write_ledger(
        tmp_path / "run2.jsonl.gz",
        [
            # the amendment: decided later, same failure_id
            record(
                fid(1),
                "late",
                "2026-03-02T10:00:00+00:00",
                detected="2026-03-02T12:00:00+00:00",
                amended_from="missed",
            ),
            record(fid(2), "met", "2026-03-03T10:00:00+00:00"),
            record(fid(3), "met", "2026-03-04T10:00:00+00:00"),  # re-sent: counted once
        ],
    )
    for order in ([first, second], [second, first]):
        ledger = read_ledger(order)
        got = dict(zip(ledger.frame["failure_id"], ledger.frame["outcome"], strict=True))
        assert got == {1: "late", 2: "met", 3: "met"}
        assert ledger.records_read == 6 and ledger.superseded == 3


def test_a_run_directory_brings_its_open_opportunities(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_ledger(run / "outcomes.jsonl", [record(fid(1), "met", "2026-03-02T10:00:00+00:00")])
    write_ledger(run / "open.jsonl", [record(fid(2), "open", "2026-03-09T10:00:00+00:00")])
    write_ledger(run / "failures.jsonl", [{"status": "missed"}])  # not part of the ledger
    ledger = read_ledger([run])
    assert sorted(ledger.frame["outcome"]) == ["met", "open"]
    assert str(ledger.horizon) == "2026-03-09 10:00:00+00:00"


def test_equal_times_a_decided_record_beats_an_open_one(tmp_path: Path) -> None:
    t = "2026-03-02T10:00:00+00:00"
    path = write_ledger(tmp_path / "l.jsonl", [record(fid(7), "met", t), record(fid(7), "open", t)])
    assert read_ledger([path]).frame["outcome"].tolist() == ["met"]


def test_ids_that_are_not_hex_work_too(tmp_path: Path) -> None:
    path = write_ledger(
        tmp_path / "l.jsonl",
        [
            record("rule-A", "missed", "2026-03-02T10:00:00+00:00"),
            record("rule-A", "met", "2026-03-02T10:00:00+00:00", detected="2026-03-05T00:00:00Z"),
            record("x", "met", "2026-03-02T10:00:00+00:00"),
        ],
    )
    frame = read_ledger([path]).frame
    assert dict(zip(frame["failure_id"], frame["outcome"], strict=True)) == {
        "rule-A": "met",
        "x": "met",
    }


def test_a_violation_without_deadline_counts_when_it_happened(tmp_path: Path) -> None:
    rec = record(
        fid(1),
        "violation",
        None,
        opened="2026-03-05T08:00:00+00:00",
        detector="contact-after-death",
    )
    frame = read_ledger([write_ledger(tmp_path / "l.jsonl", [rec])]).frame
    assert str(frame["due"].iloc[0]) == "2026-03-05 08:00:00+00:00"
    assert frame["site"].iloc[0] == "north"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"failure_id": "1"\n', "line 4: not JSON"),
        (b"[1, 2]\n", "line 4: not a JSON object"),
        (
            b'{"detector": "x", "outcome": "met", "due_at": "2026-03-02T00:00:00Z", '
            b'"detected_at": "2026-03-02T00:00:00Z"}\n',
            "no failure_id",
        ),
        (
            b'{"failure_id": "1", "detector": "x", "status": "missed", '
            b'"due_at": "2026-03-02T00:00:00Z", "detected_at": "2026-03-02T00:00:00Z"}\n',
            "no outcome",
        ),
        (
            b'{"failure_id": "1", "detector": "x", "outcome": "lost", '
            b'"due_at": "2026-03-02T00:00:00Z", "detected_at": "2026-03-02T00:00:00Z"}\n',
            "unknown outcome 'lost'",
        ),
    ],
)
def test_bad_records_stop_with_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    good = write_ledger(tmp_path / "good.jsonl", [record(fid(1), "met", "2026-03-02T00:00:00Z")])
    path.write_bytes(good.read_bytes() * 3 + content)
    with pytest.raises(InputError, match=message) as err:
        read_ledger([path])
    assert "\n" not in str(err.value)


def test_missing_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_ledger([tmp_path / "nope.jsonl"])
    with pytest.raises(InputError, match=r"holds no outcomes\.jsonl"):
        read_ledger([tmp_path])


def test_an_empty_ledger_is_empty(tmp_path: Path) -> None:
    ledger = read_ledger([write_ledger(tmp_path / "l.jsonl", [])])
    assert ledger.frame.empty and ledger.horizon is None


def test_a_record_longer_than_a_read_block(tmp_path: Path) -> None:
    big = record(fid(2), "missed", "2026-03-02T10:00:00+00:00")
    big["evidence"] = [f"E{i:09d}" for i in range(200_000)]  # about 2.6 MB of JSON
    path = write_ledger(
        tmp_path / "l.jsonl", [record(fid(1), "met", "2026-03-02T10:00:00+00:00"), big]
    )
    assert read_ledger([path]).frame["outcome"].tolist() == ["met", "missed"]
