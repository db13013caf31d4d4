"""``carewatch generate``: files, gzip, stdout, determinism, help and errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from streams.cli import main
from streams.synthetic import DeliveryFaults, GeneratorConfig, deliver, generate


def _run(*argv: str) -> int:
    return main(["generate", "--quiet", *argv])


def test_writes_events_and_truth_files(tmp_path: Path) -> None:
    out, truth = tmp_path / "events.jsonl", tmp_path / "truth.jsonl"
    assert (
        _run(
            "--days",
            "2",
            "--seed",
            "4",
            "--scale",
            "small",
            "--out",
            str(out),
            "--truth",
            str(truth),
        )
        == 0
    )
    run = generate(GeneratorConfig(days=2, seed=4, scale="small"))
    assert [orjson.loads(x) for x in out.read_bytes().splitlines()] == run.events
    assert [orjson.loads(x) for x in truth.read_bytes().splitlines()] == run.truth


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    args = ["--days", "3", "--scale", "small", "--shuffle-within", "5m", "--duplicates", "0.01"]
    paths = []
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        path = tmp_path / f"{name}.jsonl.gz"
        assert _run(*args, "--seed", seed, "--malformed", "0.01", "--out", str(path)) == 0
        paths.append(path.read_bytes())
    assert paths[0] == paths[1]
    assert paths[0] != paths[2]
    lines = gzip.decompress(paths[0]).splitlines()
    assert len(lines) > 1000


def test_api_lines_match_cli_bytes(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    assert (
        _run(
            "--days",
            "1",
            "--seed",
            "7",
            "--scale",
            "small",
            "--shuffle-within",
            "10m",
            "--out",
            str(path),
        )
        == 0
    )
    run = generate(GeneratorConfig(days=1, seed=7, scale="small"))
    expected = b"".join(deliver(run.records, DeliveryFaults(shuffle_within=600), seed=7))
    assert path.read_bytes() == expected


def test_stdout_and_progress(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["generate", "--days", "1", "--scale", "small", "--seed", "3"]) == 0
    captured = capsysbinary.readouterr()
    events = [orjson.loads(x) for x in captured.out.splitlines()]
    assert events == generate(GeneratorConfig(days=1, seed=3, scale="small")).events
    assert b"carewatch generate:" in captured.err


def test_failure_options_change_the_truth(tmp_path: Path) -> None:
    truth = tmp_path / "t.jsonl"
    assert (
        _run(
            "--days",
            "2",
            "--scale",
            "small",
            "--failures",
            "none",
            "--out",
            str(tmp_path / "e"),
            "--truth",
            str(truth),
        )
        == 0
    )
    outcomes = {orjson.loads(x)["outcome"] for x in truth.read_bytes().splitlines()}
    assert outcomes <= {"met", "void"}
    assert (
        _run(
            "--days",
            "2",
            "--scale",
            "small",
            "--failures",
            "none",
            "--failure-rate-summary-missed",
            "0.5",
            "--out",
            str(tmp_path / "e"),
            "--truth",
            str(truth),
        )
        == 0
    )
    records = [orjson.loads(x) for x in truth.read_bytes().splitlines()]
    summaries = [r for r in records if r["detector"] == "discharge-summary-overdue"]
    assert sum(r["outcome"] == "missed" for r in summaries) == round(0.5 * len(summaries))


def test_help_mentions_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--days",
        "--seed",
        "--truth",
        "--shuffle-within",
        "--duplicates",
        "--malformed",
        "hl7",
    ):
        assert option in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--days", "0"], "--days"),
        (["--shuffle-within", "soon"], "not a duration"),
        (["--truth", "-"], "both go to stdout"),
    ],
)
def test_bad_settings_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(*argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unsupported_format_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _run("--format", "csv")
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mllp"], "use it with --format hl7"),
        (["--format", "fhir", "--mllp"], "use it with --format hl7"),
        (["--out", "x", "--mapping-out", "x"], "--out and --mapping-out both go to the same"),
    ],
)
def test_format_options_are_checked(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("--days", "1", "--scale", "small", *argv) == 2
    assert message in capsys.readouterr().err


def _project(row: dict) -> tuple:
    closed = row["closed_at"] if row["outcome"] == "late" else None
    return (row["detector"], row["key"], row["outcome"], row["opened_at"], row["due_at"], closed)


@pytest.mark.parametrize(
    ("fmt", "name", "extra"),
    [("hl7", "events.hl7", ["--mllp"]), ("fhir", "events.ndjson.gz", [])],
)
def test_generated_hl7_and_fhir_run_to_the_truth(
    tmp_path: Path, fmt: str, name: str, extra: list[str]
) -> None:
    """The documented loop: generate a format with its truth and mapping, run Carewatch on
    it with that mapping, and find the truth (on what a reader of that format can see)."""
    out, truth, mapping = tmp_path / name, tmp_path / "truth.jsonl", tmp_path / "site.yaml"
    args = ["--days", "3", "--seed", "8", "--scale", "small", "--format", fmt, *extra]
    paths = ["--out", str(out), "--truth", str(truth), "--mapping-out", str(mapping)]
    assert _run(*args, "--duplicates", "0.02", "--shuffle-within", "5m", *paths) == 0
    results = tmp_path / "results"
    argv = ["run", str(out), "--mapping", str(mapping), "--out", str(results), "--quiet"]
    assert main([*argv, "--as-of", "2026-09-01T00:00:00+00:00"]) == 0
    expected = sorted(_project(orjson.loads(x)) for x in truth.read_bytes().splitlines())
    fed = {row[0] for row in expected}
    got = sorted(
        _project(row)
        for row in map(orjson.loads, (results / "outcomes.jsonl").read_bytes().splitlines())
        if row["detector"] in fed
    )
    assert got == expected
    assert (results / "rejected.jsonl").read_bytes() == b""
    assert "clinic-overbooked" not in fed
