"""Quality improvement from the outcome ledger: failure rates, SPC charts, a report, an export.

The ledger is what `carewatch run` writes (outcomes.jsonl, .gz too, or the run's --out
directory, which adds its open.jsonl), from any number of runs; each opportunity counts
once, as its latest record says. Periods are in the site's local time (weeks start on
Monday): --timezone, or the timezone of --mapping, default Europe/London.

  carewatch qi measures carewatch-out/ --by site --out measures.csv
  carewatch qi spc carewatch-out/ --change 2026-03-16:"SMS reminders" --target result-overdue=5%
  carewatch qi report carewatch-out/ --out report.html
  carewatch qi report carewatch-out/ --format png --out charts/
  CAREWATCH_PSEUDONYM_KEY=... carewatch qi export carewatch-out/ --out export/

docs/qi.md explains every number for a QI analyst.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pandas as pd

from detectors.errors import ConfigError, RuntimeFault
from streams.qi.ledger import Ledger, read_ledger
from streams.qi.measures import PERIODS, Period, measure_table, parse_by, zone
from streams.qi.series import (
    Change,
    Chart,
    SeriesChart,
    build_charts,
    load_changes,
    parse_change,
    parse_target,
    summary_table,
)

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="qi_command", metavar="ACTION")
    sub.required = True
    m = sub.add_parser(
        "measures",
        help="failure counts and proportions per detector and period",
        description="Per detector (and per --by value), per period: opportunities due "
        "(decided, not void), met, late, missed, void, violations, failures, the failure "
        "proportion, opportunities still open, and whether the period is complete and its "
        "denominator small (< 10).",
    )
    _common(m)
    m.add_argument(
        "--out",
        metavar="FILE",
        help="write the table to FILE.csv or FILE.parquet (default: print it)",
    )
    m.set_defaults(qi_main=_measures)

    s = sub.add_parser(
        "spc",
        help="SPC (XmR or p′) per measure: limits, special causes, variation, assurance",
        description="Computes an SPC chart per measure series and prints the Making Data "
        "Count summary (latest value, mean, limits, variation and assurance).",
    )
    _common(s)
    _spc_options(s)
    s.add_argument("--out", metavar="FILE.csv", help="write every point with its limits and flags")
    s.add_argument("--summary", metavar="FILE.csv", help="write the summary table")
    s.set_defaults(qi_main=_spc)

    r = sub.add_parser(
        "report",
        help="the QI report: one self-contained HTML page (or single charts as PNG/SVG)",
        description="One HTML file that works offline (no network, no scripts): a Making "
        "Data Count summary table and one chart per measure. With --format png|svg, one "
        "image per measure into the --out directory instead.",
    )
    _common(r)
    _spc_options(r)
    r.add_argument(
        "--out", metavar="PATH", required=True, help="report.html, or a directory for png/svg"
    )
    r.add_argument(
        "--format",
        choices=("html", "png", "svg"),
        default="html",
        help="html (default): the report; png or svg: one chart file per measure",
    )
    r.add_argument(
        "--detector",
        metavar="NAME",
        action="append",
        default=[],
        help="only this detector's measures (repeatable)",
    )
    r.set_defaults(qi_main=_report)

    from streams.qi import export

    e = sub.add_parser(
        "export",
        help="the ledger without identities: keyed pseudonyms, free text dropped",
        description=export.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_arguments(e)
    e.set_defaults(qi_main=export.main)


def add_ledger_arguments(p: argparse.ArgumentParser) -> None:
    """LEDGER... and --kafka (the outcomes topic), with the Kafka settings."""
    from streams.kafka.cli_args import add_config_arguments

    p.add_argument(
        "ledger",
        nargs="*",
        metavar="LEDGER",
        help="outcomes.jsonl files (.gz ok) or `carewatch run` output directories",
    )
    p.add_argument(
        "--kafka",
        action="store_true",
        help="also read the outcomes topic (carewatch.outcomes) from its start to its end; "
        "--bootstrap/--config say where (docs/kafka.md)",
    )
    add_config_arguments(p)


@contextmanager
def ledger_inputs(args: argparse.Namespace) -> Iterator[list[str]]:
    """The LEDGER paths, plus a temporary copy of the outcomes topic with --kafka."""
    if not args.ledger and not args.kafka:
        raise ConfigError(
            "name at least one LEDGER (outcomes.jsonl or a run directory), or --kafka"
        )
    if not args.kafka:
        yield list(args.ledger)
        return
    from streams.kafka.cli_args import config_from_args
    from streams.qi.kafka_source import copy_outcomes_topic

    config = config_from_args(args)
    with tempfile.TemporaryDirectory(prefix="carewatch-qi-") as tmp:
        copy = Path(tmp) / f"{config.topics.outcomes}.jsonl"
        copy_outcomes_topic(config, copy)
        yield [*args.ledger, str(copy)]


def _common(p: argparse.ArgumentParser) -> None:
    add_ledger_arguments(p)
    p.add_argument(
        "--period",
        choices=PERIODS,
        default="week",
        help="day, week (Monday to Sunday; default) or month, in local time",
    )
    p.add_argument(
        "--by",
        metavar="FIELDS",
        help="break each detector down by site, specialty and/or clinic (comma-separated)",
    )
    p.add_argument(
        "--timezone",
        metavar="ZONE",
        help="IANA timezone of the periods (default: the --mapping file's, else Europe/London)",
    )
    p.add_argument("--mapping", metavar="FILE", help="site mapping YAML whose `timezone` to use")


def _spc_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--chart",
        choices=("xmr", "pprime"),
        default="xmr",
        help="xmr (default) or pprime: Laney's p′ for proportions whose denominators vary "
        "a lot (count measures stay XmR)",
    )
    p.add_argument(
        "--change",
        metavar="DATE:LABEL",
        action="append",
        default=[],
        help='a change to the service, e.g. 2026-03-01:"SMS reminders": limits restart at '
        "the first period starting on or after it (repeatable)",
    )
    p.add_argument(
        "--changes",
        metavar="FILE",
        help="YAML file of dated changes, each optionally for one detector/site/specialty/clinic",
    )
    p.add_argument(
        "--baseline",
        type=int,
        metavar="N",
        help="fix each segment's limits on its first N points (N >= 12)",
    )
    p.add_argument(
        "--target",
        metavar="DETECTOR=VALUE",
        action="append",
        default=[],
        help="a target for the assurance icon, e.g. result-overdue=5%% (repeatable)",
    )
    p.add_argument(
        "--no-screen-outliers",
        action="store_true",
        help="keep very large moving ranges in the limits (as the Making Data Count Excel tool)",
    )


def main(args: argparse.Namespace) -> int:
    return int(args.qi_main(args))


def _tz(args: argparse.Namespace) -> str:
    if args.timezone:
        zone(args.timezone)
        return str(args.timezone)
    if args.mapping:
        from streams.adapters.mapping import load_mapping

        return load_mapping(args.mapping).timezone
    return "Europe/London"


def _load(args: argparse.Namespace) -> tuple[Ledger, pd.DataFrame, tuple[str, ...], str]:
    by = parse_by(args.by)
    tz = _tz(args)
    with ledger_inputs(args) as inputs:
        ledger = read_ledger(inputs)
    table = measure_table(ledger, period=cast(Period, args.period), by=by, tz=tz)
    return ledger, table, by, tz


def _charts(
    args: argparse.Namespace, table: pd.DataFrame, by: tuple[str, ...], tz: str
) -> list[SeriesChart]:
    changes: list[Change] = [parse_change(c) for c in args.change]
    if args.changes:
        changes.extend(load_changes(args.changes))
    targets = dict(parse_target(t) for t in args.target)
    return build_charts(
        table,
        by=by,
        chart=cast(Chart, args.chart),
        changes=changes,
        targets=targets,
        baseline=args.baseline,
        screen_outliers=not args.no_screen_outliers,
        tz=tz,
        period=args.period,
    )


def _local_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps as ISO-8601 text with their local UTC offset (how CSV readers expect)."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].map(lambda t: t.isoformat())
    return out


def _write_table(frame: pd.DataFrame, path: str) -> None:
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"--out {path} is a directory; name a .csv or .parquet file")
    try:
        if target.suffix == ".parquet":
            frame.to_parquet(target, index=False)
        elif target.suffix == ".csv":
            _local_text(frame).to_csv(target, index=False)
        else:
            raise ConfigError(f"--out {path}: name a .csv or .parquet file")
    except OSError as exc:
        raise RuntimeFault(f"cannot write {path}: {exc.strerror or exc}") from None


def _measures(args: argparse.Namespace) -> int:
    ledger, table, _by, tz = _load(args)
    if args.out:
        _write_table(table, args.out)
        print(f"{len(table):,} rows ({ledger.records_read:,} ledger records) -> {args.out}")
        return 0
    shown = _local_text(table)
    shown["failure_proportion"] = table["failure_proportion"].map(
        lambda v: "" if pd.isna(v) else f"{v * 100:.1f}%"
    )
    print(shown.to_string(index=False))
    print(
        f"\nperiods in {tz}; incomplete periods have complete=False, small = under 10 opportunities"
    )
    return 0


def _spc(args: argparse.Namespace) -> int:
    _ledger, table, by, tz = _load(args)
    charts = _charts(args, table, by, tz)
    summary = summary_table(charts, by)
    if args.out:
        points = pd.concat(
            [
                c.points.assign(detector=c.detector, **c.group, chart=c.chart, measure=c.measure)
                for c in charts
            ],
            ignore_index=True,
        )
        lead = ["detector", *by, "measure", "chart"]
        points = points[lead + [c for c in points.columns if c not in lead]]
        _write_table(points, args.out)
    if args.summary:
        _write_table(summary, args.summary)
    _print_summary(summary)
    return 0


def _print_summary(summary: pd.DataFrame) -> None:
    shown = summary.copy()
    for col in ("latest", "mean", "lower", "upper"):
        shown[col] = [
            "" if pd.isna(v) else (f"{v * 100:.1f}%" if m == "proportion" else f"{v:.2f}")
            for v, m in zip(summary[col], summary["measure"], strict=True)
        ]
    shown["trial_limits"] = shown["trial_limits"].map({True: "trial limits", False: ""})
    shown = shown.drop(columns=["target", "provisional_periods", "last_shown_provisional"])
    print(shown.to_string(index=False))


def _report(args: argparse.Namespace) -> int:
    from streams.qi.charts import render_chart
    from streams.qi.report import ReportContext, render_report

    ledger, table, by, tz = _load(args)
    if args.detector:
        unknown = set(args.detector) - set(table["detector"].unique())
        if unknown:
            raise ConfigError(f"--detector {sorted(unknown)[0]}: not in the ledger")
        table = table[table["detector"].isin(args.detector)]
    charts = _charts(args, table, by, tz)
    out = Path(args.out)
    if args.format == "html":
        ctx = ReportContext(
            sources=[str(s) for s in ledger.sources],
            period=args.period,
            tz=tz,
            by=by,
            horizon=ledger.horizon,
            generated=datetime.now(UTC),
            records=ledger.records_read,
            superseded=ledger.superseded,
            chart=args.chart,
        )
        page = render_report(charts, ctx)
        if out.is_dir():
            raise ConfigError(f"--out {out} is a directory; name the .html file to write")
        _write_bytes(out, page.encode("utf-8"))
        print(f"QI report ({len(charts)} charts) -> {out}")
        return 0
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; with --format {args.format} name a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeFault(f"cannot make {out}: {exc.strerror or exc}") from None
    for c in charts:
        _write_bytes(out / f"{c.slug}.{args.format}", render_chart(c, args.format))
    print(f"{len(charts)} {args.format} charts -> {out}/", file=sys.stdout)
    return 0


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise RuntimeFault(f"cannot write {path}: {exc.strerror or exc}") from None
