"""A generated ledger shared by the QI command tests: `carewatch generate` + `carewatch run`."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `carewatch run` output directory over three weeks of a small hospital."""
    base = tmp_path_factory.mktemp("qi-ledger")
    events = base / "events.jsonl.gz"
    assert (
        main(
            [
                "generate",
                "--days",
                "21",
                "--scale",
                "small",
                "--seed",
                "5",
                "--out",
                str(events),
                "--quiet",
            ]
        )
        == 0
    )
    out = base / "run"
    assert main(["run", str(events), "--out", str(out), "--quiet"]) == 0
    return out
