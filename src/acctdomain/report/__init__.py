"""The HTML dashboard of a book of business (``acctdomain report``): data gathering as plain
JSON-ready dicts, one section at a time, and one self-contained, offline HTML page drawn with
plotly (the extra ``acctdomain[report]``). docs/report.md describes the page and how to add
a section."""

from acctdomain.report.html import EXTRA, Charts, render_html, require_plotly
from acctdomain.report.model import ReportContext, ReportRequest, Section, gather_report
from acctdomain.report.sections import SECTIONS

__all__ = [
    "EXTRA",
    "SECTIONS",
    "Charts",
    "ReportContext",
    "ReportRequest",
    "Section",
    "gather_report",
    "render_html",
    "require_plotly",
]
