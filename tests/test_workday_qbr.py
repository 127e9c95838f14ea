"""The quarterly business review summary (``acctdomain.builtin.qbr``) and ``acctdomain qbr``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
from typer.testing import CliRunner

from acctdomain import AccountService, CsatScore, Money, NpsScore, ProductLine
from acctdomain.builtin.qbr import qbr_summary, quarter_bounds
from acctdomain.cli import build_app
from acctdomain.errors import AccountNotFound, InvalidValue
from acctdomain.plugins import PluginHost


def at(month: int, day: int, hour: int = 9, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def eur(amount: int) -> Money:
    return Money(amount, "EUR")


def quarter_of_acme(service: AccountService) -> UUID:
    acme = service.open_account(
        name="Acme", segment="smb", industry="retail", currency="EUR", manager="amy",
        manager_type="sales", external_key="crm:acme", actor="amy",
        effective_at=at(12, 1, year=2025),
    ).account_id  # fmt: skip
    amy = {"actor": "amy"}
    service.start_contract(
        acme, term_end=date(2027, 1, 1), lines=[ProductLine("core", eur(10_000))],
        effective_at=at(12, 15, year=2025), **amy,
    )  # fmt: skip
    service.upsell(acme, product="core", added_arr=eur(2_000), effective_at=at(2, 1), **amy)
    service.downgrade(
        acme, product="core", reduced_by=eur(500), reason="fewer seats", effective_at=at(3, 1),
        **amy,
    )  # fmt: skip
    service.record_feedback(acme, score=NpsScore(9), effective_at=at(1, 10), **amy)
    service.record_feedback(acme, score=NpsScore(5), effective_at=at(3, 10), **amy)
    service.record_feedback(acme, score=CsatScore(4), effective_at=at(1, 11), **amy)
    service.record_feedback(acme, score=CsatScore(2), effective_at=at(1, 12), **amy)
    outage = service.raise_issue(
        acme, title="Outage", severity="critical", category="platform", effective_at=at(2, 1),
        **amy,
    ).entity_id  # fmt: skip
    service.respond_to_issue(acme, issue_id=outage, effective_at=at(2, 1, 11), **amy)
    service.escalate_issue(acme, issue_id=outage, to_team="sre", effective_at=at(2, 2), **amy)
    service.resolve_issue(acme, issue_id=outage, resolution="fixed", effective_at=at(2, 3), **amy)
    service.raise_issue(
        acme, title="Typo", severity="low", category="ui", effective_at=at(3, 20), **amy
    )
    goal = service.set_goal(acme, title="Adopt reports", measure="", effective_at=at(1, 5), **amy)
    service.achieve_goal(acme, goal_id=goal.entity_id, effective_at=at(3, 25), **amy)
    service.record_value_delivered(
        acme, amount=eur(3_000), description="fewer returns", effective_at=at(3, 5), **amy
    )
    service.upsell(acme, product="core", added_arr=eur(1_000), effective_at=at(4, 2), **amy)  # Q2
    return acme


def test_the_quarter_in_business_time(memory_service: AccountService) -> None:
    acme = quarter_of_acme(memory_service)
    summary = qbr_summary(memory_service, acme, year=2026, quarter=1)
    assert (summary.quarter, summary.start, summary.end) == ("2026-Q1", date(2026, 1, 1),
                                                              date(2026, 3, 31))  # fmt: skip
    assert (summary.name, summary.manager) == ("Acme", "amy")
    assert summary.happened == {
        "Downgraded": 1, "FeedbackRecorded": 4, "GoalAchieved": 1, "GoalSet": 1,
        "IssueEscalated": 1, "IssueRaised": 2, "IssueResolved": 1, "IssueResponded": 1,
        "Upsold": 1, "ValueDelivered": 1,
    }  # fmt: skip
    assert summary.highlights == (
        "2026-02-01: upsell of core: +2000 EUR",
        "2026-02-01: critical issue raised: Outage",
        "2026-02-02: issue escalated to sre: Outage",
        "2026-02-03: issue resolved: Outage",
        "2026-03-01: downgrade of core: -500 EUR",
        "2026-03-05: value delivered: 3000 EUR (fewer returns)",
        "2026-03-10: NPS detractor answer: 5",
        "2026-03-25: goal achieved: Adopt reports",
    )
    figures = summary.figures
    assert (figures.arr_start, figures.arr_end) == (eur(10_000), eur(11_500))
    assert (figures.new, figures.expansion, figures.contraction, figures.churned) == (
        eur(0), eur(2_000), eur(500), eur(0),
    )  # fmt: skip
    assert figures.arr_change == eur(1_500)
    assert (figures.nps_answers, figures.nps_mean) == ((9, 5), Decimal(7))
    assert (figures.csat_answers, figures.csat_satisfied) == ((4, 2), Decimal("0.5"))
    assert figures.median_first_response_hours == Decimal("2.0")
    assert figures.median_resolution_hours == Decimal("48.0")
    assert [issue.title for issue in summary.open_issues] == ["Typo"]
    assert summary.plan.progress.reason  # no tactic: nothing to measure, with the reason
    assert summary.value.total() == eur(3_000)


def test_a_quiet_quarter_and_one_before_the_account(memory_service: AccountService) -> None:
    acme = quarter_of_acme(memory_service)
    quiet = qbr_summary(memory_service, acme, year=2026, quarter=3)
    assert (quiet.happened, quiet.highlights) == ({}, ())
    assert quiet.figures.arr_start == quiet.figures.arr_end == eur(12_500)
    assert quiet.figures.nps_mean is None
    assert quiet.figures.median_resolution_hours is None
    with pytest.raises(AccountNotFound):
        qbr_summary(memory_service, acme, year=2025, quarter=2)  # not opened yet
    with pytest.raises(AccountNotFound):
        qbr_summary(memory_service, UUID(int=1), year=2026, quarter=1)


def test_the_movements_add_up_to_the_change_of_arr(memory_service: AccountService) -> None:
    service = memory_service
    acme = quarter_of_acme(service)  # 12,500 EUR of core by April
    amy = {"actor": "amy"}
    service.cross_sell(acme, product="audit", arr=eur(500), effective_at=at(4, 10), **amy)
    service.renew(  # a renewal at a lower value is contraction, not nothing
        acme, term_end=date(2028, 1, 1), lines=[ProductLine("core", eur(9_000))],
        effective_at=at(5, 1), **amy,
    )  # fmt: skip
    service.churn(acme, reason="price", detail="", effective_at=at(6, 1), **amy)
    service.reactivate(
        acme, term_end=date(2027, 6, 1), lines=[ProductLine("core", eur(4_000))],
        effective_at=at(6, 20), **amy,
    )  # fmt: skip
    figures = qbr_summary(service, acme, year=2026, quarter=2).figures
    assert (figures.arr_start, figures.arr_end) == (eur(11_500), eur(4_000))
    assert (figures.new, figures.expansion, figures.contraction, figures.churned) == (
        eur(4_000), eur(1_500), eur(4_000), eur(9_000),
    )  # fmt: skip
    assert figures.arr_change == (
        figures.new + figures.expansion - figures.contraction - figures.churned
    )


def test_bad_arguments_are_refused(memory_service: AccountService) -> None:
    with pytest.raises(InvalidValue, match="quarter"):
        quarter_bounds(2026, 5)
    with pytest.raises(InvalidValue, match="year"):
        quarter_bounds(True, 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="account_id"):
        qbr_summary(memory_service, "acme", year=2026, quarter=1)  # type: ignore[arg-type]
    assert quarter_bounds(2024, 1) == (date(2024, 1, 1), date(2024, 3, 31))
    assert quarter_bounds(2026, 4) == (date(2026, 10, 1), date(2026, 12, 31))
    assert quarter_bounds(9999, 4) == (date(9999, 10, 1), date(9999, 12, 31))


def test_the_qbr_command(tmp_path: Path) -> None:
    db = str(tmp_path / "book.db")
    with AccountService(db, plugins=PluginHost(entry_points=False)) as service:
        quarter_of_acme(service)
    app = build_app(PluginHost(entry_points=False))
    cli = CliRunner()
    result = cli.invoke(app, ["qbr", "crm:acme", "--quarter", "2026-Q1", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["figures"]["arr_change"] == "1500"
    assert report["figures"]["csat_satisfied"] == "0.5000"
    assert report["value_realised"] == {"EUR": "3000"}
    assert [issue["title"] for issue in report["open_issues"]] == ["Typo"]
    text = cli.invoke(app, ["qbr", "crm:acme", "--quarter", "2026-q1", "--db", db])
    assert "- 2026-02-03: issue resolved: Outage" in text.stdout
    for argv, message in (
        (["qbr", "crm:acme", "--quarter", "2026-Q5"], "--quarter: expected a quarter"),
        (["qbr", "acme", "--quarter", "2026-Q1"], "ACCOUNT: expected an account id"),
        (["qbr", "crm:nobody", "--quarter", "2026-Q1"], "ACCOUNT crm:nobody:"),
    ):
        bad = cli.invoke(app, [*argv, "--db", db])
        assert bad.exit_code == 2, bad.output
        assert bad.stderr.startswith(f"error: {message}")
