"""``carewatch demo`` fills an SQLite store and says how to open the worklist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from streams.cli import main
from streams.store import WorklistQuery, open_store


def test_demo_fills_a_store_and_prints_the_serve_command_and_a_sign_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--scale", "small", "--days", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    command = re.search(r" serve --store (\S+)", printed)
    password = re.search(r"sign in as demo, password (\S+)", printed)
    assert command and password
    store = open_store(command[1])
    latest = {}
    for x in (out / "failures.jsonl").read_text().splitlines():
        rec = json.loads(x)
        latest[rec["failure_id"]] = rec["status"]
    page = store.worklist(WorklistQuery(state="all", per_page=500))
    assert page.total == len(latest) > 0
    assert f"{len(latest):,} failures" in printed
    token, _ = store.sign_in("demo", password[1])
    assert token and store.session(token)[0].may("admin")  # type: ignore[index]
    store.close()
