"""Benchmark of the Kafka worker through a real broker (a script, not a test).

1. Throughput: a synthetic backlog is published to the events topic, one worker
   (``--replay``) drains it; events/s from its first output to the last partition's
   end-of-input marker failure.
2. Latency: a live worker (allowed lateness ``--lateness``, ticks every ``--tick``) gets a
   steady stream of events stamped with the current time, in which contact-after-death
   violations are planted; p50/p99 of publish -> failure record on the failures topic.

Usage (a broker is started with deploy/kafka/broker on a bench port unless --bootstrap):
    .venv/bin/python bench/kafka_bench.py [--days 3 --scale medium] [--rate 2000 --seconds 20]
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.events import format_time  # noqa: E402
from streams.kafka.wire import control_message, event_key, partition_for  # noqa: E402
from streams.synthetic import DeliveryFaults, GeneratorConfig, deliver, generate  # noqa: E402

PARTITIONS = 3


def start_broker(port: int) -> str:
    env = dict(
        os.environ,
        CAREWATCH_KAFKA_PORT=str(port),
        CAREWATCH_KAFKA_CONTROLLER_PORT=str(port + 1),
        CAREWATCH_KAFKA_STATE_DIR=str(ROOT / "deploy/kafka/.state-bench"),
    )
    out = subprocess.run(
        [str(ROOT / "deploy/kafka/broker"), "start"], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        sys.exit(f"broker did not start:\n{out.stderr}")
    return out.stdout.strip().splitlines()[-1]


class Setup:
    #: command the worker runs under (``--worker-prefix``), e.g. a sampling profiler
    prefix: tuple[str, ...] = ()

    def __init__(self, bootstrap: str, tmp: Path, **extra: str) -> None:
        tag = f"b{uuid.uuid4().hex[:8]}"
        self.bootstrap = bootstrap
        self.tmp = tmp
        self.topics = {
            k: f"{tag}.{k}" for k in ("events", "outcomes", "failures", "rejected", "sessions")
        }
        self.env = dict(
            os.environ,
            CAREWATCH_KAFKA_BOOTSTRAP=bootstrap,
            CAREWATCH_GROUP_ID=f"{tag}-group",
            CAREWATCH_PARTITIONS=str(PARTITIONS),
            **{f"CAREWATCH_TOPIC_{k.upper()}": v for k, v in self.topics.items()},
            **extra,
        )
        subprocess.run(
            [sys.executable, "-m", "streams.cli", "kafka", "init"],
            env=self.env,
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        self.worker: subprocess.Popen[bytes] | None = None

    def start_worker(self, *args: str) -> None:
        log = (self.tmp / f"{self.topics['events']}.log").open("wb")
        prefix = [a.replace("{tag}", self.topics["events"]) for a in self.prefix]
        self.worker = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-m",
                "streams.cli",
                "worker",
                "--data-dir",
                str(self.tmp),
                *args,
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            # a profiler in front of the worker writes its output on SIGINT
            self.worker.send_signal(signal.SIGINT if self.prefix else signal.SIGTERM)
            self.worker.wait(timeout=60)

    def producer(self) -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024
        )

    def consumer(self, role: str) -> KafkaConsumer:
        return KafkaConsumer(
            self.topics[role],
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=200,
        )


def sentinel_patients() -> list[str]:
    """One patient id per partition, so every partition has an end-of-input marker."""
    out: dict[int, str] = {}
    i = 0
    while len(out) < PARTITIONS:
        name = f"SENTINEL-{i}"
        out.setdefault(partition_for(name.encode(), PARTITIONS), name)
        i += 1
    return list(out.values())


def throughput(bootstrap: str, tmp: Path, days: int, scale: str) -> dict[str, float]:
    gen = generate(GeneratorConfig(days=days, seed=7, scale=scale))
    lines = list(deliver(gen.records, DeliveryFaults(shuffle_within=600.0), seed=7))
    end = max(t for t, _, _ in gen.records)
    s = Setup(bootstrap, tmp)
    producer = s.producer()
    t0 = time.monotonic()
    events = s.topics["events"]
    for line in lines:
        obj = orjson.loads(line)
        producer.send(events, key=event_key(obj), value=line.rstrip(b"\n"))
    sentinels = sentinel_patients()
    for i, patient in enumerate(sentinels):
        ev = {
            "id": f"sentinel-{i}",
            "type": "order.placed",
            "time": format_time(end),
            "patient": patient,
            "refs": {"order": f"SO-{i}"},
            "attrs": {"priority": "stat"},
        }
        producer.send(events, key=patient.encode(), value=orjson.dumps(ev))
    value, headers = control_message("advance", end + 60 * 86400.0)
    for p in range(PARTITIONS):
        producer.send(events, value=value, partition=p, headers=list(headers))
    producer.flush()
    publish_s = time.monotonic() - t0
    n = len(lines) + len(sentinels)
    print(f"published {n:,} events in {publish_s:.1f}s ({n / publish_s:,.0f}/s)", flush=True)

    s.start_worker("--replay")
    try:
        return _drain(s, sentinels, n, publish_s, tmp)
    finally:
        s.stop()


def _drain(s: Setup, sentinels: list[str], n: int, publish_s: float, tmp: Path) -> dict[str, float]:
    first = last = None
    want = {f"sentinel-{i}" for i in range(len(sentinels))}
    outcomes = 0
    c = s.consumer("outcomes")
    deadline = time.monotonic() + 900
    while want and time.monotonic() < deadline:
        for msg in c:
            now = time.monotonic()
            outcomes += 1
            if first is None:
                first = now
            rec = orjson.loads(msg.value)
            if rec["evidence"] and rec["evidence"][0] in want and rec["outcome"] == "missed":
                want.discard(rec["evidence"][0])
                last = now
    c.close()
    if want or first is None or last is None:
        sys.exit(f"the worker did not finish within the time limit; see {tmp}")
    drain = last - first
    return {
        "events": n,
        "publish_per_s": n / publish_s,
        "seconds": drain,
        "per_s": n / drain,
        "outcomes": outcomes,
    }


def latency(
    bootstrap: str, tmp: Path, rate: float, seconds: float, lateness: str, tick: str
) -> dict[str, float]:
    rules = tmp / "latency-rules.yaml"
    rules.write_text(f"engine:\n  allowed_lateness: {lateness}\n")
    s = Setup(bootstrap, tmp, CAREWATCH_TICK_INTERVAL=tick)
    s.start_worker("--rules", str(rules))
    producer = s.producer()
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    stop = threading.Event()

    def read() -> None:
        c = s.consumer("failures")
        while not stop.is_set():
            for msg in c:
                rec = orjson.loads(msg.value)
                if rec["detector"] == "contact-after-death":
                    got.setdefault(rec["evidence"][-1], time.monotonic())
        c.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    rng = random.Random(1)
    events = s.topics["events"]
    seq = 0

    def send(obj: dict[str, Any]) -> None:
        producer.send(events, key=obj["patient"].encode(), value=orjson.dumps(obj))

    def violation(tag: str) -> str:
        nonlocal seq
        seq += 1
        now = time.time()
        patient = f"D{tag}{seq}"
        send(
            {
                "id": f"died-{tag}{seq}",
                "type": "patient.died",
                "time": format_time(now - 1),
                "patient": patient,
            }
        )
        cid = f"contact-{tag}{seq}"
        send(
            {
                "id": cid,
                "type": "patient.notified",
                "time": format_time(now),
                "patient": patient,
                "refs": {"appointment": f"A{seq}"},
                "attrs": {"channel": "sms"},
            }
        )
        return cid

    # warm up: the worker is up once a violation comes back
    warm = violation("w")
    producer.flush()
    deadline = time.monotonic() + 120
    while warm not in got and time.monotonic() < deadline:
        time.sleep(0.2)
    if warm not in got:
        sys.exit(f"the live worker produced nothing within 120 s; see {tmp}")

    start = time.monotonic()
    n = 0
    slot = 0.01
    while time.monotonic() - start < seconds:
        t_slot = time.monotonic()
        for _ in range(max(1, int(rate * slot))):
            n += 1
            if n % 100 == 0:
                cid = violation("v")
                sent[cid] = time.monotonic()
                n += 1
            else:
                send(
                    {
                        "id": f"n{n}",
                        "type": "patient.notified",
                        "time": format_time(time.time()),
                        "patient": f"P{rng.randrange(50_000)}",
                        "refs": {"appointment": f"A{n}"},
                        "attrs": {"channel": "letter"},
                    }
                )
        left = slot - (time.monotonic() - t_slot)
        if left > 0:
            time.sleep(left)
    producer.flush()
    deadline = time.monotonic() + 30
    while any(c not in got for c in sent) and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    reader.join(timeout=5)
    s.stop()
    lat = sorted(got[c] - t for c, t in sent.items() if c in got)
    if not lat:
        sys.exit("no violation came back")

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))]

    return {
        "events": n,
        "rate": n / seconds,
        "violations": len(sent),
        "received": len(lat),
        "p50": q(0.50),
        "p99": q(0.99),
        "max": lat[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bootstrap", help="use this broker instead of starting one")
    ap.add_argument("--port", type=int, default=29492, help="port of the bench broker")
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--scale", default="medium")
    ap.add_argument("--rate", type=float, default=2000.0, help="events/s in the latency run")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--lateness", default="1s")
    ap.add_argument("--tick", default="0.25s")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument(
        "--worker-prefix",
        default="",
        help="command to run each worker under, e.g. a sampling profiler; {tag} in it\n"
        "becomes the run's topic prefix, so each worker can write its own file",
    )
    args = ap.parse_args()
    Setup.prefix = tuple(shlex.split(args.worker_prefix))
    bootstrap = args.bootstrap or start_broker(args.port)
    with tempfile.TemporaryDirectory(prefix="cw-kafka-bench-") as d:
        tmp = Path(d)
        if not args.skip_throughput:
            t = throughput(bootstrap, tmp, args.days, args.scale)
            print(
                f"throughput: {t['events']:,.0f} events drained by one worker in {t['seconds']:.1f}s "
                f"= {t['per_s']:,.0f} events/s ({t['outcomes']:,.0f} outcome records); "
                f"publish {t['publish_per_s']:,.0f} events/s",
                flush=True,
            )
        r = latency(bootstrap, tmp, args.rate, args.seconds, args.lateness, args.tick)
        print(
            f"latency (live, lateness {args.lateness}, tick {args.tick}, {r['rate']:,.0f} events/s, "
            f"{r['received']}/{r['violations']} violations): p50 {r['p50']:.3f}s  "
            f"p99 {r['p99']:.3f}s  max {r['max']:.3f}s"
        )
    if not args.bootstrap:
        print(
            "(bench broker left running; stop it with CAREWATCH_KAFKA_STATE_DIR="
            "deploy/kafka/.state-bench CAREWATCH_KAFKA_PORT=... deploy/kafka/broker stop)"
        )


if __name__ == "__main__":
    main()
