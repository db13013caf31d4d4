"""Quality improvement from the outcome ledger: failure rates, SPC charts, a report, an export.

The ledger is what `carewatch run` writes (outcomes.jsonl, .gz too, or the run's --out
directory, which adds its open.jsonl), from any number of runs; each opportunity counts
once, as its latest record says. Periods are in the site's local time (weeks start on
Monday): --timezone, else the timezone of the --rules or --mapping file, default
Europe/London. Whether a detector's measure is a failure proportion or a count of
violations comes from what the detector is (built in, or declared in --rules).

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
from typing import TYPE_CHECKING, cast

import pandas as pd

from detectors.errors import ConfigError, RuntimeFault
from streams.qi.ledger import Ledger, read_ledger
from streams.qi.measures import (
    PERIODS,
    Period,
    measure_kinds,
    measure_table,
    parse_by,
    zone,
)
from streams.qi.series import (
    POINT_COLUMNS,
    RARE_EVENTS_WARNING,
    Change,
    Chart,
    SeriesChart,
    build_charts,
    load_changes,
    parse_change,
    parse_target,
    summary_table,
)

if TYPE_CHECKING:
    from detectors.rules import Settings

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
    p.add_argument(
        "--kafka-idle-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="with --kafka, give up when the broker has delivered nothing for this long "
        "(default: %(default)g s); a long topic that keeps arriving is read to its end",
    )
    add_config_arguments(p)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0")
    return value


def add_timezone_arguments(p: argparse.ArgumentParser, *, what: str = "the periods") -> None:
    """--timezone, --rules and --mapping: where the site's local time comes from."""
    p.add_argument(
        "--timezone",
        metavar="ZONE",
        help=f"IANA timezone of {what} (default: the --rules or --mapping file's "
        "`timezone`, else Europe/London)",
    )
    p.add_argument(
        "--rules",
        metavar="FILE",
        help="the rules file the runs used: its `timezone`, and what its rules and plugins "
        "are (a rule is a failure proportion)",
    )
    p.add_argument("--mapping", metavar="FILE", help="site mapping YAML whose `timezone` to use")


def rules_settings(args: argparse.Namespace) -> Settings | None:
    """The settings of --rules (read by the one configuration reader), or None."""
    if not getattr(args, "rules", None):
        return None
    from detectors.rules import load_settings

    return load_settings(args.rules)


def resolve_timezone(args: argparse.Namespace, settings: Settings | None = None) -> str:
    """The periods' timezone: --timezone, else the --rules or --mapping file's, else
    Europe/London. A rules file and a mapping file that name different zones are an
    error (which one is meant is not for Carewatch to guess)."""
    from detectors.rules import DEFAULT_TIMEZONE

    if args.timezone:
        zone(args.timezone)
        return str(args.timezone)
    from_rules = settings.timezone if settings is not None else None
    from_mapping = None
    if getattr(args, "mapping", None):
        from streams.adapters.mapping import load_mapping

        from_mapping = load_mapping(args.mapping).timezone
    if from_rules and from_mapping and from_rules != from_mapping:
        if from_rules == DEFAULT_TIMEZONE:  # the rules file's default: it names none
            return from_mapping
        raise ConfigError(
            f"--rules {args.rules} says timezone {from_rules}, --mapping {args.mapping} "
            f"says {from_mapping}: give --timezone"
        )
    return from_rules or from_mapping or DEFAULT_TIMEZONE


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
        copy_outcomes_topic(config, copy, idle_timeout=args.kafka_idle_timeout)
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
    add_timezone_arguments(p)


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
        help="fix each segment's limits on its first N points (N >= 12; a shorter segment's "
        "rest on all its points, and the output says so)",
    )
    p.add_argument(
        "--target",
        metavar="DETECTOR=VALUE",
        action="append",
        default=[],
        help="a target for the assurance icon: a percentage for a failure proportion, e.g. "
        "result-overdue=5%%, a count for a count of violations, e.g. contact-after-death=0 "
        "(repeatable)",
    )
    p.add_argument(
        "--no-screen-outliers",
        action="store_true",
        help="keep very large moving ranges in the limits (as the Making Data Count Excel tool)",
    )


def main(args: argparse.Namespace) -> int:
    return int(args.qi_main(args))


def _load(args: argparse.Namespace) -> tuple[Ledger, pd.DataFrame, tuple[str, ...], str]:
    by = parse_by(args.by)
    settings = rules_settings(args)
    tz = resolve_timezone(args, settings)
    with ledger_inputs(args) as inputs:
        ledger = read_ledger(inputs)
    names = ledger.frame["detector"].unique().tolist()
    kinds, unknown = measure_kinds(names, settings.detectors if settings is not None else ())
    for name in unknown:
        print(
            f"note: {name} is neither built in nor in --rules: its measure is taken from the "
            "ledger (a proportion if it has met, late, missed or void records, else a count)",
            file=sys.stderr,
        )
    table = measure_table(ledger, period=cast(Period, args.period), by=by, tz=tz, kinds=kinds)
    return ledger, table, by, tz


def _nothing_yet(ledger: Ledger) -> str:
    """The line said when a ledger has no measure to show."""
    if not ledger.records_read:
        return "nothing decided yet: the ledger holds no records"
    return (
        f"nothing decided yet: the ledger's {len(ledger.frame):,} opportunities are all still open"
    )


def _charts(
    args: argparse.Namespace, table: pd.DataFrame, by: tuple[str, ...], tz: str
) -> list[SeriesChart]:
    changes: list[Change] = [parse_change(c) for c in args.change]
    if args.changes:
        changes.extend(load_changes(args.changes))
    targets = dict(parse_target(t) for t in args.target)
    charts = build_charts(
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
    # a change that rebased no series is most likely a typing slip (date or scope)
    for change in changes:
        if not any(change in (c for _, c in chart.changes) for chart in charts):
            print(
                f"warning: the change {change.day.isoformat()}:{change.label} starts new "
                "limits in no series (no complete period of a series it applies to starts "
                "after it)",
                file=sys.stderr,
            )
    if args.baseline:
        short = [c for c in charts if 0 < c.limit_points < args.baseline]
        if short:
            print(
                f"warning: --baseline {args.baseline}: {len(short)} series' last segment is "
                "shorter; its limits rest on all its points (limit_points in the summary)",
                file=sys.stderr,
            )
    return charts


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
    if not (table["opportunities"].fillna(0) > 0).any() and not (table["measure"] == "count").any():
        print(_nothing_yet(ledger))
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
        lead = ["detector", *by, "measure", "chart"]
        columns = [*lead, *POINT_COLUMNS, "rare_events"]
        frames = [
            c.points.assign(
                detector=c.detector,
                **c.group,
                chart=c.chart,
                measure=c.measure,
                rare_events=c.rare_events,
            )
            for c in charts
        ]
        points = (
            pd.concat(frames, ignore_index=True)[columns]
            if frames
            else pd.DataFrame(columns=columns)  # nothing yet: the header alone
        )
        for col in ("segment", "direction"):
            points[col] = points[col].astype("Int64")
        _write_table(points, args.out)
    if args.summary:
        _write_table(summary, args.summary)
    if not any(c.summary is not None for c in charts):
        print(_nothing_yet(_ledger))
        return 0
    _print_summary(summary, charts)
    return 0


def _print_summary(summary: pd.DataFrame, charts: list[SeriesChart]) -> None:
    shown = summary.copy()
    for col in ("latest", "mean", "lower", "upper"):
        shown[col] = [
            "" if pd.isna(v) else (f"{v * 100:.1f}%" if m == "proportion" else f"{v:.2f}")
            for v, m in zip(summary[col], summary["measure"], strict=True)
        ]
    shown["trial_limits"] = shown["trial_limits"].map({True: "trial limits", False: ""})
    shown = shown.drop(
        columns=["target", "provisional_periods", "last_shown_provisional", "rare_events"]
    )
    print(shown.to_string(index=False))
    for c in charts:
        if c.rare_events:
            print(f"{c.title}: {RARE_EVENTS_WARNING}")


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
    if not any(c.summary is not None for c in charts):
        print(_nothing_yet(ledger))
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
        shown = sum(1 for c in charts if len(c.points))
        print(f"QI report ({shown} charts) -> {out}")
        return 0
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; with --format {args.format} name a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeFault(f"cannot make {out}: {exc.strerror or exc}") from None
    drawn = [c for c in charts if len(c.points)]  # a series with no point has no chart
    for c in drawn:
        _write_bytes(out / f"{c.slug}.{args.format}", render_chart(c, args.format))
    print(f"{len(drawn)} {args.format} charts -> {out}/", file=sys.stdout)
    return 0


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise RuntimeFault(f"cannot write {path}: {exc.strerror or exc}") from None
