"""The report as one self-contained HTML page: plotly.js inlined once, every chart drawn from
it, no file or network resource besides the page itself (it works offline).

plotly comes with the extra ``acctdomain[report]``; :func:`require_plotly` says so when it is
missing. The sections' renderers never import plotly: they give :meth:`Charts.chart` a figure
as a plain dict (``{"data": [...], "layout": {...}}``).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Any

from acctdomain.report.model import Section

__all__ = ["EXTRA", "Charts", "render_html", "require_plotly", "shown_moment"]

EXTRA = "acctdomain[report]"
"""The optional extra that installs the charting library."""

MISSING_PLOTLY = (
    f"the HTML report draws its charts with plotly, which is not installed: pip install '{EXTRA}'"
)

# Chart options: sized by the page; no logo link to plotly's site and no "Share chart" button
# (it uploads to Plotly Cloud): the page never reaches the network.
CHART_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["sendChartToCloud", "lasso2d", "select2d"],
}


def require_plotly() -> Any:
    """The ``plotly.io`` module; ModuleNotFoundError naming the extra when plotly is missing."""
    try:
        return importlib.import_module("plotly.io")
    except ImportError as error:
        raise ModuleNotFoundError(MISSING_PLOTLY, name="plotly") from error


def shown_moment(text: str) -> str:
    """An ISO 8601 moment of the report's data for a person, to the minute."""
    moment = datetime.fromisoformat(text)
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname() or ''}".strip()


def _plotly_js() -> str:
    offline: Any = importlib.import_module("plotly.offline")
    return str(offline.get_plotlyjs())


class Charts:
    """Draws the page's charts with plotly (whose JavaScript the page holds once)."""

    def __init__(self) -> None:
        self._io = require_plotly()
        self.names: list[str] = []

    def chart(self, name: str, figure: dict[str, Any], *, height: int = 340) -> str:
        """A ``<div class="chart" data-chart=NAME>`` that draws ``figure`` (a plotly figure as
        a dict) into the element ``chart-NAME``."""
        if name in self.names:
            raise ValueError(f"two charts are named {name!r}")
        self.names.append(name)
        layout = {
            "height": height,
            "margin": {"l": 60, "r": 20, "t": 30, "b": 50},
            "font": {"family": "system-ui, sans-serif", "size": 12},
            "paper_bgcolor": "white",
            "plot_bgcolor": "white",
            "legend": {"orientation": "h", "y": -0.2},
            **figure.get("layout", {}),
        }
        div = self._io.to_html(
            {"data": figure["data"], "layout": layout},
            include_plotlyjs=False,
            include_mathjax=False,
            full_html=False,
            div_id=f"chart-{name}",
            config=CHART_CONFIG,
            validate=True,
        )
        return f'<div class="chart" data-chart="{escape(name)}">{div}</div>'


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #1f2933; background: #f5f7fa; }
header { background: #243b53; color: white; padding: 16px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
header p { margin: 2px 0; font-size: 13px; color: #d9e2ec; }
main { padding: 8px 32px 32px 32px; }
section { background: white; border-radius: 6px; margin: 16px 0; padding: 12px 20px;
  box-shadow: 0 1px 2px rgba(0, 0, 0, 0.08); }
section h2 { font-size: 17px; margin: 4px 0 10px 0; }
.note { font-size: 12px; color: #627d98; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 10px; }
.tile { border: 1px solid #d9e2ec; border-radius: 6px; padding: 8px 10px; }
.tile .title { font-size: 12px; color: #486581; }
.tile .value { font-size: 22px; font-weight: 600; margin: 4px 0; }
.tile .previous { font-size: 12px; color: #627d98; }
.tile .change { font-size: 12px; font-weight: 600; }
.change.better { color: #2f855a; }
.change.worse { color: #c53030; }
.change.same { color: #627d98; }
.tile .reason { font-size: 11px; color: #829ab1; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e4e7eb; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
"""


def render_html(report: dict[str, Any], sections: Iterable[Section] | None = None) -> str:
    """The page of ``report`` (from :func:`~acctdomain.report.model.gather_report` with the
    same sections; default :data:`~acctdomain.report.sections.SECTIONS`): every section whose
    data the report holds, in order."""
    if sections is None:
        from acctdomain.report.sections import SECTIONS

        sections = SECTIONS
    charts = Charts()
    parts = []
    for section in sections:
        data = report["sections"].get(section.name)
        if data is None:
            continue
        body = section.render(data, charts)
        parts.append(
            f'<section id="section-{escape(section.name)}" data-section="{escape(section.name)}">'
            f"<h2>{escape(section.title)}</h2>{body}</section>"
        )
    scope = [f"period {report['start']} to {report['end']}"]
    scope.append(f"previous period {report['previous_start']} to {report['previous_end']}")
    chosen = ", ".join(f"{k} {v}" for k, v in report["filters"].items() if v is not None)
    if chosen:
        scope.append(f"accounts of {chosen}")
    if report["known_at"]:
        scope.append(f"as known at {report['known_at']}")
    if report["currency"]:
        scope.append(f"in {report['currency']}")
    title = f"Book of business {report['start']} to {report['end']}"
    meta = json.dumps(
        {key: value for key, value in report.items() if key != "sections"}, sort_keys=True
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>",
            f"<style>{STYLE}</style>",
            f'<script type="text/javascript">{_plotly_js()}</script>',
            "</head>",
            "<body>",
            f"<header data-report='{escape(meta, quote=True)}'>",
            f"<h1>{escape(title)}</h1>",
            f"<p>{escape('; '.join(scope))}</p>",
            f"<p>Store {escape(report['db'])}, "
            f"generated at {escape(shown_moment(report['generated_at']))}</p>",
            "</header>",
            "<main>",
            *parts,
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )
