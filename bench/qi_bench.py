"""QI benchmark: a large region's year of outcome records through measures, SPC and the report.

    .venv/bin/python bench/qi_bench.py [--records 10000000] [--ledger FILE] [--by site]

Makes (once, then reuses) a ledger of ``--records`` outcome records shaped exactly like
``carewatch run``'s: one real generated week of a large hospital (``carewatch generate
--scale large`` + ``carewatch run``) repeated week after week with fresh failure ids and
times, plus, for every amended record, its earlier ``missed`` record (so the latest-wins
read has real work). Then runs ``carewatch qi report LEDGER --out report.html`` (reading,
measures per week, SPC per measure, the HTML with its charts) in a child process pinned
to one core, with pyarrow held to one thread, and prints its wall time, CPU time and
peak RSS. Targets: under 60 s and under 2 GiB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
CARE = [sys.executable, "-m", "streams.cli"]
WEEK = 7 * 86400
_TIMES = ("opened_at", "due_at", "closed_at", "detected_at")
_MIX = 0x9E3779B97F4A7C15


def _templates(workdir: Path) -> list[dict]:
    """One real week of a large hospital's outcome ledger."""
    events = workdir / "week.jsonl.gz"
    run = workdir / "week-run"
    if not (run / "outcomes.jsonl").is_file():
        print("generating one week of a large hospital...", file=sys.stderr)
        subprocess.run(
            [
                *CARE,
                "generate",
                "--days",
                "7",
                "--scale",
                "large",
                "--seed",
                "11",
                "--out",
                str(events),
                "--quiet",
            ],
            check=True,
            cwd=ROOT,
        )
        subprocess.run(
            [*CARE, "run", str(events), "--out", str(run), "--quiet"],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
    with (run / "outcomes.jsonl").open("rb") as f:
        return [orjson.loads(line) for line in f]


def _epoch(text: str | None) -> float:
    if text is None:
        return np.nan
    return np.datetime64(text[:19], "s").astype(np.int64).item() - _offset(text)


def _offset(text: str) -> int:
    tail = text[19:].split(".")[-1] if "." in text[19:] else text[19:]
    tail = tail.lstrip("0123456789")
    if tail in ("", "Z", "+00:00"):
        return 0
    sign = 1 if tail[0] == "+" else -1
    return sign * (int(tail[1:3]) * 3600 + int(tail[4:6]) * 60)


def make_ledger(path: Path, records: int, workdir: Path) -> None:
    """Write ``records`` outcome records to ``path`` (see the module docstring)."""
    recs = _templates(workdir)
    # each template as a format string, its times as epoch seconds (NaN for null)
    formats, times, fids, doubles = [], [], [], []
    for r in recs:
        r = dict(r)
        fids.append(int(r["failure_id"], 16))
        times.append([_epoch(r[k]) for k in _TIMES])
        r["failure_id"] = "@FID@"
        for i, k in enumerate(_TIMES):
            if r[k] is not None:
                r[k] = f"@T{i}@"
        line = orjson.dumps(r).decode().replace("{", "{{").replace("}", "}}")
        line = line.replace('"@FID@"', '"{0}"')
        for i in range(4):
            line = line.replace(f'"@T{i}@"', f'"{{{i + 1}}}"')
        formats.append(line + "\n")
        if r.get("amended_from") == "missed":
            earlier = dict(r, outcome="missed", closed_at=None)
            earlier.pop("amended_from")
            earlier["detected_at"] = "@T1@"  # decided at the deadline, amended later
            e = orjson.dumps(earlier).decode().replace("{", "{{").replace("}", "}}")
            e = e.replace('"@FID@"', '"{0}"')
            for i in range(4):
                e = e.replace(f'"@T{i}@"', f'"{{{i + 1}}}"')
            doubles.append((len(formats) - 1, e + "\n"))
    base = np.array(times, dtype=float)
    fid_arr = np.array(fids, dtype=np.uint64)
    per_week = len(formats) + len(doubles)
    weeks = -(-records // per_week)
    print(
        f"writing {records:,} outcome records ({weeks} weeks of {per_week:,}) to {path}...",
        file=sys.stderr,
    )
    written = 0
    tmp = path.with_suffix(".partial")
    with tmp.open("w", encoding="utf-8") as out:
        for week in range(weeks):
            shifted = base + week * WEEK
            text = np.where(
                np.isnan(shifted),
                "",
                np.char.add(
                    np.datetime_as_string(
                        np.nan_to_num(shifted).astype(np.int64).astype("datetime64[s]"), unit="s"
                    ),
                    "+00:00",
                ),
            )
            ids = fid_arr ^ np.uint64((week * _MIX) & 0xFFFFFFFFFFFFFFFF)
            hexes = [f"{int(x):016x}" for x in ids]
            chunk = []
            for j, fmt in enumerate(formats):
                chunk.append(fmt.format(hexes[j], *text[j]))
            for j, fmt in doubles:
                chunk.append(fmt.format(hexes[j], *text[j]))
            take = min(len(chunk), records - written)
            out.writelines(chunk[:take])
            written += take
            if written >= records:
                break
    tmp.rename(path)


def measure(ledger: Path, out: Path, extra: list[str]) -> dict[str, float]:
    """Run ``carewatch qi report`` on one core; wall, CPU and peak RSS of the child."""
    env = dict(os.environ, ARROW_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cpu = min(os.sched_getaffinity(0))
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*CARE, "qi", "report", str(ledger), "--out", str(out), *extra],
        cwd=ROOT,
        env=env,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"carewatch qi report failed (status {status})")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,
    }


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--records", type=int, default=10_000_000)
    p.add_argument("--ledger", type=Path, help="use (or make) this ledger file")
    p.add_argument("--by", help="also break down by these fields (e.g. site)")
    p.add_argument("--workdir", type=Path, default=ROOT / "build" / "bench-qi")
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    ledger = args.ledger or args.workdir / f"outcomes-{args.records}.jsonl"
    if not ledger.is_file():
        make_ledger(ledger, args.records, args.workdir)
    size = ledger.stat().st_size
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--by", args.by] if args.by else []
        fig = measure(ledger, Path(tmp) / "report.html", extra)
    lines = sum(1 for _ in ledger.open("rb")) if args.records < 1_000_000 else args.records
    print(f"ledger: {lines:,} records, {size / 2**30:.2f} GiB ({ledger})")
    print(f"carewatch qi report{' --by ' + args.by if args.by else ''}, one core:")
    print(
        f"  wall {fig['wall']:.1f} s   CPU {fig['cpu']:.1f} s   peak RSS {fig['rss_mib']:.0f} MiB"
    )
    ok_time = fig["wall"] < 60
    ok_mem = fig["rss_mib"] < 2048
    print(
        f"  target < 60 s: {'met' if ok_time else 'NOT met'};  < 2 GiB: {'met' if ok_mem else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
