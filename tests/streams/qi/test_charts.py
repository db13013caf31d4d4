"""Charts: SVG and PNG of a series, the same bytes for the same data, sensible scales."""

from __future__ import annotations

import re
from pathlib import Path

from streams.qi.charts import _figure, inline_svg, render_chart
from streams.qi.ledger import read_ledger
from streams.qi.measures import measure_table
from streams.qi.series import build_charts, parse_change


def charts(run_dir: Path, **kw: object) -> list:
    table = measure_table(read_ledger([run_dir]))
    return build_charts(table, **kw)  # type: ignore[arg-type]


def test_svg_is_deterministic_and_inlines_without_prolog_or_urls(run_dir: Path) -> None:
    series = charts(run_dir, changes=[parse_change("2026-03-09:SMS")])[0]
    svg = render_chart(series, "svg")
    assert svg == render_chart(series, "svg")
    inline = inline_svg(svg)
    assert inline.startswith("<svg") and "<metadata>" not in inline
    assert set(re.findall(r"https?://[^\s\"')]+", inline)) <= {
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xlink",
    }
    assert render_chart(series, "png").startswith(b"\x89PNG")


def test_an_all_zero_series_gets_a_readable_scale(run_dir: Path) -> None:
    table = measure_table(read_ledger([run_dir]))
    table = table[table["detector"] == "contact-after-death"].copy()
    table["violations"] = 0
    table["failures"] = 0
    figure = _figure(build_charts(table)[0], (9.0, 3.4), True)
    assert figure.axes[0].get_ylim() == (0.0, 1.0)
