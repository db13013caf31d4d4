"""``carewatch run --batch`` writes the same files as the streaming ``carewatch run``."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.events import format_time
from streams.cli import main
from streams.synthetic import DeliveryFaults, GeneratorConfig, deliver, generate

FILES = ("failures.jsonl", "outcomes.jsonl", "open.jsonl", "rejected.jsonl")


@pytest.mark.parametrize(("cut", "as_of_after_days"), [(0.5, 1.0), (1.0, 120.0)])
def test_batch_writes_the_same_files_as_a_streaming_run(
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
    assert main(["run", *common, "--batch", "--out", str(tmp_path / "batch")]) == 0
    batched = capsys.readouterr().out

    for name in FILES:
        want = (tmp_path / "stream" / name).read_bytes()
        assert (tmp_path / "batch" / name).read_bytes() == want, name
    assert batched.replace("/batch/", "/stream/") == streamed
    assert (tmp_path / "batch" / "rejected.jsonl").read_text().count("\n") > 0
    if cut < 1:
        assert (tmp_path / "batch" / "open.jsonl").read_text(), "a cut-off stream leaves some open"


def test_batch_refuses_a_metrics_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text("")
    assert main(["run", str(src), "--batch", "--metrics-port", "9999", "--quiet"]) == 2
    assert "--metrics-port" in capsys.readouterr().err
