"""A year-scale replay, measured rather than extrapolated (not a test).

The target (issue: synthetic traffic, oracle, benchmarks): a year of a large hospital's
traffic, about 50 million events, replayed by the streaming engine in under 10 minutes
on one core. No generator here holds 50M events in memory, so this script tiles one
generated four-week run of a large hospital: tile k is that traffic moved 4k weeks on
(weekdays stay weekdays) with every event id, reference and patient given the tile's
suffix, so no two tiles share an opportunity. A feeder process merges the tiles in event
time and pipes canonical JSON Lines into ``carewatch run -``. The run's own CPU seconds
are the figure; the feeder works on the other core. The run writes its four files as
usual (into a temporary directory, which needs room: about 200 bytes per outcome).

With ``--archive`` the merged tiles are first written to one JSON Lines file (untimed;
about 230 bytes per event, so some 12 GB for 50M), which ``carewatch run FILE`` then
replays alone, as a QI team replays a year's archive. On 4.3M events both ways cost the
run the same CPU within noise (55.2 s from the archive, 54.4 s piped).

Prints events, CPU and wall seconds, events/s, peak RSS of the run, and the verdict.
The replay runs on the compiled build (``setup.py``, made by ``bench/compiled.py``)
unless ``--build pure`` says otherwise.

Usage:
    .venv/bin/python bench/year_bench.py                      # 50M events, compiled build
    .venv/bin/python bench/year_bench.py --build pure         # the same on the sources
    .venv/bin/python bench/year_bench.py --events 5000000     # a shorter look
    .venv/bin/python bench/year_bench.py --archive            # replay a file written first
    .venv/bin/python bench/year_bench.py --workdir DIR        # where the files go
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any, BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BUILDS, EVENTS_PER_LARGE_DAY, ROOT, build_env, check_build, generate_file

TILE_DAYS = 28
TILE_SECONDS = TILE_DAYS * 86400.0
TARGET_EVENTS = 50_000_000
TARGET_SECONDS = 600.0
#: ``carewatch`` itself, after a line saying which build it imported (checked below)
_RUN_AND_SAY_BUILD = (
    "import sys, detectors.engine as e; print('engine:', e.__file__, flush=True); "
    "from streams.cli import main; sys.exit(main(sys.argv[1:]))"
)
_TIME_ATTRS = ("start", "previous_start")


def _load(base: Path) -> tuple[list[float], list[dict[str, Any]]]:
    """The base run's events, sorted by event time, with their times as epoch seconds."""
    import orjson

    from detectors.events import parse_time

    rows = []
    with base.open("rb") as f:
        for line in f:
            obj = orjson.loads(line)
            rows.append((parse_time(obj["time"]), obj["id"], obj))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[0] for r in rows], [r[2] for r in rows]


def _moved(obj: dict[str, Any], k: int, dates: dict[tuple[str, int], str]) -> dict[str, Any]:
    """Event ``obj`` as it appears in tile ``k``: times moved, identifiers suffixed.

    A move is a whole number of days, so only the date part of a time changes (the
    generator writes UTC times); ``dates`` remembers the moved dates.
    """
    if k == 0:
        return obj

    def move(stamp: str) -> str:
        found = dates.get((stamp[:10], k))
        if found is None:
            day = date.fromisoformat(stamp[:10]) + timedelta(days=k * TILE_DAYS)
            found = dates[(stamp[:10], k)] = day.isoformat()
        return found + stamp[10:]

    tag = f"~{k}"
    out = dict(obj)
    out["id"] = obj["id"] + tag
    out["time"] = move(obj["time"])
    if "patient" in obj:
        out["patient"] = obj["patient"] + tag
    out["refs"] = {name: ref + tag for name, ref in obj.get("refs", {}).items()}
    attrs = obj.get("attrs")
    if attrs and any(a in attrs for a in _TIME_ATTRS):
        attrs = dict(attrs)
        for a in _TIME_ATTRS:
            if isinstance(attrs.get(a), str):
                attrs[a] = move(attrs[a])
        out["attrs"] = attrs
    return out


def _merged(times: list[float], events: list[dict[str, Any]], tiles: int) -> Iterator[bytes]:
    """Every event of ``tiles`` tiles, in event-time order, one JSON line each.

    Works window by window (a tile's length each): a window takes from every tile that
    overlaps it the events that fall in it, and merges those sorted slices.
    """
    import orjson

    t0, t1 = times[0], times[-1]
    reach = int((t1 - t0) // TILE_SECONDS) + 1  # how many windows one tile spans
    dumps = orjson.dumps
    dates: dict[tuple[str, int], str] = {}
    for w in range(tiles + reach):
        lo, hi = t0 + w * TILE_SECONDS, t0 + (w + 1) * TILE_SECONDS
        slices = []
        for k in range(max(0, w - reach), min(w, tiles - 1) + 1):
            shift = k * TILE_SECONDS
            a = bisect.bisect_left(times, lo - shift)
            b = bisect.bisect_left(times, hi - shift)
            if a < b:
                slices.append([(times[i] + shift, k, i) for i in range(a, b)])
        for _, k, i in heapq.merge(*slices):
            yield dumps(_moved(events[i], k, dates)) + b"\n"


def feed(base: str, tiles: int, out: BinaryIO, progress: bool = False) -> int:
    """Write the merged tiles to ``out`` (the feeder process: standard output)."""
    times, events = _load(Path(base))
    batch: list[bytes] = []
    written = 0
    total = tiles * len(events)
    try:
        for line in _merged(times, events, tiles):
            batch.append(line)
            if len(batch) >= 4096:
                out.write(b"".join(batch))
                written += len(batch)
                batch.clear()
                if progress and written % 2_000_000 < 4096:
                    print(f"  archive: {written:,} of {total:,} events", file=sys.stderr)
        out.write(b"".join(batch))
        out.flush()
    except BrokenPipeError:
        return 1
    return 0


def _run(args: list[str], build: str, stdin: Any = None) -> tuple[str, int, Any, float]:
    """Run ``carewatch run ARGS`` of ``build``; its summary, exit status, resource usage,
    wall seconds. Stops at once if the run imported another build."""
    env = build_env(build)  # before the clock: a rebuild is no part of the replay
    started = time.perf_counter()
    run = subprocess.Popen(
        # -P: no working directory first on the path (see build_env)
        [sys.executable, "-P", "-c", _RUN_AND_SAY_BUILD, "run", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    if stdin is not None:
        stdin.close()  # the run holds the pipe now
    assert run.stdout is not None
    said = run.stdout.readline().decode().strip()
    try:
        check_build(build, said.removeprefix("engine: "))
    except RuntimeError:
        run.kill()
        run.wait()
        raise
    summary = run.stdout.read().decode()
    _, status, usage = os.wait4(run.pid, 0)
    return summary, status, usage, time.perf_counter() - started


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--events", type=int, default=TARGET_EVENTS, help="events to replay (about; whole tiles)"
    )
    p.add_argument(
        "--archive",
        action="store_true",
        help="write the events to a file first, then replay the file (needs ~230 bytes/event)",
    )
    p.add_argument(
        "--workdir", help="directory for the archive and the run's files (default: system temp)"
    )
    p.add_argument(
        "--build",
        choices=BUILDS,
        default="compiled",
        help="which build replays: compiled (setup.py's mypyc build, the default: what "
        "a long replay should run on) or pure (the sources)",
    )
    p.add_argument("--feed", nargs=2, metavar=("BASE", "TILES"), help=argparse.SUPPRESS)
    p.add_argument("--feed-progress", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.feed:
        return feed(args.feed[0], int(args.feed[1]), sys.stdout.buffer, args.feed_progress)

    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="carewatch-year-") as tmp:
        base = Path(tmp) / "base.jsonl"
        generate_file(TILE_DAYS * EVENTS_PER_LARGE_DAY, base)
        with base.open("rb") as f:
            per_tile = sum(1 for _ in f)
        tiles = max(1, round(args.events / per_tile))
        out = str(Path(tmp) / "out")
        what = f"{tiles} tiles of {per_tile:,} events ({tiles * per_tile:,} events, {tiles * TILE_DAYS} days of a large hospital)"
        if not args.archive:
            print(f"replaying {what} through `carewatch run -`...", file=sys.stderr)
            feeder = subprocess.Popen(
                [sys.executable, __file__, "--feed", str(base), str(tiles)],
                stdout=subprocess.PIPE,
                cwd=ROOT,
            )
            summary, status, usage, wall = _run(
                ["-", "--format", "jsonl", "--out", out], args.build, stdin=feeder.stdout
            )
            feeder.wait()
            failed = status != 0 or feeder.returncode != 0
        else:
            archive = Path(tmp) / "year.jsonl"
            print(f"writing {what} to {archive}...", file=sys.stderr)
            # in a process of its own: a run forked from a process holding the tiles
            # would report their pages in its peak RSS
            with archive.open("wb") as f:
                subprocess.run(
                    [sys.executable, __file__, "--feed", str(base), str(tiles), "--feed-progress"],
                    stdout=f,
                    cwd=ROOT,
                    check=True,
                )
            print(f"replaying it through `carewatch run {archive.name}`...", file=sys.stderr)
            summary, status, usage, wall = _run([str(archive), "--out", out], args.build)
            failed = status != 0
        if failed:
            print(summary, file=sys.stderr)
            print("the replay failed", file=sys.stderr)
            return 1

    events = tiles * per_tile
    cpu = usage.ru_utime + usage.ru_stime
    rate = events / cpu
    year = TARGET_EVENTS / rate
    print(summary.rstrip())
    print()
    print(
        f"events replayed                 {events:>12,}  ({'from an archive file' if args.archive else 'piped from a feeder'}, {args.build} build)"
    )
    print(
        f"CPU of the run                  {cpu:>12,.1f} s  (user {usage.ru_utime:,.1f} s, "
        f"system {usage.ru_stime:,.1f} s; wall {wall:,.1f} s)"
    )
    print(f"engine, end to end              {rate:>12,.0f} events/s on one core")
    print(f"peak RSS of the run             {usage.ru_maxrss / 1024:>12,.0f} MiB")
    print(
        f"50M events at this rate         {year / 60:>12.1f} min  "
        f"(target: under 10 min: {'met' if year < TARGET_SECONDS else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
