"""The QI report: one self-contained HTML page (no script, no font, no link to anything).

A Making-Data-Count summary table (measure, latest value, mean, limits, variation and
assurance icons, warnings) and one chart per measure, inline SVG. Styled for screen and
for print (A4, a chart never split across pages). Everything the page shows is in the
file: a hospital desktop with no network opens it the same.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from streams.qi.charts import COLOURS, inline_svg, render_chart
from streams.qi.series import RARE_EVENTS_WARNING, SeriesChart

__all__ = ["ReportContext", "assurance_icon", "render_report", "variation_icon_svg"]


@dataclass(frozen=True)
class ReportContext:
    """What the report says about where its numbers come from.

    ``horizon`` and ``generated`` are aware timestamps (shown in ``tz``)."""

    sources: Sequence[str]
    period: str
    tz: str
    by: Sequence[str]
    horizon: pd.Timestamp | None
    generated: datetime
    records: int
    superseded: int
    chart: str


_CSS = """
:root { --ink: #222; --muted: #666; --rule: #ddd; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
       color: var(--ink); margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 6px; }
p.meta { color: var(--muted); margin: 0 0 16px; }
table.summary { border-collapse: collapse; width: 100%; font-size: 13px; margin: 8px 0 20px; }
table.summary th, table.summary td { border-bottom: 1px solid var(--rule); padding: 4px 6px;
       text-align: left; vertical-align: middle; }
table.summary td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.summary th { background: #f3f3f3; }
.icon { display: inline-block; vertical-align: middle; }
.icon-label { font-size: 12px; color: var(--muted); }
section.chart { border-top: 1px solid var(--rule); padding: 12px 0; }
section.chart svg { width: 100%; height: auto; display: block; }
.warn { color: #8a4b00; font-size: 13px; margin: 2px 0; }
.note { color: var(--muted); font-size: 13px; margin: 2px 0; }
dl.key { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; font-size: 13px; }
dl.key dt { font-weight: 600; }
@page { size: A4 landscape; margin: 12mm; }
@media print {
  body { padding: 0; max-width: none; font-size: 11px; }
  section.chart { break-inside: avoid; page-break-inside: avoid; padding: 6px 0; }
  /* two charts to an A4 landscape page */
  section.chart svg { height: 64mm; width: auto; max-width: 100%; }
  .warn, .note { font-size: 10px; margin: 0; }
  table.summary { font-size: 10.5px; }
  table.summary tr { break-inside: avoid; }
  .screen-only { display: none; }
}
"""

_ASSURANCE = {
    "consistently passes": ("#1f5fa8", "P", "the process will consistently pass the target"),
    "consistently fails": ("#e07b00", "F", "the process will consistently fail the target"),
    "hit and miss": ("#7f7f7f", "?", "the process will sometimes pass and sometimes fail"),
}


def _circle(colour: str, mark: str, title: str, *, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="3 2"' if dashed else ""
    return (
        '<svg class="icon" width="30" height="30" viewBox="0 0 30 30" role="img">'
        f"<title>{html.escape(title)}</title>"
        f'<circle cx="15" cy="15" r="13" fill="white" stroke="{colour}" stroke-width="3"{dash}/>'
        f'<text x="15" y="20" text-anchor="middle" font-size="13" font-weight="700" '
        f'font-family="Arial, sans-serif" fill="{colour}">{html.escape(mark)}</text></svg>'
    )


def variation_icon_svg(variation: str, icon_text: str) -> str:
    """The variation icon of a measure's last point: grey for common cause, blue for an
    improvement, orange for a concern, purple for neutral; H or L for high or low."""
    if variation == "common cause":
        return _circle(COLOURS["common cause"], "~", "common cause variation")
    if variation in COLOURS:
        mark = "H" if "(high)" in icon_text else "L" if "(low)" in icon_text else "!"
        return _circle(COLOURS[variation], mark, icon_text)
    return _circle("#bbbbbb", "–", "no data")


def assurance_icon(assurance: str) -> str:
    """The assurance icon: P (passes), F (fails), ? (hit and miss), or none."""
    if assurance not in _ASSURANCE:
        return _circle("#bbbbbb", "–", "no target given", dashed=True)
    colour, mark, title = _ASSURANCE[assurance]
    return _circle(colour, mark, title)


def _value(v: float, measure: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v * 100:.1f}%" if measure == "proportion" else f"{v:.1f}"


def _summary_rows(charts: Sequence[SeriesChart], tz: str) -> str:
    rows = []
    for c in charts:
        s = c.summary
        used = c.points[~c.points["provisional"]]
        latest = (
            used["period_start"].iloc[-1].tz_convert(tz).strftime("%d %b %Y") if len(used) else "–"
        )
        warnings = []
        if s is None:
            warnings.append("no complete period yet")
        elif s.trial:
            warnings.append(f"trial limits ({s.segment_points} points)")
        if c.points["provisional"].any():
            warnings.append("last period provisional")
        if (used["small"]).any():
            warnings.append("small denominators")
        if c.rare_events:
            warnings.append("rare events")
        variation = variation_icon_svg(s.variation if s else "", s.icon if s else "")
        assurance_text = (
            s.assurance if s and s.assurance else ("no target" if c.target is None else "–")
        )
        target = "" if c.target is None else f" (target {_value(c.target, c.measure)})"
        rows.append(
            "<tr>"
            f'<td><a href="#{html.escape(c.slug)}">{html.escape(c.title)}</a>'
            f'<br><span class="icon-label">{"p′" if c.chart == "pprime" else "XmR"}, '
            f"{'failure proportion' if c.measure == 'proportion' else 'violation count'}</span></td>"
            f"<td>{latest}</td>"
            f'<td class="num">{_value(s.latest if s else float("nan"), c.measure)}</td>'
            f'<td class="num">{_value(s.centre if s else float("nan"), c.measure)}</td>'
            f'<td class="num">{_value(s.lower if s else float("nan"), c.measure)}</td>'
            f'<td class="num">{_value(s.upper if s else float("nan"), c.measure)}</td>'
            f'<td>{variation} <span class="icon-label">{html.escape(s.icon if s else "no data")}</span></td>'
            f"<td>{assurance_icon(s.assurance if s else '')} "
            f'<span class="icon-label">{html.escape(assurance_text + target)}</span></td>'
            f"<td>{html.escape('; '.join(warnings))}</td>"
            "</tr>"
        )
    return "\n".join(rows)


def _chart_section(c: SeriesChart, tz: str) -> str:
    # the warnings are the notes below the chart, not a caption in it
    svg = inline_svg(render_chart(c, "svg", title=False, caption=False))
    notes = []
    s = c.summary
    if s and s.trial:
        notes.append(
            f'<p class="warn">Trial limits: the latest limits rest on {s.segment_points} '
            "points (fewer than 13); they will move as points are added, so read special "
            "causes with care.</p>"
        )
    if c.baseline and 0 < c.limit_points < c.baseline:
        notes.append(
            f'<p class="warn">Baseline: the latest segment has {c.limit_points} points, '
            f"fewer than the {c.baseline} asked for; its limits rest on all of them.</p>"
        )
    prov = c.points[c.points["provisional"]]
    if len(prov):
        when = ", ".join(t.tz_convert(tz).strftime("%d %b %Y") for t in prov["period_start"])
        notes.append(
            f'<p class="warn">Provisional (hollow points, not in the limits): {when}: the '
            "period was not over when the data ended, or has opportunities still open.</p>"
        )
    small = c.points[c.points["small"] & ~c.points["provisional"]]
    if len(small):
        notes.append(
            f'<p class="note">{len(small)} period(s) with fewer than 10 opportunities, '
            "labelled n= on the chart.</p>"
        )
    if c.rare_events:
        notes.append(f'<p class="warn">{html.escape(RARE_EVENTS_WARNING)}</p>')
    for when, change in c.changes:
        notes.append(
            f'<p class="note">Limits recomputed from {when.tz_convert(tz).strftime("%d %b %Y")}: '
            f"{html.escape(change.label)} (change on {change.day.isoformat()}).</p>"
        )
    return (
        f'<section class="chart" id="{html.escape(c.slug)}" data-series="{html.escape(c.title)}">'
        f"<h2>{html.escape(c.title)}</h2>{svg}{''.join(notes)}</section>"
    )


def render_report(charts: Sequence[SeriesChart], ctx: ReportContext) -> str:
    """The whole report as one HTML document (a str): the summary has a row per series,
    and each series with a point to draw has its chart."""
    tz = ctx.tz
    horizon = (
        ctx.horizon.tz_convert(tz).strftime("%d %b %Y %H:%M %Z") if ctx.horizon is not None else "–"
    )
    generated = pd.Timestamp(ctx.generated).tz_convert(tz).strftime("%d %b %Y %H:%M %Z")
    by = f", by {', '.join(ctx.by)}" if ctx.by else ""
    sources = ", ".join(html.escape(s) for s in ctx.sources)
    body = [
        "<h1>Carewatch: quality improvement report</h1>",
        f'<p class="meta">Failure rates per {ctx.period}{by}, periods in {html.escape(tz)} '
        f"({'weeks start on Monday' if ctx.period == 'week' else 'local calendar'}). "
        f"Data up to {horizon} (the ledger's horizon); {ctx.records:,} ledger records, "
        f"{ctx.superseded:,} of them superseded by a later record of the same opportunity. "
        f"Made {generated} from {sources}.</p>",
        "<h2>Summary</h2>",
        '<table class="summary"><thead><tr><th>measure</th><th>latest period</th>'
        "<th>latest</th><th>mean</th><th>lower limit</th><th>upper limit</th>"
        "<th>variation</th><th>assurance</th><th>warnings</th></tr></thead><tbody>",
        _summary_rows(charts, tz),
        "</tbody></table>",
        ""
        if any(c.summary is not None for c in charts)
        else '<p class="warn">Nothing decided yet: the ledger holds no decided opportunity '
        "and no violation, so there is no measure to chart.</p>",
        _key(),
        # a series with no point yet (all its opportunities open) is a row of the table only
        *(_chart_section(c, tz) for c in charts if len(c.points)),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Carewatch QI report</title>"
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _key() -> str:
    return (
        '<dl class="key">'
        f"<dt>{variation_icon_svg('common cause', '')}</dt><dd>common cause: the latest point "
        "varies as the process always has</dd>"
        f"<dt>{variation_icon_svg('improvement', '(low)')}</dt><dd>special cause, improvement "
        "(L: lower than expected, which is better for failures)</dd>"
        f"<dt>{variation_icon_svg('concern', '(high)')}</dt><dd>special cause, concern "
        "(H: higher than expected)</dd>"
        f"<dt>{assurance_icon('consistently passes')} {assurance_icon('consistently fails')} "
        f"{assurance_icon('hit and miss')}</dt><dd>against the target: will consistently pass, "
        "consistently fail, or hit and miss</dd>"
        "</dl>"
    )
