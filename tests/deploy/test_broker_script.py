"""Cheap checks of deploy/kafka/broker that need no broker, no Java and no network.

Real broker use (start, produce, consume, restart) is covered by the `kafka`-marked
integration tests, which start the broker through this script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BROKER = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "broker"
BASH = shutil.which("bash") or "/bin/bash"


def run(
    *args: str, env: dict[str, str] | None = None, state_dir: Path
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ if env is None else env)
    # Never touch the real state dir (or a developer's running broker) from these tests.
    full_env["CAREWATCH_KAFKA_STATE_DIR"] = str(state_dir)
    # Ports nothing could ever be started on, unless a test asks for other values.
    full_env.setdefault("CAREWATCH_KAFKA_PORT", "1")
    full_env.setdefault("CAREWATCH_KAFKA_CONTROLLER_PORT", "2")
    return subprocess.run(
        [BASH, str(BROKER), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def path_without(*names: str, bin_dir: Path) -> str:
    """A PATH that has every command of the current PATH except `names`."""
    bin_dir.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = bin_dir / entry.name
            if entry.name in names or link.exists() or link.is_symlink():
                continue
            if os.access(entry.path, os.X_OK) and not entry.is_dir():
                link.symlink_to(entry.path)
    return str(bin_dir)


def test_script_is_executable_and_valid_bash() -> None:
    assert os.access(BROKER, os.X_OK)
    subprocess.run([BASH, "-n", str(BROKER)], check=True)


def test_help_lists_commands(tmp_path: Path) -> None:
    result = run("--help", state_dir=tmp_path)
    assert result.returncode == 0
    for command in ("start", "stop", "restart", "status", "reset"):
        assert f"  {command} " in result.stdout
    assert "CAREWATCH_KAFKA_PORT" in result.stdout


@pytest.mark.parametrize("args", [(), ("frobnicate",)])
def test_bad_usage_exits_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run(*args, state_dir=tmp_path)
    assert result.returncode == 2
    assert "Usage:" in result.stderr
    assert result.stdout == ""


def test_status_and_stop_when_not_running(tmp_path: Path) -> None:
    status = run("status", state_dir=tmp_path)
    assert (status.returncode, status.stdout) == (3, "not running\n")
    stop = run("stop", state_dir=tmp_path)
    assert stop.returncode == 0
    assert "not running" in stop.stderr


def test_missing_java_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = path_without("java", bin_dir=tmp_path / "bin")
    result = run("start", env=env, state_dir=tmp_path / "state")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "java" in lines[0]
    assert "apt-get install openjdk-17-jre-headless" in lines[0]


def test_bad_port_is_rejected_before_anything_runs(tmp_path: Path) -> None:
    env = dict(os.environ, CAREWATCH_KAFKA_PORT="not-a-port")
    result = run("start", env=env, state_dir=tmp_path)
    assert result.returncode == 1
    assert "CAREWATCH_KAFKA_PORT must be a port number" in result.stderr
