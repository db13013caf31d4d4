"""The Prometheus and Alertmanager programs the deploy tests run (Debian's prometheus
and prometheus-alertmanager packages, which tests/run installs), and small utilities."""

from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTMANAGER_DIR = ROOT / "deploy" / "alertmanager"
RUNBOOKS = ROOT / "docs" / "runbooks"

_PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


def tool(name: str) -> str:
    """The path of ``name``; fails (never skips) naming the package when it is missing."""
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if path is None:
        raise AssertionError(
            f"{name} is not installed: apt-get install {_PACKAGES[name]} (tests/run does)"
        )
    return path


def run(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run a program; the completed process (output as text)."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    """The metrics exposition served on 127.0.0.1:``port``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def scraped(port: int) -> str:
    """What is served on 127.0.0.1:``port``; nothing while its server is not up yet."""
    try:
        return scrape(port)
    except OSError:
        return ""


def check_metrics(text: str) -> None:
    """``promtool check metrics`` must find nothing to say about ``text``."""
    proc = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), (
        proc.stdout + proc.stderr
    )


STACK = ROOT / "deploy" / "monitoring" / "stack"


def stack_env(state: Path, **settings: str) -> dict[str, str]:
    """Environment for ``deploy/monitoring/stack`` with its own state dir and free ports;
    ``settings`` are further ``CAREWATCH_*`` variables (without the prefix)."""
    import os

    env = dict(os.environ)
    env.update(
        {
            "CAREWATCH_STACK_DIR": str(state),
            "CAREWATCH_PROMETHEUS_PORT": str(free_port()),
            "CAREWATCH_ALERTMANAGER_PORT": str(free_port()),
            "CAREWATCH_SCRAPE_INTERVAL": "1s",
            "CAREWATCH_EVALUATION_INTERVAL": "1s",
        }
    )
    env.update({f"CAREWATCH_{k}": v for k, v in settings.items()})
    return env


def stack(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``deploy/monitoring/stack COMMAND``."""
    return subprocess.run(
        [str(STACK), command], env=env, capture_output=True, text=True, timeout=180
    )


def fast_rules(into: Path) -> Path:
    """A copy of deploy/prometheus/rules without the groups' own intervals, so every
    rule is evaluated at the test's short global interval."""
    into.mkdir(parents=True, exist_ok=True)
    for path in (PROMETHEUS_DIR / "rules").glob("*.yml"):
        lines = path.read_text().splitlines(keepends=True)
        (into / path.name).write_text(
            "".join(line for line in lines if not line.strip().startswith("interval:"))
        )
    return into
