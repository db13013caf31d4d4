"""`carewatch qi export`: no identity survives, pseudonyms are keyed and stable."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from streams.cli import main

KEY = "k" * 16 + "0123456789abcdef"
OTHER_KEY = "another-key-of-enough-length-0123456789"


def identities(run_dir: Path) -> set[str]:
    """Every patient id, ref id, key, failure id and evidence event id of the ledger."""
    found: set[str] = set()
    for name in ("outcomes.jsonl", "open.jsonl"):
        for line in (run_dir / name).read_text().splitlines():
            rec = json.loads(line)
            found.update(str(v) for v in rec["refs"].values())
            found.update(rec["evidence"])
            found.add(rec["failure_id"])
            found.add(str(rec["key"]))
            if rec["patient"]:
                found.add(rec["patient"])
    return found


def leaked_ids(ids: set[str], text: str) -> set[str]:
    """The ids that occur anywhere in ``text`` (as substrings), by sliding a window of
    each id length over it: exact, and fast enough for a few megabytes."""
    found: set[str] = set()
    for length in {len(i) for i in ids}:
        of_length = {i for i in ids if len(i) == length}
        found |= {text[k : k + length] for k in range(len(text) - length + 1)} & of_length
    return found


def export(
    run_dir: Path, out: Path, monkeypatch: pytest.MonkeyPatch, key: str = KEY, *args: str
) -> None:
    monkeypatch.setenv("CAREWATCH_PSEUDONYM_KEY", key)
    assert main(["qi", "export", str(run_dir), "--out", str(out), *args]) == 0


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_no_identity_from_the_ledger_appears_in_the_export(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    out = tmp_path / "export"
    export(run_dir, out, monkeypatch, KEY, "--format", fmt)
    ids = identities(run_dir)
    assert len(ids) > 1000
    frame = (
        pd.read_csv(out / "outcomes.csv")
        if fmt == "csv"
        else pd.read_parquet(out / "outcomes.parquet")
    )
    # Parquet is compressed: look for the ids in its values, and in every file as written
    text = frame.to_csv() + "".join(
        p.read_bytes().decode("utf-8", "replace") for p in out.iterdir()
    )
    assert leaked_ids(ids, text) == set()
    assert leaked_ids({"P0000042"}, "a,xP0000042y,b") == {"P0000042"}  # the check can fail
    assert "summary" not in frame.columns and "evidence" not in frame.columns
    assert frame["patient"].dropna().str.fullmatch(r"[0-9a-f]{20}").all()
    assert frame["opened_at"].astype(str).str.fullmatch(r"\d{4}-\d\d-\d\d").all()
    readme = (out / "README.txt").read_text()
    assert "HMAC-SHA256" in readme and "evidence" in readme and "local date" in readme


def test_free_text_attrs_are_dropped_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "outcomes.jsonl"
    rec = {
        "failure_id": "00000000000000aa",
        "detector": "my-rule",
        "outcome": "missed",
        "patient": "P123",
        "refs": {"order": "O9"},
        "opened_at": "2026-03-02T10:15:00+00:00",
        "due_at": "2026-03-02T11:15:00+00:00",
        "closed_at": None,
        "detected_at": "2026-03-02T11:20:00+00:00",
        "evidence": ["E1"],
        "attrs": {"site": "north", "comment": "Mrs Smith rang about P123", "priority": "stat"},
        "summary": "Order O9 for P123 is overdue.",
        "key": "O9",
    }
    ledger.write_text(json.dumps(rec) + "\n")
    out = tmp_path / "x"
    export(ledger, out, monkeypatch, KEY, "--time-precision", "hour")
    text = (out / "outcomes.csv").read_text()
    assert "Smith" not in text and "P123" not in text and "comment" not in text
    assert "north" in text and "stat" in text
    assert "2026-03-02T10:00:00+00:00" in text  # the hour, local (GMT in March)
    assert "comment" in (out / "README.txt").read_text()


def test_same_key_links_other_key_does_not(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export(run_dir, tmp_path / "a", monkeypatch, KEY)
    export(run_dir, tmp_path / "b", monkeypatch, KEY)
    export(run_dir, tmp_path / "c", monkeypatch, OTHER_KEY)
    a, b, c = (pd.read_csv(tmp_path / d / "outcomes.csv") for d in "abc")
    assert a.equals(b)
    assert set(a["patient"].dropna()).isdisjoint(set(c["patient"].dropna()))
    assert set(a["failure_id"]).isdisjoint(set(c["failure_id"]))
    # the same patient keeps one pseudonym across all their opportunities
    assert a["patient"].nunique() == c["patient"].nunique()


def test_key_file_and_refusals(
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("CAREWATCH_PSEUDONYM_KEY", raising=False)
    out = tmp_path / "e"
    assert main(["qi", "export", str(run_dir), "--out", str(out)]) == 2
    assert "no pseudonym key" in capsys.readouterr().err
    assert not out.exists()
    short = tmp_path / "short.key"
    short.write_text("secret\n")
    assert main(["qi", "export", str(run_dir), "--out", str(out), "--key-file", str(short)]) == 2
    assert "at least 32" in capsys.readouterr().err
    good = tmp_path / "good.key"
    good.write_text(KEY + "\n")
    assert main(["qi", "export", str(run_dir), "--out", str(out), "--key-file", str(good)]) == 0
    export(run_dir, tmp_path / "env", monkeypatch, KEY)
    assert (out / "outcomes.csv").read_bytes() == (tmp_path / "env" / "outcomes.csv").read_bytes()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_chunked_writing_gives_the_same_file(run_dir: Path, tmp_path: Path, fmt: str) -> None:
    from streams.qi.export import Pseudonymiser, export_ledger

    p = Pseudonymiser(KEY.encode())
    # small chunks: columns such as ref_document first appear in a later chunk
    small = export_ledger([str(run_dir)], tmp_path / "s", p, fmt=fmt, chunk_rows=97)
    whole = export_ledger([str(run_dir)], tmp_path / "w", p, fmt=fmt, chunk_rows=10**7)
    assert small == whole > 1000
    a = pd.read_parquet(tmp_path / "s" / "outcomes.parquet") if fmt == "parquet" else None
    if a is None:
        assert (tmp_path / "s" / "outcomes.csv").read_bytes() == (
            tmp_path / "w" / "outcomes.csv"
        ).read_bytes()
    else:
        b = pd.read_parquet(tmp_path / "w" / "outcomes.parquet")
        pd.testing.assert_frame_equal(a, b)
    assert not [p for p in (tmp_path / "s").iterdir() if p.name.startswith(".chunks")]
