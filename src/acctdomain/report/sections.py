"""The built-in sections of the report, in page order: KPI tiles, retention trends by
quarter, the renewal pipeline by month, the health distribution, the accounts at risk and
today's priorities.

The last three read the accounts' facts, from read models of built-in plugins (chiefly
``builtin.workday``); when one of those read models is missing (the plugin is blocked), the
section's data is ``{"skipped": reason}`` and the page shows the reason instead.

Each is a :class:`~acctdomain.report.model.Section`: a ``gather`` function (JSON-ready data
from the context) and a ``render`` function (HTML from that data). :data:`SECTIONS` is the
default list; a new section is one more pair of functions added to it.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from html import escape
from typing import Any

from acctdomain.application.scorecard import previous_period
from acctdomain.cli_common import amount, figure, shown
from acctdomain.cli_kpis import kpi_report
from acctdomain.report.html import Charts, shown_moment
from acctdomain.report.model import ReportContext, Section, plain

__all__ = [
    "AT_RISK",
    "AT_RISK_LIMIT",
    "FACTS_READ_MODELS",
    "HEALTH",
    "KPIS",
    "LOWER_IS_BETTER",
    "PIPELINE",
    "PIPELINE_MONTHS",
    "SECTIONS",
    "TODAY",
    "TODAY_LIMIT",
    "TRENDS",
    "TREND_KPIS",
    "TREND_QUARTERS",
    "at_risk_data",
    "health_data",
    "kpi_change",
    "kpis_data",
    "pipeline_data",
    "quarters_ending",
    "shown_change",
    "today_data",
    "trends_data",
    "unavailable",
]

TREND_KPIS = ("nrr", "grr", "customer_churn")
"""The KPIs whose quarterly trend the report draws."""
TREND_QUARTERS = 8
PIPELINE_MONTHS = 12
"""Months of renewals ahead in the pipeline (from the current month)."""
AT_RISK_LIMIT = 25
"""Accounts listed at most among the accounts at risk (the count says how many there are)."""
TODAY_LIMIT = 20
"""Items of today's priorities listed at most (the default of ``acctdomain today``)."""
FACTS_READ_MODELS = ("accounts", "kpi_facts", "attention", "account_plans", "stakeholders")
"""The read models an account's facts come from (health, accounts at risk, priorities)."""
BANDS = ("green", "yellow", "red", "unscored")
BAND_COLOURS = {"green": "#38a169", "yellow": "#d69e2e", "red": "#e53e3e", "unscored": "#a0aec0"}
TREND_COLOURS = ("#2b6cb0", "#38a169", "#e53e3e", "#805ad5", "#dd6b20")
CURRENCY_COLOURS = ("#2b6cb0", "#319795", "#805ad5", "#dd6b20", "#d53f8c", "#718096")

LOWER_IS_BETTER = frozenset(
    {
        "churned_accounts",
        "customer_churn",
        "gross_revenue_churn",
        "net_revenue_churn",
        "contraction",
        "request_response_time",
        "issue_response_time",
        "issue_resolution_time",
    }
)
"""KPIs that improve when they fall (as do all KPIs in hours or days)."""


# --- KPI tiles ----------------------------------------------------------------------------------


def _number(value: str | int) -> tuple[Decimal, str]:
    """A KPI figure of the JSON as a number and its currency ("" when it is not money)."""
    text, _, currency = str(value).partition(" ")
    return Decimal(text), currency


def kpi_change(kpi: dict[str, Any]) -> dict[str, Any]:
    """The change of one KPI line (as ``kpis --json`` gives it) against the previous period:
    ``delta`` (value minus previous, in the KPI's unit; money as ``"AMOUNT CURRENCY"``),
    ``relative`` (delta over previous, None when previous is zero), and ``better`` (True,
    False, or None when unchanged or unknown). All None when either figure is missing."""
    value, previous = kpi["value"], kpi["previous"]
    if value is None or previous is None:
        return {"delta": None, "relative": None, "better": None}
    (now, currency), (before, previous_currency) = _number(value), _number(previous)
    if currency != previous_currency:
        return {"delta": None, "relative": None, "better": None}
    delta = now - before
    relative = None if not before else str(delta / abs(before))
    lower = kpi["name"] in LOWER_IS_BETTER or kpi["unit"] in ("hours", "days")
    better = None if not delta else (delta < 0) == lower
    shown_delta: str | int
    if isinstance(value, int) and isinstance(previous, int):
        shown_delta = int(delta)
    else:
        shown_delta = f"{delta} {currency}" if currency else str(delta)
    return {"delta": shown_delta, "relative": relative, "better": better}


def kpis_data(context: ReportContext) -> dict[str, Any]:
    """The scorecard of the period exactly as ``acctdomain kpis --json`` prints it, with the
    change of each KPI against the previous period under ``changes`` (by KPI name)."""
    request = context.request
    before = previous_period(request.start, request.end)
    kpis = [kpi_report(line) for line in context.scorecard(request.start, request.end)]
    return {
        "db": request.db,
        "start": request.start.isoformat(),
        "end": request.end.isoformat(),
        "previous_start": before[0].isoformat(),
        "previous_end": before[1].isoformat(),
        "filters": request.all_filters(),
        "known_at": None if request.known_at is None else request.known_at.isoformat(),
        "currency": context.reporting_currency,
        "kpis": kpis,
        "changes": {kpi["name"]: kpi_change(kpi) for kpi in kpis},
    }


def _signed(number: Decimal, places: int = 1) -> str:
    return f"{number:+,.{places}f}"


def shown_change(kpi: dict[str, Any], change: dict[str, Any]) -> str:
    """A change for a person: percentage points for a ratio, percent for money, the unit's
    own figure otherwise; "" when there is none."""
    delta = change["delta"]
    if delta is None:
        return ""
    if isinstance(delta, int):
        return f"{delta:+d}"
    number, currency = _number(delta)
    unit = kpi["unit"]
    if unit == "ratio":
        return f"{_signed(number * 100)} pp"
    if unit == "money":
        if change["relative"] is not None:
            return f"{_signed(Decimal(change['relative']) * 100)} %"
        return f"{_signed(number, 0)} {currency}"
    if unit in ("hours", "days"):
        return f"{_signed(number)} {unit[0]}"
    return _signed(number)


def _attribute(value: object) -> str:
    """A value as JSON in a double-quoted HTML attribute."""
    return escape(json.dumps(value), quote=True)


def render_kpis(data: dict[str, Any], charts: Charts) -> str:
    """One tile per KPI: its figure, the previous period's, and the change."""
    tiles = []
    for kpi in data["kpis"]:
        change = data["changes"][kpi["name"]]
        better = change["better"]
        mood = "same" if better is None else "better" if better else "worse"
        note = kpi["reason"]
        if kpi["convention"]:
            note = f"convention {kpi['convention']}" + (f"; {note}" if note else "")
        tiles.append(
            f'<div class="tile" data-kpi="{escape(kpi["name"])}" data-unit="{escape(kpi["unit"])}"'
            f' data-value="{_attribute(kpi["value"])}"'
            f' data-previous="{_attribute(kpi["previous"])}">'
            f'<div class="title">{escape(kpi["title"])}</div>'
            f'<div class="value">{escape(shown(kpi["value"], kpi["unit"]))}</div>'
            f'<div class="previous">previous {escape(shown(kpi["previous"], kpi["unit"]))}</div>'
            f'<div class="change {mood}">{escape(shown_change(kpi, change))}</div>'
            f'<div class="reason">{escape(note)}</div>'
            "</div>"
        )
    period = (
        f"{data['start']} to {data['end']}, against {data['previous_start']} to "
        f"{data['previous_end']}"
    )
    return f'<p class="note">{escape(period)}</p><div class="tiles">{"".join(tiles)}</div>'


KPIS = Section("kpis", "Scorecard", kpis_data, render_kpis)


# --- retention trends by quarter ----------------------------------------------------------------


def _month_end(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


def quarters_ending(day: date, count: int) -> list[tuple[str, date, date]]:
    """The ``count`` calendar quarters up to the one ``day`` is in, oldest first, as
    (label, first day, last day)."""
    index = day.year * 4 + (day.month - 1) // 3
    quarters = []
    for number in range(index - count + 1, index + 1):
        year, quarter = divmod(number, 4)
        quarters.append(
            (
                f"{year}-Q{quarter + 1}",
                date(year, 3 * quarter + 1, 1),
                _month_end(year, 3 * quarter + 3),
            )
        )
    return quarters


def trends_data(context: ReportContext) -> dict[str, Any]:
    """NRR, GRR and customer churn for each of the last :data:`TREND_QUARTERS` quarters up to
    the one the period ends in, each quarter computed on its own cohort (values as in
    ``kpis --json``; None with its reason where undefined). One scorecard gives two quarters:
    a quarter's figure and, as its previous period, the quarter before."""
    quarters = quarters_ending(context.request.end, TREND_QUARTERS)
    found: dict[str, dict[str, Any]] = {}
    registered = context.service.plugins.kpis()
    trend_kpis = [name for name in TREND_KPIS if name in registered]  # only these computed
    for index in range(len(quarters) - 1, -1, -2):
        _, first, last = quarters[index]
        for line in context.scorecard(first, last, kpis=trend_kpis):
            if line.name not in TREND_KPIS:
                continue
            row = found.setdefault(
                line.name,
                {
                    "name": line.name,
                    "title": line.title,
                    "unit": line.unit,
                    "values": [None] * len(quarters),
                    "reasons": [""] * len(quarters),
                },
            )
            report = kpi_report(line)
            row["values"][index], row["reasons"][index] = report["value"], report["reason"]
            if index:
                previous = line.previous
                row["values"][index - 1] = figure(previous)
                row["reasons"][index - 1] = line.error or (previous.reason if previous else "")
    return {
        "quarters": [label for label, _, _ in quarters],
        "starts": [first.isoformat() for _, first, _ in quarters],
        "ends": [last.isoformat() for _, _, last in quarters],
        "kpis": [found[name] for name in TREND_KPIS if name in found],
    }


def _percent(value: str | int | None) -> float | None:
    return None if value is None else float(Decimal(str(value)) * 100)


def render_trends(data: dict[str, Any], charts: Charts) -> str:
    """A line per KPI over the quarters, then the figures as a table."""
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": kpi["title"],
            "x": data["quarters"],
            "y": [_percent(value) for value in kpi["values"]],
            "line": {"color": TREND_COLOURS[number % len(TREND_COLOURS)]},
            "hovertemplate": "%{y:.1f} %<extra>" + escape(kpi["title"]) + "</extra>",
        }
        for number, kpi in enumerate(data["kpis"])
    ]
    chart = charts.chart(
        "trends",
        {
            "data": traces,
            "layout": {
                "yaxis": {"ticksuffix": " %", "rangemode": "tozero"},
                "xaxis": {"type": "category"},
            },
        },
    )
    head = "".join(f'<th class="number">{escape(q)}</th>' for q in data["quarters"])
    rows = "".join(
        f'<tr data-trend="{escape(kpi["name"])}"><td>{escape(kpi["title"])}</td>'
        + "".join(
            f'<td class="number" title="{escape(reason)}">{escape(shown(value, kpi["unit"]))}</td>'
            for value, reason in zip(kpi["values"], kpi["reasons"], strict=True)
        )
        + "</tr>"
        for kpi in data["kpis"]
    )
    note = "Each quarter on its own cohort (the accounts active at its start); - is undefined."
    return (
        f'{chart}<p class="note">{escape(note)}</p>'
        f"<table><thead><tr><th>KPI</th>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


TRENDS = Section("trends", "Retention by quarter", trends_data, render_trends)


# --- renewal pipeline by month ------------------------------------------------------------------


def _renewal_on(row: dict[str, Any]) -> date | None:
    due: date | None = row["renewal_due_on"] or row["term_end"]
    return due


def _month_label(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


def pipeline_data(context: ReportContext) -> dict[str, Any]:
    """ARR up for renewal by month: the active accounts in scope by their renewal date (the
    renewal due, else the end of the term), from the current month for
    :data:`PIPELINE_MONTHS` months; ``overdue`` first (dates before today that are neither
    renewed nor churned). ARR is converted to the reporting currency at today's rate; an
    account whose currency has no rate (or every account, without a reporting currency)
    stays in its own currency, in a series of its own: amounts of different currencies are
    never added. ``later``: renewals after the horizon; ``no_date``: accounts without one."""
    today = context.today
    labels = ["overdue"]
    month = date(today.year, today.month, 1)
    for _ in range(PIPELINE_MONTHS):
        labels.append(_month_label(month))
        month = _month_end(month.year, month.month) + timedelta(days=1)
    slots = {label: number for number, label in enumerate(labels)}
    series: dict[str, dict[str, list[Any]]] = {}
    later = no_date = 0
    unconverted: set[str] = set()
    for row in context.accounts():
        due = _renewal_on(row)
        if due is None:
            no_date += 1
            continue
        slot = slots.get("overdue" if due < today else _month_label(due))
        if slot is None:
            later += 1
            continue
        arr = context.arr(row)
        converted = context.convert(arr)
        if converted is None:
            unconverted.add(arr.currency)
        shown_arr = converted or arr
        line = series.setdefault(
            shown_arr.currency,
            {"arr": [Decimal(0)] * len(labels), "accounts": [0] * len(labels)},
        )
        line["arr"][slot] += shown_arr.amount
        line["accounts"][slot] += 1
    reporting = context.reporting_currency
    order = sorted(series, key=lambda currency: (currency != reporting, currency))
    return {
        "as_of": today.isoformat(),
        "currency": reporting,
        "months": labels,
        "accounts": [sum(series[c]["accounts"][n] for c in series) for n in range(len(labels))],
        "series": [
            {
                "currency": currency,
                "arr": [str(value) for value in series[currency]["arr"]],
                "accounts": series[currency]["accounts"],
            }
            for currency in order
        ],
        "unconverted": sorted(unconverted),
        "later": later,
        "no_date": no_date,
    }


def render_pipeline(data: dict[str, Any], charts: Charts) -> str:
    """Bars of ARR due by month, one series per currency shown."""
    traces = [
        {
            "type": "bar",
            "name": line["currency"],
            "x": data["months"],
            "y": [float(value) for value in line["arr"]],
            "customdata": line["accounts"],
            "marker": {"color": CURRENCY_COLOURS[number % len(CURRENCY_COLOURS)]},
            "hovertemplate": "%{y:,.0f} "
            + escape(line["currency"])
            + "<br>%{customdata} accounts<extra></extra>",
        }
        for number, line in enumerate(data["series"])
    ]
    chart = charts.chart(
        "pipeline",
        {
            "data": traces,
            "layout": {
                "barmode": "group",
                "xaxis": {"type": "category"},
                "yaxis": {"title": {"text": "ARR due"}},
            },
        },
    )
    notes = [f"as of {data['as_of']}"]
    if data["currency"]:
        notes.append(f"converted to {data['currency']} at the rate of that day")
        if data["unconverted"]:
            notes.append(f"no rate, in their own currency: {', '.join(data['unconverted'])}")
    else:
        notes.append("no reporting currency: each currency apart")
    notes.append(f"{data['later']} later, {data['no_date']} without a renewal date")
    return f'{chart}<p class="note">{escape("; ".join(notes))}</p>'


PIPELINE = Section("pipeline", "Renewal pipeline by month", pipeline_data, render_pipeline)


# --- sections on the accounts' facts --------------------------------------------------------------


def unavailable(context: ReportContext) -> dict[str, Any] | None:
    """``{"skipped": reason}`` when a read model of :data:`FACTS_READ_MODELS` is not
    registered (a built-in plugin such as ``builtin.workday`` is blocked), else None."""
    registered = set(context.service.projections.names)
    missing = [name for name in FACTS_READ_MODELS if name not in registered]
    if not missing:
        return None
    return {
        "skipped": f"not shown: no plugin registers the read model(s) {', '.join(missing)} "
        "(is the built-in plugin builtin.workday blocked?)"
    }


def _skipped(data: dict[str, Any]) -> str | None:
    """The note of a skipped section, or None."""
    if "skipped" not in data:
        return None
    return f'<p class="note" data-skipped>{escape(data["skipped"])}</p>'


# --- health ---------------------------------------------------------------------------------------


def health_data(context: ReportContext) -> dict[str, Any]:
    """How many active accounts in scope are in each health band now (``service.health``:
    the registered signals over the accounts' facts, from read models; ``unscored`` when no
    signal had anything to say)."""
    if (skipped := unavailable(context)) is not None:
        return skipped
    counts = dict.fromkeys(BANDS, 0)
    for score in context.health().values():
        counts[score.band or "unscored"] += 1
    return {
        "as_of": context.now.isoformat(),
        "accounts": sum(counts.values()),
        "bands": counts,
    }


def render_health(data: dict[str, Any], charts: Charts) -> str:
    """A bar per band."""
    if (note := _skipped(data)) is not None:
        return note
    chart = charts.chart(
        "health",
        {
            "data": [
                {
                    "type": "bar",
                    "x": list(data["bands"]),
                    "y": list(data["bands"].values()),
                    "marker": {"color": [BAND_COLOURS[band] for band in data["bands"]]},
                    "text": list(data["bands"].values()),
                    "textposition": "auto",
                    "hovertemplate": "%{x}: %{y} accounts<extra></extra>",
                }
            ],
            "layout": {"xaxis": {"type": "category"}, "yaxis": {"title": {"text": "accounts"}}},
        },
        height=300,
    )
    note = f"{data['accounts']} active accounts, as of {shown_moment(data['as_of'])}"
    return f'{chart}<p class="note">{escape(note)}</p>'


HEALTH = Section("health", "Health distribution", health_data, render_health)


# --- accounts at risk -----------------------------------------------------------------------------


def at_risk_data(context: ReportContext) -> dict[str, Any]:
    """The accounts in the red health band, largest ARR first (in the reporting currency;
    accounts without a rate after those with one), at most :data:`AT_RISK_LIMIT` of them;
    ``count`` says how many there are."""
    if (skipped := unavailable(context)) is not None:
        return skipped
    scores = context.health()
    found = []
    for row in context.accounts():
        score = scores[row["account_id"]]
        if score.band != "red":
            continue
        arr = context.arr(row)
        converted = context.convert(arr)
        due = _renewal_on(row)
        weakest = sorted(
            (signal for signal in score.signals if signal.score is not None),
            key=lambda signal: (signal.score, signal.name),
        )
        found.append(
            (
                (converted is None, -(converted or arr).amount, row["name"]),
                {
                    "account_id": str(row["account_id"]),
                    "name": row["name"],
                    "manager": row["manager"],
                    "segment": plain(row["segment"]),
                    "score": round(score.score or 0.0, 3),  # a red band has a score
                    "arr": f"{arr.amount} {arr.currency}",
                    "arr_reporting": None
                    if converted is None
                    else f"{converted.amount} {converted.currency}",
                    "renewal_on": None if due is None else due.isoformat(),
                    "open_issues": len(row["open_issues"]),
                    "weakest_signals": [signal.name for signal in weakest[:2]],
                },
            )
        )
    found.sort(key=lambda pair: pair[0])
    return {
        "as_of": context.now.isoformat(),
        "count": len(found),
        "accounts": [account for _, account in found[:AT_RISK_LIMIT]],
    }


def _money_cell(text: str | None) -> str:
    if text is None:
        return "-"
    number, currency = text.split()
    return amount(number, currency)


def render_at_risk(data: dict[str, Any], charts: Charts) -> str:
    """A table of the accounts at risk."""
    if (note := _skipped(data)) is not None:
        return note
    if not data["accounts"]:
        return '<p class="note">No account is in the red band.</p>'
    rows = "".join(
        f'<tr data-account="{escape(account["account_id"])}">'
        f"<td>{escape(account['name'])}</td><td>{escape(account['manager'])}</td>"
        f"<td>{escape(account['segment'])}</td>"
        f'<td class="number">{account["score"]:.2f}</td>'
        f'<td class="number">{escape(_money_cell(account["arr"]))}</td>'
        f'<td class="number">{escape(_money_cell(account["arr_reporting"]))}</td>'
        f"<td>{escape(account['renewal_on'] or '-')}</td>"
        f'<td class="number">{account["open_issues"]}</td>'
        f"<td>{escape(', '.join(account['weakest_signals']))}</td></tr>"
        for account in data["accounts"]
    )
    head = "".join(
        f'<th class="{kind}">{escape(title)}</th>'
        for title, kind in (
            ("account", ""),
            ("manager", ""),
            ("segment", ""),
            ("health", "number"),
            ("ARR", "number"),
            ("ARR (reporting)", "number"),
            ("renewal", ""),
            ("open issues", "number"),
            ("weakest signals", ""),
        )
    )
    shown_count = len(data["accounts"])
    note = f"{data['count']} accounts in the red band" + (
        f", the {shown_count} largest shown" if shown_count < data["count"] else ""
    )
    return (
        f'<p class="note">{escape(note)}, as of {escape(shown_moment(data["as_of"]))}</p>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


AT_RISK = Section("at_risk", "Accounts at risk", at_risk_data, render_at_risk)


# --- today's priorities ---------------------------------------------------------------------------


def today_data(context: ReportContext) -> dict[str, Any]:
    """What to do today, ranked, with the reasons: exactly what ``acctdomain today --json
    --on DAY`` prints for the day of ``now`` (the ``--manager`` filter's manager, else every
    manager; the first :data:`TODAY_LIMIT` items). With a segment, manager-type or product
    filter, the day of the active accounts in scope instead (ranked among themselves)."""
    if (skipped := unavailable(context)) is not None:
        return skipped
    # The workday plugin's views (the read models are checked above).
    from acctdomain.builtin.day import prioritise, today
    from acctdomain.builtin.facts import account_facts, read_once
    from acctdomain.builtin.workday_cli import day_report

    context.catch_up()
    request, service, day = context.request, context.service, context.today
    filters = request.given_filters
    manager = filters.pop("manager", None)
    if filters:
        read_models = read_once(service.read_model)
        book = (
            account_facts(read_models, row["account_id"], today=day) for row in context.accounts()
        )
        ranked = prioritise(book, today=day, manager=manager, limit=TODAY_LIMIT)
    else:
        ranked = today(service, manager, on=day, limit=TODAY_LIMIT, catch_up=False)
    return day_report(ranked, request.db)


def render_today(data: dict[str, Any], charts: Charts) -> str:
    """A table of the day's items: rank, score, account, what, and why."""
    if (note := _skipped(data)) is not None:
        return note
    who = data["manager"] or "every manager"
    summary = f"{who} on {data['day']} ({data['accounts']} accounts)"
    if not data["items"]:
        return f'<p class="note">{escape(f"Nothing needs attention for {summary}.")}</p>'
    rows = "".join(
        f'<tr data-priority="{item["rank"]}" data-kind="{escape(item["kind"])}"'
        f' data-account="{escape(item["account_id"])}" style="vertical-align: top">'
        f'<td class="number rank">{item["rank"]}</td>'
        f'<td class="number score">{item["score"]:.1f}</td>'
        f'<td class="account">{escape(item["account"])}</td>'
        f'<td class="what">{escape(item["title"])}</td>'
        '<td class="why"><ul class="reasons" style="margin: 0; padding-left: 16px">'
        + "".join(f"<li>{escape(reason)}</li>" for reason in item["reasons"])
        + "</ul></td></tr>"
        for item in data["items"]
    )
    head = "".join(
        f'<th class="{kind}">{escape(title)}</th>'
        for title, kind in (
            ("#", "number"),
            ("score", "number"),
            ("account", ""),
            ("what", ""),
            ("why", ""),
        )
    )
    shown_items = f"The first {len(data['items'])} items for {summary}"
    return (
        f'<p class="note">{escape(shown_items)}</p>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


TODAY = Section("today", "Today's priorities", today_data, render_today)


SECTIONS: tuple[Section, ...] = (KPIS, TRENDS, PIPELINE, HEALTH, AT_RISK, TODAY)
"""The report's sections, in page order."""
