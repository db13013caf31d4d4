"""One isolated Carewatch-on-Kafka set-up per test: unique topics and group id, workers
run as subprocesses with their own data dirs, readers of the output topics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer

from detectors.rules import load_settings
from streams.adapters import iter_records
from streams.runner import Runner
from streams.sinks import MemorySink

# Varies with the watermark at decision time, which is per partition on Kafka.
VARIES = ("detected_at", "summary")


def project(rec: dict[str, Any]) -> dict[str, Any]:
    """A record without the fields that depend on when it was decided."""
    return {k: v for k, v in rec.items() if k not in VARIES}


def embedded(lines: list[bytes], as_of: float, rules: str | None = None) -> dict[str, Any]:
    """What ``carewatch run --as-of`` says about ``lines``: latest outcome and failure
    records by failure_id, and the number of rejected lines."""
    sink = MemorySink()
    runner = Runner(load_settings(rules), sink)
    runner.feed(iter_records(b"".join(lines), "jsonl", origin="input"))
    runner.finish(as_of)
    return {
        "outcomes": {o.failure_id: project(o.to_outcome_dict()) for o in sink.latest.values()},
        "failures": {o.failure_id: project(o.to_failure_dict()) for o in sink.failures()},
        "rejected": len(sink.rejected),
    }


class Setup:
    """Topics, group and workers of one test."""

    def __init__(self, bootstrap: str, tmp: Path, partitions: int = 3, **env: str) -> None:
        self.bootstrap = bootstrap
        self.tmp = tmp
        tag = f"t{uuid.uuid4().hex[:10]}"
        self.topics = {
            k: f"{tag}.{k}" for k in ("events", "outcomes", "failures", "rejected", "sessions")
        }
        self.env = dict(os.environ)
        self.env.update(
            {
                "CAREWATCH_KAFKA_BOOTSTRAP": bootstrap,
                "CAREWATCH_GROUP_ID": f"{tag}-group",
                "CAREWATCH_PARTITIONS": str(partitions),
                **{f"CAREWATCH_TOPIC_{k.upper()}": v for k, v in self.topics.items()},
                **env,
            }
        )
        self.workers: list[subprocess.Popen[bytes]] = []
        self.cli("kafka", "init")

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env=self.env,
            capture_output=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr.decode()
        return out.stdout.decode()

    def publish(self, lines: list[bytes], name: str = "input.jsonl") -> str:
        path = self.tmp / name
        path.write_bytes(b"".join(lines))
        return self.cli("publish", "--quiet", str(path))

    def advance(self, at: float) -> None:
        from detectors.events import format_time

        self.cli("kafka", "advance", "--to", format_time(at))

    def start_worker(self, *args: str) -> subprocess.Popen[bytes]:
        n = len(self.workers)
        data = self.tmp / f"worker{n}"
        data.mkdir(exist_ok=True)
        log = (self.tmp / f"worker{n}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--data-dir", str(data), *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(proc)
        return proc

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        out = []
        for i in range(len(self.workers)):
            text = (self.tmp / f"worker{i}.log").read_text(errors="replace")
            out.append(f"--- worker{i}\n{text[-12000:]}")
        return "\n".join(out)

    def producer(self) -> KafkaProducer:
        return KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")

    def read(self, role: str, idle: float = 1.5) -> list[tuple[bytes | None, Any]]:
        """Every record of an output topic so far, as (key, decoded JSON)."""
        consumer = KafkaConsumer(
            self.topics[role],
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
            consumer_timeout_ms=int(idle * 1000),
        )
        try:
            return [(m.key, orjson.loads(m.value)) for m in consumer]
        finally:
            consumer.close()

    def latest(self, role: str) -> dict[str, Any]:
        return {r["failure_id"]: project(r) for _, r in self.read(role)}

    def wait_for(
        self, what: str, check: Callable[[], bool], timeout: float = 180.0, every: float = 2.0
    ) -> None:
        """Wait (bounded) until ``check()``; fails with the worker logs otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            for proc in self.workers:
                if proc.poll() not in (None, -signal.SIGKILL):
                    raise AssertionError(f"a worker exited ({proc.returncode})\n{self.logs()}")
            time.sleep(every)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")

    def wait_for_outputs(self, expected: dict[str, Any], timeout: float = 180.0) -> None:
        """Wait until the latest outcome records equal ``expected['outcomes']``; on a
        timeout, say which records differ."""
        try:
            self.wait_for(
                "the outcomes of the embedded runner",
                lambda: self.latest("outcomes") == expected["outcomes"],
                timeout,
            )
        except AssertionError as exc:
            got, want = self.latest("outcomes"), expected["outcomes"]
            diff = [
                f"{fid}: worker {got.get(fid)!r} / embedded {want.get(fid)!r}"
                for fid in sorted(set(got) | set(want))
                if got.get(fid) != want.get(fid)
            ]
            raise AssertionError(
                f"{len(diff)} records differ:\n" + "\n".join(diff[:10]) + f"\n{exc}"
            ) from None
