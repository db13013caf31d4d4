"""Filling the store: ``carewatch run --store`` and ``carewatch store load``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.cli import main
from streams.store import WorklistQuery, open_store
from tests.detectors.helpers import at


def event(n: int, type_: str, hours: float, order: str, **attrs: object) -> str:
    return (
        json.dumps(
            {
                "id": str(n),
                "type": type_,
                "time": at(hours),
                "patient": f"P{order}",
                "refs": {"order": order},
                "attrs": attrs,
            }
        )
        + "\n"
    )


EVENTS = [
    event(1, "order.placed", 0, "O1", priority="stat", site="north"),
    event(2, "order.placed", 0, "O2", priority="stat", site="south"),
    event(3, "order.placed", 1.5, "O3", priority="routine", site="north"),  # moves time on
    event(4, "result.reported", 2, "O1"),  # O1 was missed at 1 h: now late
]


def latest_in_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out[rec["failure_id"]] = rec["status"]
    return out


def test_run_with_store_writes_each_failure_with_its_latest_status(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text("".join(EVENTS))
    out = tmp_path / "out"
    args = ["run", str(src), "--out", str(out), "--quiet", "--store", store_url]
    assert main([*args, "--as-of", at(200)]) == 0
    assert "Store:" in capsys.readouterr().out
    expected = latest_in_file(out / "failures.jsonl")
    store = open_store(store_url)
    page = store.worklist(WorklistQuery(state="all"))
    assert {r["failure_id"]: r["status"] for r in page.rows} == expected
    assert sorted(expected.values()) == ["late", "missed", "missed"]  # O3: routine, 72 h
    late = next(r for r in page.rows if r["status"] == "late")
    f = store.failure(late["failure_id"])
    assert f is not None
    # the store saw the missed record as it was decided, then its amendment
    assert [h["status"] for h in f["history"]] == ["missed", "late"]
    assert (f["state"], f["resolution"]) == ("resolved", "carewatch-late")
    assert [r["status"] for r in store.worklist(WorklistQuery()).rows] == ["missed", "missed"]
    store.close()
    # the same run again changes nothing in the store
    assert main([*args, "--as-of", at(200)]) == 0
    assert "0 new failures" in capsys.readouterr().out


def test_store_init_and_load_a_failures_file(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text("".join(EVENTS))
    out = tmp_path / "out"
    assert main(["run", str(src), "--out", str(out), "--quiet", "--as-of", at(200)]) == 0
    assert main(["store", "init", store_url]) == 0
    assert "schema version 0 -> 1" in capsys.readouterr().out
    assert main(["store", "init", store_url]) == 0
    assert "up to date" in capsys.readouterr().out
    failures = out / "failures.jsonl"
    failures.write_text(failures.read_text() + "not json\n")
    assert main(["store", "load", store_url, str(failures)]) == 0
    got = capsys.readouterr()
    assert "3 new failures" in got.out and "1 not failure records" in got.out
    assert ":4: skipped: not JSON" in got.err  # the place and the reason, not the line


def test_a_store_that_is_not_one_is_one_line_of_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["store", "load", str(tmp_path / "none.db"), "x.jsonl"]) == 2
    assert "carewatch store init" in capsys.readouterr().err
    assert main(["store", "init", "mysql://x@y/z"]) == 2
    assert "unknown store URL" in capsys.readouterr().err
    assert main(["store", "init", "postgresql://nobody:secret@127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect" in err and "secret" not in err
