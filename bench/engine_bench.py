"""Benchmark of the streaming engine (issue: detector engine), not a test.

Prints, for one generated input of about 1,000,000 canonical events with every built-in
detector on (plus the local rules in ``bench/stress-rules.yaml``, which keep 200,000+
opportunities open at the peak):

- the parse floor: reading the file and turning each line into an ``Event``;
- the embedded engine: the same reading plus detection (outputs kept in memory);
- the ratio of the two, events/s, peak RSS and the peak number of open opportunities.

Each measurement runs in its own process, so peak RSS is that of the measurement alone.

Usage:
    .venv/bin/python bench/engine_bench.py                 # generate ~1M events, measure
    .venv/bin/python bench/engine_bench.py --input FILE    # measure an existing JSONL file
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EVENTS_PER_LARGE_DAY = 52_000  # what `carewatch generate --scale large` gives a day, roughly


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_parse(path: str) -> dict[str, float]:
    """Parse floor: read every line and build the typed event."""
    import orjson

    from detectors.events import event_from_dict

    loads = orjson.loads
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    with open(path, "rb") as f:
        for line in f:
            event_from_dict(loads(line))
            n += 1
    return {
        "events": n,
        "wall": time.perf_counter() - t0,
        "cpu": time.process_time() - c0,
        "rss_mb": _rss_mb(),
    }


def child_engine(path: str, rules: str | None) -> dict[str, float]:
    """Reading, parsing and detection, as the embedded runner does it."""
    from detectors.events import Event
    from detectors.rules import load_settings
    from streams.jsonl import read_jsonl
    from streams.runner import Runner

    runner = Runner(load_settings(rules))
    engine = runner.engine
    process = engine.process
    open_now = engine.stats.open_now
    peak_open = 0
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for rec in read_jsonl(path):
        if type(rec) is Event:
            process(rec)
            n += 1
            if n & 0x3FFF == 0:
                peak_open = max(peak_open, sum(open_now.values()))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    result = runner.finish()
    return {
        "events": n,
        "wall": wall,
        "cpu": cpu,
        "rss_mb": _rss_mb(),
        "peak_open": peak_open,
        "outcomes": len(result.outcomes),
        "failures": len(result.failures()),
        "open_at_end": len(result.open),
    }


def run_child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", help="canonical JSONL to measure (default: generate one)")
    p.add_argument("--events", type=int, default=1_000_000, help="events to generate (about)")
    p.add_argument("--rules", default=str(HERE / "stress-rules.yaml"), help="rules file")
    p.add_argument(
        "--repeat", type=int, default=3, help="runs of each measurement; the best counts"
    )
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        mode, path, *rest = args.child
        res = (
            child_parse(path) if mode == "parse" else child_engine(path, rest[0] if rest else None)
        )
        print(json.dumps(res))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        path = args.input
        if path is None:
            days = max(1, round(args.events / EVENTS_PER_LARGE_DAY))
            path = str(Path(tmp) / "events.jsonl")
            print(
                f"generating ~{args.events:,} events (large hospital, {days} days, seed 1)...",
                file=sys.stderr,
            )
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "streams.cli",
                    "generate",
                    "--scale",
                    "large",
                    "--days",
                    str(days),
                    "--seed",
                    "1",
                    "--quiet",
                    "--out",
                    path,
                ],
                check=True,
            )
        parse = min((run_child("parse", path) for _ in range(args.repeat)), key=lambda r: r["cpu"])
        engine = min(
            (run_child("engine", path, args.rules) for _ in range(args.repeat)),
            key=lambda r: r["cpu"],
        )

    n = engine["events"]
    ratio = engine["cpu"] / parse["cpu"]
    rate = n / engine["cpu"]
    print(f"events                    {n:,}")
    print(
        f"parse floor               {n / parse['cpu']:>12,.0f} events/s  ({parse['cpu']:.2f} s CPU, peak RSS {parse['rss_mb']:,.0f} MB)"
    )
    print(
        f"engine (parse + detect)   {rate:>12,.0f} events/s  ({engine['cpu']:.2f} s CPU, {engine['wall']:.2f} s wall)"
    )
    print(f"engine / parse floor      {ratio:>12.2f} x")
    print(f"peak RSS (engine run)     {engine['rss_mb']:>12,.0f} MB")
    print(f"peak open opportunities   {engine['peak_open']:>12,}")
    print(
        f"outcomes / failures       {engine['outcomes']:,} / {engine['failures']:,}  ({engine['open_at_end']:,} open at end)"
    )
    print(
        "targets: >= 100,000 events/s: {}; <= 3x parse floor: {}; peak RSS < 1 GB with >= 200,000 open: {}".format(
            "met" if rate >= 100_000 else "NOT met",
            "met" if ratio <= 3 else "NOT met",
            "met" if engine["rss_mb"] < 1024 and engine["peak_open"] >= 200_000 else "NOT met",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
