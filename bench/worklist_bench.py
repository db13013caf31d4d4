"""The operations store on PostgreSQL: worklist page latency and Kafka sink ingest rate.

    URL=$(deploy/postgres/db start | tail -n 1)
    BOOT=$(deploy/kafka/broker start | tail -n 1)
    python bench/worklist_bench.py --store "$URL" --kafka "$BOOT" [--failures 200000]

1. Fills a fresh schema of the database with ``--failures`` synthetic failure records
   (seven detectors, four sites, a third of them amended later) through ``Store.upsert``,
   then runs VACUUM ANALYZE (as autovacuum would soon after such a load).
2. Serves the worklist in-process (the real app, through HTTP with Starlette's test
   client: routing, session check, query, rendering) and times ``--requests`` page
   loads with a filter (a detector, a site, or both; a random page among the first ten;
   every tenth one an exact id search). Prints the p50/p95/max in ms. Target p95 < 300 ms.
3. Produces the same records onto a fresh Kafka topic (3 partitions), then times
   ``KafkaStoreSink`` consuming all of them into another fresh schema, as
   ``carewatch kafka sink`` does. Prints failures/s. Target >= 5,000/s.

Everything is synthetic. The schemas (and topic) are dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from detectors.events import format_time

DETECTORS = (
    "reschedule-notice",
    "result-overdue",
    "result-unacknowledged",
    "discharge-summary-overdue",
    "clinic-letter-overdue",
    "clinic-overbooked",
    "contact-after-death",
)
SITES = ("north", "south", "east", "west")
T0 = 1_772_000_000.0


def records(n: int, seed: int = 7) -> list[bytes]:
    """``n`` failures as missed records, then a late amendment of every third one."""
    rnd = random.Random(seed)
    out: list[bytes] = []
    amend: list[bytes] = []
    for i in range(n):
        due = T0 + rnd.uniform(0, 90 * 86400)
        rec: dict[str, Any] = {
            "failure_id": f"{i:016x}",
            "detector": DETECTORS[i % len(DETECTORS)],
            "status": "missed",
            "patient": f"P{rnd.randrange(10**7):07d}",
            "refs": {"appointment": f"A{i:08d}", "order": f"O{i:08d}"},
            "opened_at": format_time(due - 86400),
            "due_at": format_time(due),
            "closed_at": None,
            "detected_at": format_time(due + 600),
            "evidence": [f"E{i:09d}"],
            "attrs": {"site": SITES[i % 4], "specialty": "cardiology", "clinic": f"C{i % 40}"},
            "summary": f"Order O{i:08d} was placed at Tue 03 Mar 2026 05:57 UTC; its result "
            "was due by Tue 03 Mar 2026 06:57 UTC and has not happened.",
        }
        out.append(orjson.dumps(rec))
        if i % 3 == 0:
            late = dict(rec, status="late", closed_at=format_time(due + 3600))
            amend.append(orjson.dumps(late))
    return out + amend


def fresh_schema(base: str) -> tuple[str, str]:
    """A new schema in the database at ``base``: (its name, a URL that uses it)."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in base else "?"
    return name, f"{base}{sep}options=-csearch_path%3D{name}"


def drop_schema(base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def fill(url: str, lines: list[bytes]) -> float:
    """Upsert ``lines`` in batches of 5,000; returns records/s."""
    from streams.store import open_store, parse_failure

    store = open_store(url, create=True)
    started = time.perf_counter()
    for start in range(0, len(lines), 5000):
        store.upsert([parse_failure(x) for x in lines[start : start + 5000]])
    rate = len(lines) / (time.perf_counter() - started)
    store.add_user("bench", "coordinator", "bench password 1")
    store.close()
    # what autovacuum does soon after a bulk load: statistics, and the visibility map
    # that lets the counts per detector be index-only scans
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE failures")
        conn.execute("VACUUM ANALYZE failure_history")
    return rate


def page_latency(url: str, requests: int, seed: int = 3) -> list[float]:
    """Milliseconds of each worklist page load with a filter."""
    import re

    from starlette.testclient import TestClient

    from streams.store import open_store
    from streams.web import WebSettings, build_app

    store = open_store(url)
    client = TestClient(build_app(store, WebSettings(zone=ZoneInfo("Europe/London"))))
    form = client.get("/signin").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token
    r = client.post(
        "/signin", data={"name": "bench", "password": "bench password 1", "csrf": token[1]}
    )
    assert r.status_code == 200, r.status_code  # followed the redirect to the worklist
    rnd = random.Random(seed)
    times = []
    for i in range(requests):
        params: dict[str, str] = {"page": str(rnd.randint(1, 10))}
        kind = i % 3
        if kind in (0, 2):
            params["detector"] = rnd.choice(DETECTORS)
        if kind in (1, 2):
            params["site"] = rnd.choice(SITES)
        if i % 10 == 9:
            params = {"q": f"A{rnd.randrange(len(DETECTORS) * 1000):08d}", "state": "all"}
        started = time.perf_counter()
        resp = client.get("/", params=params)
        times.append((time.perf_counter() - started) * 1000)
        assert (resp.status_code == 200 and "open failures" in resp.text) or "all" in params.get(
            "state", ""
        )
    store.close()
    return times


def sink_rate(url: str, bootstrap: str, lines: list[bytes], keep: bool) -> float:
    """Produce ``lines`` onto a fresh topic; time the sink reading all into ``url``."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    from streams.store import open_store
    from streams.store.sink import KafkaStoreSink

    topic = f"bench.failures.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20)
    for x in lines:
        producer.send(topic, key=x[15:31], value=x)
    producer.flush()
    producer.close()
    store = open_store(url, create=True)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=5000,
        fetch_max_bytes=64 << 20,
    )
    sink = KafkaStoreSink(consumer, store, batch=5000, report=lambda line: None)
    while not consumer.assignment():  # joining the group is not ingest time
        consumer.poll(timeout_ms=200, max_records=1)
    consumer.seek_to_beginning()
    started = time.perf_counter()
    counts = sink.run(stop=lambda: sink.counts.records >= len(lines))
    seconds = time.perf_counter() - started
    done = counts.records
    consumer.close()
    store.close()
    if not keep:
        admin.delete_topics([topic])
    admin.close()
    return done / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--store", required=True, help="postgresql:// URL (deploy/postgres/db start)")
    ap.add_argument("--kafka", help="bootstrap address; without it the sink part is left out")
    ap.add_argument("--failures", type=int, default=200_000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--keep", action="store_true", help="keep the schemas and the topic")
    args = ap.parse_args()
    if not args.store.startswith(("postgresql://", "postgres://")):
        sys.exit("worklist_bench: --store must be a postgresql:// URL")
    print(f"python {platform.python_version()}, {platform.machine()}, {args.failures:,} failures")
    lines = records(args.failures)
    schema, url = fresh_schema(args.store)
    try:
        rate = fill(url, lines)
        print(
            f"filled: {len(lines):,} records ({args.failures:,} failures) at {rate:,.0f} records/s"
        )
        times = sorted(page_latency(url, args.requests))
        p95 = times[int(0.95 * (len(times) - 1))]
        print(
            f"worklist page with a filter, {len(times)} loads: p50 {statistics.median(times):.0f} ms, "
            f"p95 {p95:.0f} ms, max {times[-1]:.0f} ms (target p95 < 300 ms)"
        )
    finally:
        if not args.keep:
            drop_schema(args.store, schema)
    if args.kafka:
        schema, url = fresh_schema(args.store)
        try:
            rate = sink_rate(url, args.kafka, lines, args.keep)
            print(
                f"kafka sink: {len(lines):,} records at {rate:,.0f} failures/s (target >= 5,000/s)"
            )
        finally:
            if not args.keep:
                drop_schema(args.store, schema)


if __name__ == "__main__":
    main()
