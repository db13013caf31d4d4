"""Grafana dashboards as code: the operations dashboard and the QI overview.

Built with grafana-foundation-sdk (Grafana's own typed builders, so a panel or option
Grafana does not know is a type error, not a blank panel) and checked in as JSON under
``deploy/grafana/dashboards/``, which Grafana loads at start through the provisioning
files beside them. After editing this module, write the JSON again::

    python -m streams.monitoring.dashboards            # writes the files
    python -m streams.monitoring.dashboards --check    # exit 1 if they are out of date

Every query reads only Carewatch's metrics and the recording rules of
``deploy/prometheus/rules/``; the data source is the provisioned Prometheus (uid
``carewatch-prometheus``). ``tests/deploy/test_dashboards.py`` runs every panel's query
against a Prometheus scraping a live worker and listener.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

__all__ = ["DASHBOARDS", "DATASOURCE_UID", "main", "operations", "qi_overview", "render"]

#: The uid of the Prometheus data source the provisioning files create.
DATASOURCE_UID = "carewatch-prometheus"
OUT_DIR = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"

_DS = model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)


def _query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(_DS)
    return q.legend_format(legend) if legend else q


def _series(
    title: str, description: str, unit: str, *queries: prometheus.Dataquery, w: int = 12
) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(description).unit(unit)
    panel = panel.datasource(_DS).height(8).span(w)
    for q in queries:
        panel = panel.with_target(q)
    return panel


def _stat(title: str, description: str, unit: str, query: prometheus.Dataquery) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(_DS)
        .height(5)
        .span(6)
        .with_target(query)
    )


def _table(title: str, description: str, unit: str, query: prometheus.Dataquery) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(_DS)
        .height(8)
        .span(12)
        .with_target(query.instant().format(PromQueryFormat.TABLE))
    )


def _joined_table(title: str, description: str, unit: str, columns: dict[str, str]) -> table.Panel:
    """A table of instant queries joined on their labels: one column per query, named
    by ``columns`` (column name -> PromQL)."""
    panel = table.Panel().title(title).description(description).unit(unit).datasource(_DS)
    panel = panel.height(8).span(12)
    rename = {}
    for ref, (name, expr) in zip("ABCDEFGH", columns.items(), strict=False):
        panel = panel.with_target(_query(expr, ref=ref).instant().format(PromQueryFormat.TABLE))
        rename[f"Value #{ref}"] = name
    panel = panel.with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
    return panel.with_transformation(
        model.DataTransformerConfig(
            id_val="organize",
            options={"excludeByName": {"Time": True}, "renameByName": rename},
        )
    )


def operations() -> dash.Dashboard:
    """For the operations team: is every feed flowing, is detection keeping up, what is
    failing where, what is being rejected."""
    return (
        dash.Dashboard("Carewatch: operations")
        .uid("carewatch-operations")
        .description(
            "Feed health, open failures by detector and site, failure rates, dead letter, "
            "detection lag."
        )
        .tags(["carewatch"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_row(dash.Row("Feeds"))
        .with_panel(
            _table(
                "Silence per feed",
                "Time since each feed's last event was received (any worker or listener), "
                "and its configured gap: the feed-silent alert fires past the gap in its "
                "watched hours.",
                "s",
                _query(
                    "time() - max by (feed, site) (carewatch_feed_last_received_timestamp_seconds)"
                ),
            )
        )
        .with_panel(
            _series(
                "Events per feed",
                "Events received per second, by configured feed ('other': no feed matched).",
                "reqps",
                _query(
                    "sum by (feed) (rate(carewatch_feed_events_total[$__rate_interval]))",
                    "{{feed}}",
                ),
            )
        )
        .with_panel(
            _series(
                "Event-time delay per feed",
                "Received time minus event time of each feed's last event: large when a "
                "sender replays a backlog or its clock is wrong.",
                "s",
                _query(
                    "max by (feed) (carewatch_feed_last_received_timestamp_seconds) "
                    "- max by (feed) (carewatch_feed_last_event_timestamp_seconds)",
                    "{{feed}}",
                ),
                w=24,
            )
        )
        .with_row(dash.Row("Failures"))
        .with_panel(
            _joined_table(
                "Open failures on the worklist, by detector and site",
                "Failures nobody has resolved and Carewatch has not closed, from the "
                "worklist's store (carewatch serve --metrics-port), and how many of them "
                "nobody has taken.",
                "short",
                {
                    "open": "sum by (detector, site) (carewatch_worklist_open_failures)",
                    "nobody has taken": (
                        "sum by (detector, site) (carewatch_worklist_unassigned_failures)"
                    ),
                },
            )
        )
        .with_panel(
            _joined_table(
                "Most overdue open failure, by detector and site",
                "How long ago the deadline of the most overdue open failure passed, and of "
                "the most overdue one nobody has taken (the worklist-unattended alert fires "
                "past a day).",
                "s",
                {
                    "most overdue": "time() - min by (detector, site) "
                    "(carewatch_worklist_oldest_open_due_timestamp_seconds)",
                    "most overdue, untaken": "time() - min by (detector, site) "
                    "(carewatch_worklist_oldest_unassigned_due_timestamp_seconds)",
                },
            )
        )
        .with_panel(
            _table(
                "Failures declared in the last 24 h, by detector and site",
                "Failures as first decided (missed, late, violation).",
                "short",
                _query(
                    "sum by (detector, site) (increase(carewatch_failures_total[1d])) > 0 "
                    "or sum by (detector, site) (carewatch_failures_total) * 0"
                ),
            )
        )
        .with_panel(
            _series(
                "Open opportunities by detector",
                "Opportunities not yet decided.",
                "short",
                _query("sum by (detector) (carewatch_open_expectations)", "{{detector}}"),
            )
        )
        .with_panel(
            _series(
                "Failure rate over 1 h, by detector and site",
                "Failures out of decided opportunities (voided ones left out), each "
                "opportunity once under its final outcome (recording rules).",
                "percentunit",
                _query("carewatch:failure_rate:ratio1h", "{{detector}} {{site}}"),
            )
        )
        .with_panel(
            _series(
                "Critical results unacknowledged past their deadline",
                "Critical results declared unacknowledged, per hour: each one pages.",
                "short",
                _query(
                    "sum by (site) (increase(carewatch_failures_total{detector="
                    '"result-unacknowledged", severity="critical", outcome="missed"}[1h]))',
                    "{{site}}",
                ),
            )
        )
        .with_row(dash.Row("Input and detection"))
        .with_panel(
            _series(
                "Dead letter",
                "Inputs rejected per second: by reason on the workers, by kind on the "
                "MLLP listener.",
                "reqps",
                _query(
                    "sum by (reason) (rate(carewatch_rejected_inputs_total[$__rate_interval]))",
                    "worker {{reason}}",
                ),
                _query(
                    "sum by (kind) "
                    "(rate(carewatch_mllp_messages_rejected_total[$__rate_interval]))",
                    "listener {{kind}}",
                    "B",
                ),
            )
        )
        .with_panel(
            _series(
                "Watermark lag",
                "Wall clock minus watermark per worker: how late deadlines are declared.",
                "s",
                _query("max by (instance) (carewatch_watermark_lag_seconds)", "{{instance}}"),
            )
        )
        .with_panel(
            _series(
                "Kafka consumer lag",
                "Messages of the assigned partitions not yet processed, per worker.",
                "short",
                _query("sum by (instance) (carewatch_kafka_lag_messages)", "{{instance}}"),
            )
        )
        .with_panel(
            _series(
                "MLLP messages",
                "Messages received and accepted per second by the listeners.",
                "reqps",
                _query(
                    "sum(rate(carewatch_mllp_messages_received_total[$__rate_interval]))",
                    "received",
                ),
                _query(
                    "sum(rate(carewatch_mllp_messages_accepted_total[$__rate_interval]))",
                    "accepted",
                    "B",
                ),
            )
        )
        .with_panel(
            _stat(
                "Targets up",
                "Carewatch processes Prometheus scrapes successfully, of those it knows.",
                "short",
                _query('sum(up{job=~"carewatch-.*"})'),
            )
        )
        .with_panel(
            _stat(
                "Builds running",
                "Distinct Carewatch release and build combinations running.",
                "short",
                _query("count(count by (version, build) (carewatch_build_info))"),
            )
        )
    )


def qi_overview() -> dash.Dashboard:
    """For the QI team: failure rates per detector and site over a day and a week,
    volumes, how overdue failures are, and how many were amended."""
    site = (
        dash.QueryVariable("site")
        .label("Site")
        .datasource(_DS)
        .query("label_values(carewatch_outcomes_total, site)")
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )
    sel = '{site=~"$site"}'
    return (
        dash.Dashboard("Carewatch: QI overview")
        .uid("carewatch-qi-overview")
        .description("Failure rates by detector and site, volumes, overdue times, amendments.")
        .tags(["carewatch", "qi"])
        .refresh("5m")
        .time("now-7d", "now")
        .timezone("browser")
        .with_variable(site)
        .with_row(dash.Row("Failure rates"))
        .with_panel(
            _series(
                "Failure rate over 1 day",
                "Failures out of decided opportunities over the last day (voided ones left "
                "out), each opportunity once under its final outcome.",
                "percentunit",
                _query(f"carewatch:failure_rate:ratio1d{sel}", "{{detector}} {{site}}"),
            )
        )
        .with_panel(
            _series(
                "Failure rate over 7 days",
                "The same over the last week: the line to compare with the expected level.",
                "percentunit",
                _query(f"carewatch:failure_rate:ratio7d{sel}", "{{detector}} {{site}}"),
            )
        )
        .with_panel(
            _table(
                "Last 7 days, by detector and site",
                "Opportunities decided and failures over the last week.",
                "short",
                _query(f"carewatch:decided:increase7d{sel}"),
            )
        )
        .with_panel(
            _table(
                "Failures, last 7 days, by detector and site",
                "Failures (missed, late, violation), each opportunity once.",
                "short",
                _query(f"carewatch:failures:increase7d{sel}"),
            )
        )
        .with_row(dash.Row("Outcomes"))
        .with_panel(
            _series(
                "Outcomes per hour",
                "Opportunities decided per hour, by first decision.",
                "short",
                _query(
                    f"sum by (outcome) (increase(carewatch_outcomes_total{sel}[1h]))",
                    "{{outcome}}",
                ),
            )
        )
        .with_panel(
            _series(
                "How overdue failures were (90th percentile)",
                "How far past the deadline failures were when first decided, by detector.",
                "s",
                _query(
                    "histogram_quantile(0.9, sum by (le, detector) "
                    "(rate(carewatch_failure_overdue_seconds_bucket[1h])))",
                    "{{detector}}",
                ),
            )
        )
        .with_panel(
            _series(
                "Amendments per day",
                "Decisions amended (missed later turned late, met or void) per day.",
                "short",
                _query(
                    "sum by (detector, from, to) "
                    f"(increase(carewatch_outcome_amendments_total{sel}[1d]))",
                    "{{detector}} {{from}} to {{to}}",
                ),
                w=24,
            )
        )
    )


#: File name -> builder of every dashboard.
DASHBOARDS = {"carewatch-operations.json": operations, "carewatch-qi-overview.json": qi_overview}


def render() -> dict[str, str]:
    """Every dashboard's JSON text, by file name."""
    out = {}
    for name, make in DASHBOARDS.items():
        board: Builder[Any] = make()
        out[name] = json.dumps(board.build(), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards' JSON into ``deploy/grafana/dashboards`` (or check it)."""
    p = argparse.ArgumentParser(prog="python -m streams.monitoring.dashboards")
    p.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    p.add_argument("--out", type=Path, default=OUT_DIR, help="directory (default: %(default)s)")
    args = p.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m streams.monitoring.dashboards")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
