"""See Carewatch work in a minute, with no Kafka and no hospital data.

Generates a week of a mid-size hospital's messaging traffic (synthetic, with failures
injected at realistic rates and a few messages delivered out of order, twice, or broken),
runs every detector over it with the embedded runner, prints the summary and one
failure of each kind, says where the files are, writes the QI report of the week (daily
failure rates with their SPC charts, one offline HTML page), and ends with a command to
try next, written the way this one was called so that it works as printed.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from detectors.rules import Settings, load_settings
from streams.adapters import iter_records
from streams.commands import invocation
from streams.report import format_summary, stderr_progress
from streams.runner import Runner, tune_gc
from streams.sinks import FileSink
from streams.store.demo import DemoStore
from streams.synthetic import SCALES, DeliveryFaults, GeneratorConfig, deliver, generate
from streams.synthetic.output import open_output, write_json_lines, write_lines

__all__ = ["add_arguments", "main"]

_AFTER_END = 60 * 86400.0  # --as-of: far enough past the last event to decide everything


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        metavar="DIR",
        default="carewatch-demo",
        help="where to write (default: %(default)s)",
    )
    p.add_argument(
        "--days", type=int, default=7, help="days of care to generate (default: %(default)s)"
    )
    p.add_argument(
        "--scale",
        choices=sorted(SCALES),
        default="medium",
        help="hospital size (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    p.add_argument("--rules", metavar="FILE", help="rules YAML to try instead of the defaults")


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    settings = load_settings(args.rules)
    sink = FileSink(out)  # makes the directory, or says why it cannot
    store = DemoStore(sink, out)  # the failures into out/carewatch.db too, for the worklist
    tune_gc()
    say = stderr_progress
    say(f"generating {args.days} days of a {args.scale} hospital (seed {args.seed})...")
    run = generate(GeneratorConfig(days=args.days, seed=args.seed, scale=args.scale))
    faults = DeliveryFaults(shuffle_within=300.0, duplicates=0.005, malformed=0.0005)
    events_path = out / "events.jsonl.gz"
    with open_output(str(events_path)) as f:
        write_lines(deliver(run.records, faults, args.seed), f)
    with open_output(str(out / "truth.jsonl")) as f:
        write_json_lines(run.truth, f)

    say("running the detectors...")
    runner = Runner(settings, store)
    runner.feed(iter_records(events_path, "jsonl"))  # a short run: no progress lines
    last = run.records[-1][0]
    summary = runner.finish(as_of=last + _AFTER_END)

    cmd = invocation()
    print(format_summary(summary))
    # one count of events, the generated ones; the rest is what delivery did to them
    print(
        f"\n{len(run.records):,} events generated; delivered with {summary.duplicates:,} "
        f"duplicates (ignored) and {summary.rejected:,} broken messages (set aside in "
        "rejected.jsonl)."
    )
    print(store.instructions(cmd))
    _show_examples(out / "failures.jsonl")
    print(f"\nFiles in {out}/:")
    for name, what in (
        ("events.jsonl.gz", "the generated traffic (canonical events)"),
        ("failures.jsonl", "what an operations team acts on"),
        ("outcomes.jsonl", "every opportunity's outcome, the QI ledger"),
        ("open.jsonl", "opportunities still open"),
        ("rejected.jsonl", "the dead letter: input that could not be used, with reasons"),
        ("truth.jsonl", "what the generator injected, to check the detectors against"),
    ):
        print(f"  {name:<16} {what}")
    report = _write_qi_report(out, settings)
    print(f"\nThe QI report of the week (daily failure rates, SPC charts): {report}")
    print("  open it in a browser; docs/qi.md tells how to make others (carewatch qi report).")
    # the example rules file is in a checkout's docs/, not in an installed package
    example = Path("docs/rules.example.yaml")
    rules = f" --rules {example}" if example.is_file() else ""
    print("\nNext, the same events with rules of your own (docs/rules.md):")
    print(f"  {cmd} run {shlex.quote(str(events_path))} --out my-run{rules}")
    return 0


def _write_qi_report(out: Path, settings: Settings) -> Path:
    """``carewatch qi report`` of the demo's ledger, per day (a week has 7 points), in
    the timezone of the rules the demo ran with."""
    from datetime import UTC, datetime

    from streams.qi.ledger import read_ledger
    from streams.qi.measures import measure_kinds, measure_table
    from streams.qi.report import ReportContext, render_report
    from streams.qi.series import build_charts

    tz = settings.timezone
    ledger = read_ledger([out])
    kinds, _unknown = measure_kinds(ledger.frame["detector"].unique(), settings.detectors)
    table = measure_table(ledger, period="day", tz=tz, kinds=kinds)
    charts = build_charts(table, tz=tz, period="day")
    ctx = ReportContext(
        sources=ledger.sources,
        period="day",
        tz=tz,
        by=(),
        horizon=ledger.horizon,
        generated=datetime.now(UTC),
        records=ledger.records_read,
        superseded=ledger.superseded,
        chart="xmr",
    )
    path = out / "qi-report.html"
    path.write_text(render_report(charts, ctx), encoding="utf-8")
    return path


def _show_examples(path: Path) -> None:
    """Print one failure of each detector, the way an operations view would show it."""
    import orjson

    first: dict[str, dict[str, str]] = {}
    with path.open("rb") as f:
        for line in f:
            rec = orjson.loads(line)
            if rec["status"] in ("missed", "violation"):
                first.setdefault(rec["detector"], rec)
    if first:
        print("\nOne failure of each kind:")
        for det in sorted(first):
            print(f"  [{det}] {first[det]['summary']}")
