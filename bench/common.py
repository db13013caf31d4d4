"""Shared pieces of the benchmark scripts: making an input file and measuring one thing
per child process (so each peak RSS is that measurement's alone).

Each ``measure_*`` function returns plain numbers: ``events``, ``cpu`` and ``wall``
seconds, ``rss_mb`` (peak resident memory of the process, MiB), and ``build``: which
build of Carewatch the child really imported (``pure`` or ``compiled``, see
``bench/compiled.py``).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

EVENTS_PER_LARGE_DAY = 52_000  # what `carewatch generate --scale large` gives a day, roughly
ROOT = Path(__file__).resolve().parents[1]
#: The builds a benchmark can measure: the sources as they are, and the mypyc build.
BUILDS = ("pure", "compiled")


def build_env(build: str) -> dict[str, str]:
    """Environment for a child process that is to run ``build``: the compiled install
    (``bench/compiled.py``, rebuilt if stale) or this checkout's sources first on the
    path, whatever else is installed."""
    import os

    if build not in BUILDS:
        raise ValueError(f"unknown build {build!r}; one of {BUILDS}")
    if build == "compiled":
        from bench.compiled import ensure

        first = str(ensure())
    else:
        first = str(ROOT)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (first, env.get("PYTHONPATH")) if p)
    return env


def loaded_build() -> str:
    """``compiled`` if this process imported the compiled engine, else ``pure``."""
    import detectors.engine

    return "compiled" if str(detectors.engine.__file__).endswith((".so", ".pyd")) else "pure"


def check_build(build: str, engine_file: str) -> None:
    """Refuse a measurement whose child imported another build than ``build``: the
    compiled one from ``build/compiled/``, or the sources of this checkout."""
    from bench.compiled import DEFAULT_DIR

    path = Path(engine_file).resolve()
    compiled = path.suffix in (".so", ".pyd")
    home = DEFAULT_DIR if build == "compiled" else ROOT / "detectors"
    if compiled != (build == "compiled") or not path.is_relative_to(home.resolve()):
        raise RuntimeError(f"asked to measure the {build} build, the child ran {path}")


def builds_arg(value: str) -> list[str]:
    """``--build`` of the scripts: ``pure``, ``compiled`` or ``both``."""
    if value == "both":
        return list(BUILDS)
    if value not in BUILDS:
        raise ValueError(f"--build must be pure, compiled or both, not {value!r}")
    return [value]


def generate_file(events: int, path: Path, seed: int = 1) -> None:
    """Write about ``events`` generated canonical events (a large hospital) to ``path``."""
    days = max(1, round(events / EVENTS_PER_LARGE_DAY))
    print(
        f"generating ~{events:,} events (large hospital, {days} days, seed {seed})...",
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
            str(seed),
            "--quiet",
            "--out",
            str(path),
        ],
        check=True,
        cwd=ROOT,
    )


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _Clock:
    def __enter__(self) -> _Clock:
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0


def measure_parse(path: str) -> dict[str, Any]:
    """The floor: read every line and build the typed event, nothing else."""
    import orjson

    from detectors.events import event_from_dict

    loads = orjson.loads
    n = 0
    with _Clock() as c, open(path, "rb") as f:
        for line in f:
            event_from_dict(loads(line))
            n += 1
    return {"events": n, "cpu": c.cpu, "wall": c.wall, "rss_mb": _rss_mb()}


def measure_engine(path: str, rules: str | None, out_dir: str) -> dict[str, Any]:
    """What `carewatch run` does: read, parse, detect, write the four files."""
    from detectors.rules import load_settings
    from streams.adapters import iter_records
    from streams.runner import Runner, tune_gc
    from streams.sinks import FileSink

    tune_gc()  # as the command line does
    runner = Runner(load_settings(rules or None), FileSink(Path(out_dir)))
    open_now = runner.engine.stats.open_now
    peak = [0]

    def sample(_line: str) -> None:
        # the runner's own progress hook (every 4,096 events with every=0), so the timed
        # path is exactly the command's, with nothing wrapped around the input
        peak[0] = max(peak[0], sum(open_now.values()))

    with _Clock() as c:
        runner.feed(iter_records(path, "jsonl"), progress=sample, every=0.0)
        summary = runner.finish()
    rows = summary.rows()
    return {
        "events": summary.events,
        "cpu": c.cpu,
        "wall": c.wall,
        "rss_mb": _rss_mb(),
        "peak_open": peak[0],
        "outcomes": sum(r["opportunities"] for r in rows),
        "failures": sum(r["failures"] for r in rows),
    }


def measure_oracle(path: str, rules: str | None, out_dir: str) -> dict[str, Any]:
    """The pandas oracle (the tests' reference, ``tests/oracle``) over the same file:
    read and parse everything, then detect over all of it at once."""
    from detectors.rules import load_settings
    from streams.adapters import iter_records
    from streams.runner import tune_gc
    from streams.sinks import FileSink
    from tests.oracle.batch import run_batch

    tune_gc()
    with _Clock() as c:
        summary = run_batch(
            iter_records(path, "jsonl"), load_settings(rules or None), FileSink(Path(out_dir))
        )
    return {"events": summary.events, "cpu": c.cpu, "wall": c.wall, "rss_mb": _rss_mb()}


def measure_stage(path: str, stage: str) -> dict[str, Any]:
    """A part of what ``measure_engine`` does, for seeing where its time goes:
    ``read`` (the reader `carewatch run` uses, events built, nothing else), ``dedupe``
    (the engine with no detector: de-duplication, counts, watermark) or ``detect``
    (every built-in detector, records built and the open ones listed at the end, but
    nothing written)."""
    from detectors.engine import Engine
    from detectors.events import Event
    from detectors.rules import load_settings
    from streams.adapters import iter_records
    from streams.runner import tune_gc

    tune_gc()
    settings = load_settings(None)
    engine = Engine.from_settings(settings, detectors=None if stage == "detect" else [])
    n = 0
    with _Clock() as c:
        records = iter_records(path, "jsonl")
        if stage == "read":
            for rec in records:
                n += type(rec) is Event
        else:
            for rec in records:
                if type(rec) is Event:  # rejected lines are the runner's business
                    engine.process(rec)
                    n += 1
            engine.open_records()
    return {"events": n, "cpu": c.cpu, "wall": c.wall, "rss_mb": _rss_mb()}


MEASURES = {
    "parse": measure_parse,
    "engine": measure_engine,
    "oracle": measure_oracle,
    "stage": measure_stage,
}


def child_main(argv: list[str]) -> int:
    """``python bench/common.py KIND ARGS...``: one measurement, printed as JSON."""
    kind, *args = argv
    import detectors.engine

    res = MEASURES[kind](*args)
    res["build"] = loaded_build()
    res["engine_file"] = str(detectors.engine.__file__)
    print(json.dumps(res))
    return 0


def run_child(kind: str, *args: str, repeat: int = 1, build: str = "pure") -> dict[str, Any]:
    """Run one measurement of ``build`` in a fresh process ``repeat`` times; keep the
    least CPU. Fails if the child imported another build than the one asked for."""
    env = build_env(build)
    best: dict[str, Any] | None = None
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, str(Path(__file__)), kind, *args],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
        )
        res = json.loads(out.stdout.strip().splitlines()[-1])
        check_build(build, res["engine_file"])
        if best is None or res["cpu"] < best["cpu"]:
            best = res
    assert best is not None
    return best


if __name__ == "__main__":
    # appended, not put first: the compiled build, when asked for, comes first on the
    # path (PYTHONPATH) and must win over the sources
    sys.path.append(str(ROOT))
    sys.exit(child_main(sys.argv[1:]))
