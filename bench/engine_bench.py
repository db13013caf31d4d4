"""Benchmark of the streaming engine (issue: detector engine), not a test.

On about 1,000,000 generated canonical events with every built-in detector on, prints:
the parse floor (reading the file and building each ``Event``), the embedded engine
(the same plus detection and writing the four output files, as `carewatch run`), their
ratio, events/s and peak RSS. A second run adds the local rules in
``bench/stress-rules.yaml``, which keep 200,000+ opportunities open at the peak, for the
memory target. Each measurement runs in its own process; CPU seconds are reported
(best of --repeat), so the figures are per core. Both builds are measured, each with its
own parse floor: the pure-Python one (the sources) and the compiled one
(``CAREWATCH_COMPILE=1 pip install .``, made by ``bench/compiled.py``).

Usage:
    .venv/bin/python bench/engine_bench.py                 # generate ~1M events, measure
    .venv/bin/python bench/engine_bench.py --input FILE    # measure an existing JSONL file
    .venv/bin/python bench/engine_bench.py --build pure    # one build only
    .venv/bin/python bench/engine_bench.py --stages        # and where the time goes
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import builds_arg, generate_file, run_child

HERE = Path(__file__).resolve().parent
STAGES = (
    ("read, JSON, build Events (the run's reader)", "read"),
    ("+ dedupe, counts, watermark (no detector)", "dedupe"),
    ("+ the detectors, records built, not written", "detect"),
)
BUILD_NAMES = {"pure": "pure Python (the sources)", "compiled": "compiled (mypyc, setup.py)"}


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", help="canonical JSONL to measure (default: generate one)")
    p.add_argument("--events", type=int, default=1_000_000, help="events to generate (about)")
    p.add_argument(
        "--repeat", type=int, default=3, help="runs of each measurement; the least CPU counts"
    )
    p.add_argument(
        "--build",
        type=builds_arg,
        default="both",
        help="pure (the sources), compiled (setup.py's mypyc build) or both (default)",
    )
    p.add_argument(
        "--stages",
        action="store_true",
        help="also measure the engine's parts one after another (read; + dedupe; + "
        "detectors; + writing) to show where its time goes",
    )
    args = p.parse_args()

    results = {}
    stages: dict[str, list[tuple[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = args.input
        if path is None:
            path = str(Path(tmp) / "events.jsonl")
            generate_file(args.events, Path(path))
        for build in args.build:
            out = Path(tmp) / build
            results[build] = (
                run_child("parse", path, repeat=args.repeat, build=build),
                run_child("engine", path, "", str(out / "a"), repeat=args.repeat, build=build),
                run_child(
                    "engine", path, str(HERE / "stress-rules.yaml"), str(out / "b"), build=build
                ),
            )
            if args.stages:
                stages[build] = [
                    (name, run_child("stage", path, stage, repeat=args.repeat, build=build)["cpu"])
                    for name, stage in STAGES
                ]

    for build, (parse, engine, stress) in results.items():
        n = engine["events"]
        rate = n / engine["cpu"]
        ratio = engine["cpu"] / parse["cpu"]
        print(f"== {BUILD_NAMES[build]}")
        print(f"events                          {n:,}")
        print(
            f"parse floor                     {n / parse['cpu']:>10,.0f} events/s  ({parse['cpu']:.2f} s CPU)"
        )
        print(
            f"engine, built-in detectors      {rate:>10,.0f} events/s  ({engine['cpu']:.2f} s CPU, {engine['wall']:.2f} s wall)"
        )
        print(f"engine / parse floor            {ratio:>10.2f} x")
        print(
            f"peak RSS, built-in detectors    {engine['rss_mb']:>10,.0f} MiB  (peak open {engine['peak_open']:,})"
        )
        print(
            f"with stress rules: peak open    {stress['peak_open']:>10,}  peak RSS {stress['rss_mb']:,.0f} MiB, "
            f"{n / stress['cpu']:,.0f} events/s"
        )
        print(f"outcomes / failures             {engine['outcomes']:,} / {engine['failures']:,}")
        verdict = {
            ">= 100,000 events/s": rate >= 100_000,
            "<= 3x parse floor": ratio <= 3,
            "< 1 GiB RSS with >= 200,000 open": stress["rss_mb"] < 1024
            and stress["peak_open"] >= 200_000,
        }
        print(
            "targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in verdict.items())
        )
        if build in stages:
            print("where the time goes (each step adds to the one before; CPU s, x floor):")
            for name, cpu in [
                *stages[build],
                ("+ the runner, writing the four files", engine["cpu"]),
            ]:
                print(f"  {name:<44} {cpu:>7.2f} s  {cpu / parse['cpu']:>5.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
