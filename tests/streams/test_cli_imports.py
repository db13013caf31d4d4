"""A command loads only what it uses: `carewatch run` replays a year in one process, and
pandas, numpy and the Kafka clients (what `qi` and the Kafka commands need) would add
some 90 MB to its peak memory for nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import COMMANDS, build_parser

HEAVY = ("pandas", "numpy", "pyarrow", "faust", "kafka", "aiokafka", "matplotlib", "starlette")

# runs a command, then prints which of HEAVY it loaded (also after --help's SystemExit)
PROBE = (
    "import sys\n"
    "from streams.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "finally:\n"
    "    heavy = sorted({m.split('.')[0] for m in sys.modules} & set(HEAVY))\n"
    "    print('loaded:', ','.join(heavy))\n"
    "sys.exit(code)\n"
)


def loaded_by(args: list[str], tmp_path: Path) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert out.returncode in (0, 2), out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("loaded:"))
    return [m for m in line.removeprefix("loaded:").strip().split(",") if m]


def test_a_run_loads_no_dataframe_or_kafka_library(tmp_path: Path) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text(
        '{"id":"o1","type":"order.placed","time":"2026-03-02T09:00:00Z","patient":"P1",'
        '"refs":{"order":"O1"},"attrs":{"priority":"stat"}}\n'
    )
    assert loaded_by(["run", str(src), "--out", str(tmp_path / "out"), "--quiet"], tmp_path) == []
    assert loaded_by(["--help"], tmp_path) == []


def test_the_qi_command_still_gets_its_own_options(tmp_path: Path) -> None:
    # the probe sees what a command loads: qi's does load pandas (so the probe can tell)
    assert "pandas" in loaded_by(["qi", "measures", "--help"], tmp_path)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_parses_alone_as_in_the_full_parser(name: str) -> None:
    alone = build_parser(name)._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr]
    full = build_parser()._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr]
    assert alone.format_help() == full.format_help()
