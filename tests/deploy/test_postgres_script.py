"""deploy/postgres/db: the checks that need no server (its real use, start to stop, is
what every PostgreSQL-marked store test goes through)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

DB = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "db"
BASH = shutil.which("bash") or "/bin/bash"


def run(*args: str, state_dir: Path, port: str = "1") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CAREWATCH_PG_STATE_DIR=str(state_dir), CAREWATCH_PG_PORT=port)
    return subprocess.run(
        [BASH, str(DB), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_help_and_usage_errors(tmp_path: Path) -> None:
    out = run("--help", state_dir=tmp_path)
    assert out.returncode == 0 and "start" in out.stdout and "postgres" in out.stdout
    out = run("frobnicate", state_dir=tmp_path)
    assert out.returncode == 2 and "unknown command" in out.stderr
    out = run("start", "now", state_dir=tmp_path)
    assert out.returncode == 1 and "takes no arguments" in out.stderr
    out = run("start", state_dir=tmp_path, port="99999")
    assert out.returncode == 1 and "CAREWATCH_PG_PORT must be a port" in out.stderr


def test_status_and_stop_of_a_cluster_never_started(tmp_path: Path) -> None:
    out = run("status", state_dir=tmp_path)
    assert out.returncode == 3 and out.stdout.strip() == "not running"
    out = run("stop", state_dir=tmp_path)
    assert out.returncode == 0 and "not running" in out.stderr
