"""How cost grows with size: engine, pandas oracle and the parse floor at 100k, 1M and
(with --huge) 10M generated events, in one run. Not a test.

For each size prints events/s (per core: CPU seconds, best of --repeat) and peak RSS of
the parse floor, the streaming engine (`carewatch run`) and the oracle
(`carewatch run --batch`, which holds every event in memory), the engine/oracle
throughput ratio, and the CPU microseconds per event (flat if cost is linear in events),
and a year-of-a-large-hospital replay estimate (50M events) for the engine.

Usage:
    .venv/bin/python bench/scale_bench.py            # 100k and 1M
    .venv/bin/python bench/scale_bench.py --huge     # also 10M (needs ~20 GB and time)
    .venv/bin/python bench/scale_bench.py --build compiled   # parse and engine compiled
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BUILDS, generate_file, run_child

YEAR_OF_LARGE_HOSPITAL = 50_000_000


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--huge", action="store_true", help="also 10,000,000 events")
    p.add_argument(
        "--repeat", type=int, default=1, help="runs of each measurement; least CPU counts"
    )
    p.add_argument(
        "--build",
        choices=BUILDS,
        default="pure",
        help="build of the parse floor and the engine: pure (the sources, the default) or "
        "compiled (setup.py's mypyc build); the oracle is pandas either way",
    )
    args = p.parse_args()
    sizes = [100_000, 1_000_000] + ([10_000_000] if args.huge else [])

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            path = str(Path(tmp) / f"events-{size}.jsonl")
            generate_file(size, Path(path))
            parse = run_child("parse", path, repeat=args.repeat, build=args.build)
            engine = run_child(
                "engine", path, "", str(Path(tmp) / "e"), repeat=args.repeat, build=args.build
            )
            oracle = run_child("oracle", path, "", str(Path(tmp) / "o"), repeat=args.repeat)
            Path(path).unlink()
            rows.append((parse["events"], parse, engine, oracle))

    print(
        f"{'events':>11}  {'parse ev/s':>11}  {'engine ev/s':>11}  {'oracle ev/s':>11}  "
        f"{'eng/orc':>7}  {'eng us/ev':>9}  {'orc us/ev':>9}  {'RSS MiB parse/engine/oracle':>27}"
    )
    for n, parse, engine, oracle in rows:
        print(
            f"{n:>11,}  {n / parse['cpu']:>11,.0f}  {n / engine['cpu']:>11,.0f}  "
            f"{n / oracle['cpu']:>11,.0f}  {oracle['cpu'] / engine['cpu']:>7.2f}  "
            f"{engine['cpu'] / n * 1e6:>9.2f}  {oracle['cpu'] / n * 1e6:>9.2f}  "
            f"{parse['rss_mb']:>8,.0f} /{engine['rss_mb']:>7,.0f} /{oracle['rss_mb']:>7,.0f}"
        )
    print(f"(parse floor and engine: the {args.build} build)")
    n, _, engine, oracle = rows[-1]
    year = YEAR_OF_LARGE_HOSPITAL * engine["cpu"] / n
    print(
        f"\nengine throughput is {n / engine['cpu'] / (n / oracle['cpu']):.2f}x the oracle's at {n:,} events "
        f"(target: within 2x, i.e. >= 0.5)"
    )
    print(
        f"50M events (the target's year) at this rate: ~{year / 60:.1f} min on one core "
        f"(target: under 10 min; bench/year_bench.py replays them for real)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
