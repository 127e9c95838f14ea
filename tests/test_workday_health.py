"""Health signals over account facts, the portfolio, and the ``today`` and ``portfolio``
commands of ``builtin.workday``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID

import pytest
from typer.testing import CliRunner

from acctdomain import AccountService, CsatScore, Money, ProductLine
from acctdomain.builtin.health import csat_trend, plan_progress, revenue_trend
from acctdomain.builtin.portfolio import portfolio
from acctdomain.cli import build_app
from acctdomain.errors import InvalidValue
from acctdomain.plugins import PluginHost


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 9, tzinfo=UTC)


def customer(
    service: AccountService, name: str, *, manager: str = "amy", arr: int = 10_000
) -> UUID:
    account = service.open_account(
        name=name, segment="smb", industry="retail", currency="EUR", manager=manager,
        manager_type="sales", actor="amy", effective_at=at(2025, 1, 1),
    ).account_id  # fmt: skip
    service.start_contract(
        account, term_end=date(2026, 12, 31), lines=[ProductLine("core", Money(arr, "EUR"))],
        actor="amy", effective_at=at(2025, 1, 1),
    )  # fmt: skip
    return account


def test_revenue_plan_and_csat_signals(memory_service: AccountService) -> None:
    service = memory_service
    acme = customer(service, "Acme")
    service.upsell(
        acme, product="core", added_arr=Money(2_500, "EUR"), actor="amy",
        effective_at=at(2025, 6, 1),
    )  # fmt: skip
    for month, score in ((1, 5), (2, 4), (3, 4), (4, 3), (5, 2), (6, 2)):
        service.record_feedback(
            acme, score=CsatScore(score), actor="amy", effective_at=at(2025, month, 2)
        )
    goal = service.set_goal(acme, title="G", measure="", actor="amy", effective_at=at(2025, 1, 2))
    strategy = service.add_strategy(
        acme, goal_id=goal.entity_id, description="S", actor="amy", effective_at=at(2025, 1, 2)
    )
    tactics = [
        service.add_tactic(
            acme, strategy_id=strategy.entity_id, description=f"T{n}", owner="amy",
            due_on=date(2025, 3, 1), actor="amy", effective_at=at(2025, 1, 2),
        ).entity_id
        for n in range(4)
    ]  # fmt: skip
    for tactic in tactics[:3]:
        service.complete_tactic(acme, tactic_id=tactic, actor="amy", effective_at=at(2025, 2, 1))
    service.catch_up()
    facts = service.facts(acme, today=date(2026, 2, 1))
    now = at(2026, 2, 1)
    assert (facts.arr, facts.arr_year_ago) == (Money(12_500, "EUR"), Money(10_000, "EUR"))
    assert revenue_trend(facts, now) == 0.75  # +25% over the year
    later = service.facts(acme, today=date(2026, 7, 1))
    assert later.arr_year_ago == Money(12_500, "EUR")
    assert revenue_trend(later, now) == 0.5  # flat since the upsell of June 2025
    assert csat_trend(facts, now) == pytest.approx(0.0)  # (2+2+3)/3 against (5+4+4)/3: -2 points
    # 3 of 4 tactics done, the fourth overdue and the goal without a target date.
    assert plan_progress(facts, now) == pytest.approx(0.75 - 0.1)


def test_weights_are_checked_and_a_blocked_workday_is_a_clear_error(
    memory_service: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = customer(memory_service, "Acme")
    with pytest.raises(InvalidValue, match="no such health signal"):
        memory_service.health(acme, weights={"mood": 1})
    with pytest.raises(InvalidValue, match=r"weights\.nps"):
        memory_service.health(acme, weights={"nps": -1})
    with pytest.raises(InvalidValue, match=r"weights\.nps"):
        memory_service.health(acme, weights={"nps": float("inf")})
    with pytest.raises(InvalidValue, match="now"):
        memory_service.health(acme, now=datetime(2026, 3, 2, 12))  # naive
    only = memory_service.health(
        acme, weights=dict.fromkeys(memory_service.plugins.health_signals(), 0) | {"engagement": 1}
    )
    assert [s.name for s in only.signals] == ["engagement"]
    monkeypatch.setenv("ACCTDOMAIN_PLUGINS_BLOCK", "builtin.workday")
    with AccountService("memory:", plugins=PluginHost(entry_points=False)) as blocked:
        account = customer(blocked, "Acme")
        with pytest.raises(InvalidValue, match="attention"):
            blocked.health(account)


def test_portfolio_totals_skip_churned_accounts_and_other_managers(
    memory_service: AccountService,
) -> None:
    service = memory_service
    customer(service, "Small", arr=1_000)
    big = customer(service, "Big", arr=9_000)
    gone = customer(service, "Gone", arr=5_000)
    customer(service, "Theirs", manager="bob")
    service.churn(gone, reason="price", detail="", actor="amy", effective_at=at(2025, 9, 1))
    service.mark_renewal_due(big, due_on=date(2025, 11, 30), actor="amy")  # overdue by today
    book = portfolio(service, "amy", today=date(2026, 1, 15), months=2)
    assert [e.facts.name for e in book.accounts] == ["Big", "Small", "Gone"]
    assert book.arr == {"EUR": Money(10_000, "EUR")}
    assert [(m.month, m.accounts, m.arr) for m in book.renewals] == [
        ("2026-01", 1, {"EUR": Money(9_000, "EUR")}),  # the overdue renewal counts now
        ("2026-02", 0, {}),
    ]
    assert book.accounts[-1].health.score is None
    assert sum(book.health.values()) == 2
    assert book.plan_progress.ratio is None
    with pytest.raises(InvalidValue, match="months"):
        portfolio(service, "amy", months=0)
    with pytest.raises(InvalidValue, match="today"):
        portfolio(service, "amy", today="2026-01-01")  # type: ignore[arg-type]


def test_today_and_portfolio_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "book.db")
    with AccountService(db, plugins=PluginHost(entry_points=False)) as service:
        customer(service, "Acme")
    cli = CliRunner()
    app = build_app(PluginHost(entry_points=False))
    result = cli.invoke(app, ["today", "--db", db, "--on", "2026-01-15", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"db", "manager", "day", "accounts", "items"}
    [item] = report["items"]
    assert item["kind"] == "silent_account"
    assert set(item) == {
        "rank", "score", "kind", "account_id", "account", "manager", "title", "item_id",
        "reasons", "factors",
    }  # fmt: skip
    assert item["factors"] == {"weight": 25.0, "silence": 2.0, "segment": 0.8}
    table = cli.invoke(app, ["today", "--db", db, "--on", "2026-01-15"])
    assert "reach out: no contact for too long" in table.stdout
    book = cli.invoke(app, ["portfolio", "--db", db, "--manager", "amy", "--json"])
    assert book.exit_code == 0, book.output
    assert json.loads(book.stdout)["arr"] == {"EUR": "10000"}
    bad = cli.invoke(app, ["today", "--db", db, "--on", "15/01/2026"])
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "error: --on: expected a date like 2026-03-31, got '15/01/2026'"
    nobody = cli.invoke(app, ["portfolio", "--db", db, "--manager", " "])
    assert nobody.exit_code == 2
    assert "manager" in nobody.stderr
