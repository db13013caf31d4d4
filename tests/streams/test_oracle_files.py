"""The pandas oracle (the test reference), run through the same file sink, writes the
same records as the streaming ``carewatch run``: the same lines in any order, but for
``detected_at`` (when the streaming watermark step decided it, which the spec lets
differ). And ``--batch``, which ran the oracle as a product, is refused as retired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detectors.events import format_time, parse_time
from detectors.rules import load_settings
from streams.adapters import iter_records
from streams.cli import main
from streams.report import format_summary
from streams.sinks import FileSink
from streams.synthetic import DeliveryFaults, GeneratorConfig, deliver, generate
from tests.oracle.batch import run_batch

FILES = ("failures.jsonl", "outcomes.jsonl", "open.jsonl", "rejected.jsonl")


def records_of(path: Path) -> list[str]:
    rows = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        rec.pop("detected_at", None)
        rows.append(json.dumps(rec, sort_keys=True))
    return sorted(rows)


@pytest.mark.parametrize(("cut", "as_of_after_days"), [(0.5, 1.0), (1.0, 120.0)])
def test_the_oracle_writes_the_same_files_as_a_streaming_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cut: float, as_of_after_days: float
) -> None:
    gen = generate(GeneratorConfig(days=5, seed=11, scale="small"))
    records = gen.records[: int(cut * len(gen.records))]
    faults = DeliveryFaults(duplicates=0.02, malformed=0.005)
    src = tmp_path / "events.jsonl"
    src.write_bytes(b"".join(deliver(records, faults, seed=11)))
    as_of = format_time(records[-1][0] + as_of_after_days * 86400)
    common = [str(src), "--as-of", as_of, "--quiet"]

    assert main(["run", *common, "--out", str(tmp_path / "stream")]) == 0
    streamed = capsys.readouterr().out
    summary = run_batch(
        iter_records(src), load_settings(None), FileSink(tmp_path / "batch"), parse_time(as_of)
    )

    for name in FILES:
        want = records_of(tmp_path / "stream" / name)
        assert records_of(tmp_path / "batch" / name) == want, name
    assert streamed.startswith(format_summary(summary) + "\n")
    assert (tmp_path / "batch" / "rejected.jsonl").read_text().count("\n") > 0
    if cut < 1:
        assert (tmp_path / "batch" / "open.jsonl").read_text(), "a cut-off stream leaves some open"


def test_batch_is_refused_as_retired(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text("")
    assert main(["run", str(src), "--batch", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--batch is retired" in err and "without --batch" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists(), "nothing is written"
