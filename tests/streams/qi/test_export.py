"""`carewatch qi export`: no identity survives, pseudonyms are keyed and stable."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from streams.cli import main
from streams.store import WorklistQuery

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


# ------------------------------------------------------------ the worklist's judgement


def test_the_worklist_precision_and_resolutions_come_with_the_export(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    """--store adds each failure's coded resolution (joined before pseudonymising) and
    feedback.csv with the precision per detector, as the worklist's /feedback shows;
    still no identity, no note, no name."""
    from streams.qi.export import Pseudonymiser
    from streams.store import open_store

    assert main(["store", "init", store_url]) == 0
    assert main(["store", "load", store_url, str(run_dir / "failures.jsonl")]) == 0
    store = open_store(store_url)
    store.add_user("ann", "coordinator", "ann's long password")
    ann = store.user("ann")
    assert ann is not None
    open_ = store.worklist(WorklistQuery(detector="reschedule-notice", per_page=500)).rows
    assert len(open_) >= 6, "the generated ledger has reschedule-notice failures"
    said: dict[str, str] = {}
    for n, row in enumerate(open_[:6]):
        reason = "not-a-real-failure" if n < 2 else "patient-contacted"
        note = "Phoned Mrs Example-Name at home" if n == 0 else None
        store.act(ann, row["failure_id"], "resolve", row["version"], reason=reason, note=note)
        said[row["failure_id"]] = reason
    expected = {r["detector"]: r for r in store.feedback()}
    store.close()
    assert expected["reschedule-notice"]["precision"] == pytest.approx(4 / 6)

    out = tmp_path / "export"
    export(run_dir, out, monkeypatch, KEY, "--store", store_url)
    feedback = pd.read_csv(out / "feedback.csv")
    assert list(feedback.columns) == ["detector", "failures", "resolved", "not_real", "precision"]
    got = feedback.set_index("detector")
    assert set(got.index) == set(expected)
    assert got.loc["reschedule-notice", "resolved"] == 6
    assert got.loc["reschedule-notice", "not_real"] == 2
    assert got.loc["reschedule-notice", "precision"] == pytest.approx(4 / 6)
    unjudged = [d for d, r in expected.items() if r["precision"] is None]
    assert all(pd.isna(got.loc[d, "precision"]) for d in unjudged)

    rows = pd.read_csv(out / "outcomes.csv", dtype=str).set_index("failure_id")
    pseudonym = Pseudonymiser(KEY.encode())
    for fid, reason in said.items():
        assert rows.loc[pseudonym("failure", fid), "resolution"] == reason
    met = rows[rows["outcome"] == "met"]
    assert met["resolution"].isna().all()  # never a failure: no resolution
    resolved = rows["resolution"].dropna()
    assert set(resolved) <= {"not-a-real-failure", "patient-contacted", "carewatch-late",
                             "carewatch-withdrawn"}  # fmt: skip

    text = "".join(p.read_text() for p in out.iterdir() if p.suffix in (".csv", ".txt"))
    assert not leaked_ids(identities(run_dir), text)
    assert "Example-Name" not in text  # people's notes stay in the store
    assert not {"note", "actor", "assignee", "changed_by"} & set(rows.columns)
    assert not (rows == "ann").any().any()  # nor who acted
    assert "feedback.csv" in (out / "README.txt").read_text()


def test_an_export_without_a_store_has_no_feedback(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "export"
    export(run_dir, out, monkeypatch, KEY)
    assert not (out / "feedback.csv").exists()
    assert "resolution" not in pd.read_csv(out / "outcomes.csv", nrows=1).columns
