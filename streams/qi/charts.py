"""Drawing an SPC chart (matplotlib, Agg: no display needed) as SVG or PNG bytes.

What a chart shows: the points in date order (grey: common cause; blue: special cause,
improvement; orange: concern; purple: neutral), the mean and the process limits of each
segment (they restart at every change, which is marked with its label), the target if
given, and, hollow, the provisional points (period not complete, or opportunities still
open) that take no part in the limits. A point with a small denominator is labelled
with its ``n``.
"""

from __future__ import annotations

import io
import re
from typing import Literal

import matplotlib

matplotlib.use("Agg")  # before pyplot: draw to files only, never to a screen

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.ticker import FuncFormatter, MaxNLocator

from streams.qi.series import RARE_EVENTS_WARNING, SeriesChart

__all__ = ["CAPTION_COLOUR", "COLOURS", "inline_svg", "render_chart"]

#: Point colours by variation (colour-blind safe pairs: blue/orange).
COLOURS = {
    "common cause": "#7f7f7f",
    "improvement": "#1f5fa8",
    "concern": "#e07b00",
    "neutral": "#7b3fa0",
}
_INK = "#222222"
_LIMIT = "#555555"
_TARGET = "#b22222"
#: Colour of the warning caption under a chart of rare events.
CAPTION_COLOUR = "#8a4b00"

plt.rcParams.update(
    {
        "svg.fonttype": "path",  # text as outlines: the SVG needs no font on the reader's side
        "svg.hashsalt": "carewatch",  # element ids from a fixed salt: same data, same bytes
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


def _figure(
    series: SeriesChart, size: tuple[float, float], title: bool, caption: bool = True
) -> Figure:
    pts = series.points
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    proportion = series.measure == "proportion"
    scale = 100.0 if proportion else 1.0
    x = pd.DatetimeIndex(pts["period_start"]).tz_localize(None)

    used = ~pts["provisional"].to_numpy(dtype=bool)
    segment = pts["segment"].to_numpy(dtype=float, na_value=np.nan)  # NaN: provisional
    for seg in pd.unique(segment[used]):
        mask = used & (segment == seg)
        sx = x[mask]
        rows = pts[mask]
        ax.plot(sx, rows["centre"] * scale, color=_INK, lw=1.2, label="mean" if seg == 0 else None)
        step = "steps-mid" if series.chart == "pprime" else "default"
        for col, label in (("upper", "process limits"), ("lower", None)):
            ax.plot(
                sx,
                rows[col] * scale,
                color=_LIMIT,
                lw=1,
                ls="--",
                drawstyle=step,
                label=label if seg == 0 else None,
            )

    ax.plot(x, pts["value"] * scale, color="#9a9a9a", lw=0.8, zorder=2)
    for variation, colour in COLOURS.items():
        m = used & (pts["variation"] == variation).to_numpy()
        if m.any():
            ax.scatter(
                x[m],
                pts.loc[m, "value"] * scale,
                s=28,
                color=colour,
                zorder=3,
                label=variation,
            )
    if (~used).any():
        ax.scatter(
            x[~used],
            pts.loc[~used, "value"] * scale,
            s=30,
            facecolors="white",
            edgecolors=_INK,
            zorder=3,
            label="provisional (not complete)",
        )
    small = pts["small"].to_numpy(dtype=bool) & pts["opportunities"].notna().to_numpy()
    for xi, yi, n in zip(
        x[small], pts.loc[small, "value"], pts.loc[small, "opportunities"], strict=True
    ):
        ax.annotate(
            f"n={int(n)}",
            (xi, yi * scale),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=7,
            color=_INK,
        )

    for when, change in series.changes:
        t = pd.Timestamp(when).tz_localize(None)
        ax.axvline(t, color=_INK, lw=0.8, ls=":")
        ax.annotate(
            change.label,
            (t, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -2),
            textcoords="offset points",
            va="top",
            fontsize=8,
            color=_INK,
        )
    if series.target is not None:
        ax.axhline(series.target * scale, color=_TARGET, lw=1, ls="-.", label="target")

    if title:
        ax.set_title(series.title, loc="left", fontsize=10, fontweight="bold")
    ax.set_ylabel("failures (% of opportunities)" if proportion else "violations (count)")
    ax.set_ylim(bottom=0)
    shown = [pts["value"], pts["upper"], pd.Series([series.target or 0.0])]
    if not (pd.concat(shown).fillna(0) > 0).any():
        # nothing but zeros: a sensible scale rather than a hair's breadth
        ax.set_ylim(0, 5.0 if proportion else 1.0)
    if proportion:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel(f"{series.period_word} starting", fontsize=8)
    ax.grid(axis="y", color="#e6e6e6", lw=0.6)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    if not len(pts):
        ax.text(0.5, 0.5, "no periods with opportunities", transform=ax.transAxes, ha="center")
    if caption and series.rare_events:
        # a chart pasted into a board paper alone must carry the warning itself
        fig.text(
            0.01,
            0.01,
            RARE_EVENTS_WARNING,
            ha="left",
            va="bottom",
            fontsize=7.5,
            wrap=True,
            color=CAPTION_COLOUR,
            gid="rare-events-warning",  # the SVG names the caption: a reader can find it
        )
        engine = fig.get_layout_engine()
        if isinstance(engine, ConstrainedLayoutEngine):  # leave the caption its strip
            engine.set(rect=(0, 0.1, 1, 0.9))
    return fig


def render_chart(
    series: SeriesChart,
    fmt: Literal["svg", "png"] = "svg",
    *,
    size: tuple[float, float] = (9.0, 3.4),
    dpi: int = 150,
    title: bool = True,
    caption: bool = True,
) -> bytes:
    """The chart of ``series`` as SVG or PNG bytes (``size`` in inches); ``title=False``
    leaves the series name out (the report's heading says it), ``caption=False`` the
    rare-events warning under a chart of rare events (the report says it in a note)."""
    fig = _figure(series, size, title, caption)
    buf = io.BytesIO()
    # no creation date in the file: the same data gives the same bytes
    metadata = {"Date": None} if fmt == "svg" else {}
    fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata)
    return buf.getvalue()


def inline_svg(svg: bytes) -> str:
    """SVG bytes as markup to place in an HTML page (no XML prolog or DOCTYPE)."""
    text = svg.decode("utf-8")
    start = text.find("<svg")
    text = text[start:] if start >= 0 else text
    # the RDF metadata block names the drawing tool by URL: not needed in a page
    return re.sub(r"<metadata>.*?</metadata>", "", text, count=1, flags=re.DOTALL)
