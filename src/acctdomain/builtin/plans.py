"""The ``account_plans`` read model and the account-plan view.

An account plan is the AM's goals for one customer, each with strategies, each with concrete
tactics (owner, due date). The projection keeps, in table ``plans``, an empty row per account
(key: the account id's hex, so an unknown account is told apart from one without a plan) and a
row per goal, strategy and tactic (key ``<account hex>:<kind>:<item hex>``) with the effective
time of each step (set, added, completed, dropped, achieved, abandoned). No row grows with the
plan: a rebuild holds only the items its events touch.

:func:`account_plan` reads that row and tells, as of a day of effective time (UTC):

- each goal with its strategies and tactics, in the state they were in at the end of that day
  (items set or added later are left out; items closed later are still open);
- progress: completed tactics / tactics not dropped, per goal and overall (``ratio`` None with
  a reason when there is nothing to measure);
- the overdue items: open tactics past their due date, and goals past their target date that
  are neither achieved nor abandoned, the most overdue first. The tactics of a goal that was
  achieved or abandoned are never overdue: the goal was decided.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal
from uuid import UUID

import attrs

from acctdomain.builtin.workday import (
    account_row,
    require_account_id,
    require_day,
    require_read_model,
)
from acctdomain.domain import events as ev
from acctdomain.domain.records import GoalStatus, TacticStatus
from acctdomain.plugins import Projection, ReadModel, Rows

__all__ = [
    "PLANS",
    "AccountPlan",
    "AccountPlansProjection",
    "GoalPlan",
    "OverdueItem",
    "Progress",
    "StrategyPlan",
    "TacticPlan",
    "account_plan",
    "item_key",
    "plan_row",
]

PLANS = "plans"


class AccountPlansProjection(Projection):
    """Table ``plans``: key = account id (hex), value = ``{}``; and a row per item, key
    :func:`item_key` (``<account hex>:goals|strategies|tactics:<item hex>``):

    a goal has ``title``, ``measure``, ``target_date``, ``set_at``, ``version``, ``status``,
    ``closed_at``, ``reason``; a strategy ``goal``, ``description``, ``added_at``,
    ``version``; a tactic ``strategy``, ``description``, ``owner``, ``due_on``, ``added_at``,
    ``version``, ``status``, ``closed_at``, ``reason``. Statuses are the values of
    ``GoalStatus`` and ``TacticStatus``; times are effective times; ``version`` is the
    account's version of the event that set or added the item (its place in recording order).
    """

    name = "account_plans"
    # 2: a row per item (version 1 kept the whole plan in the account's row, which grew with
    # it and held every plan in memory during a rebuild).
    version = 2
    tables = (PLANS,)
    event_types: ClassVar[tuple[type, ...]] = (
        ev.AccountOpened,
        ev.GoalSet,
        ev.StrategyAdded,
        ev.TacticAdded,
        ev.TacticCompleted,
        ev.TacticDropped,
        ev.GoalAchieved,
        ev.GoalAbandoned,
    )
    description = "Goals, strategies and tactics of each account's plan, a row per item."

    def account_share(self, account_id: UUID) -> dict[str, str]:
        """The account's rows are under its hex (which has a fixed length)."""
        return {PLANS: account_id.hex}

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        if isinstance(event, ev.AccountOpened):
            rows.put(PLANS, key, {})
            return
        at = event.effective_at
        if isinstance(event, ev.GoalSet):
            item: dict[str, Any] = {
                "title": event.title,
                "measure": event.measure,
                "target_date": event.target_date,
                "set_at": at,
                "version": event.originator_version,
                "status": GoalStatus.OPEN.value,
                "closed_at": None,
                "reason": "",
            }
            rows.put(PLANS, item_key(key, "goals", event.goal_id), item)
        elif isinstance(event, ev.StrategyAdded):
            item = {
                "goal": event.goal_id.hex,
                "description": event.description,
                "added_at": at,
                "version": event.originator_version,
            }
            rows.put(PLANS, item_key(key, "strategies", event.strategy_id), item)
        elif isinstance(event, ev.TacticAdded):
            item = {
                "strategy": event.strategy_id.hex,
                "description": event.description,
                "owner": event.owner,
                "due_on": event.due_on,
                "added_at": at,
                "version": event.originator_version,
                "status": TacticStatus.OPEN.value,
                "closed_at": None,
                "reason": "",
            }
            rows.put(PLANS, item_key(key, "tactics", event.tactic_id), item)
        else:
            close = next(_CLOSES[cls] for cls in type(event).__mro__ if cls in _CLOSES)
            items, item_id, status = close(event)
            closed = rows.get(PLANS, item_key(key, items, item_id))
            if closed is None:  # cannot happen for events the aggregate accepted
                return
            closed["status"] = status.value
            closed["closed_at"] = at
            closed["reason"] = getattr(event, "reason", "")
            rows.put(PLANS, item_key(key, items, item_id), closed)


def item_key(account_hex: str, kind: str, item_id: UUID) -> str:
    """The row of one goal, strategy or tactic (``kind``: ``goals``, ``strategies``,
    ``tactics``) of an account: after the account's own row in key order."""
    return f"{account_hex}:{kind}:{item_id.hex}"


def plan_row(read_model: ReadModel, account_id: UUID) -> dict[str, Any]:
    """An account's plan as one dict (``goals``, ``strategies``, ``tactics``: item hex to
    item), read from its rows (a key range); AccountNotFound for an unknown account."""
    account_row(read_model, "account_plans", PLANS, account_id)
    plan: dict[str, dict[str, Any]] = {"goals": {}, "strategies": {}, "tactics": {}}
    for key, item in read_model.scan(PLANS, f"{account_id.hex}:"):
        _, kind, item_hex = key.split(":")
        plan[kind][item_hex] = item
    return plan


_Close = Callable[[Any], tuple[str, UUID, GoalStatus | TacticStatus]]

# The events that close an item: where the item is, its id and its new status.
_CLOSES: dict[type, _Close] = {
    ev.TacticCompleted: lambda e: ("tactics", e.tactic_id, TacticStatus.COMPLETED),
    ev.TacticDropped: lambda e: ("tactics", e.tactic_id, TacticStatus.DROPPED),
    ev.GoalAchieved: lambda e: ("goals", e.goal_id, GoalStatus.ACHIEVED),
    ev.GoalAbandoned: lambda e: ("goals", e.goal_id, GoalStatus.ABANDONED),
}


# --- the view -----------------------------------------------------------------------------------


@attrs.frozen
class Progress:
    """Completed tactics out of the tactics not dropped; ``ratio`` is None (with ``reason``)
    when no tactic is left to measure."""

    completed: int
    planned: int  # tactics not dropped
    ratio: Decimal | None
    reason: str = ""


@attrs.frozen
class TacticPlan:
    """A tactic as it stood at the end of the day asked about."""

    tactic_id: UUID
    description: str
    owner: str
    due_on: date | None
    status: TacticStatus
    added_at: datetime
    closed_at: datetime | None  # completed or dropped (None while open)
    reason: str  # why it was dropped


@attrs.frozen
class StrategyPlan:
    """A strategy with its tactics (in the order they were added)."""

    strategy_id: UUID
    description: str
    added_at: datetime
    tactics: tuple[TacticPlan, ...]


@attrs.frozen
class GoalPlan:
    """A goal with its strategies and its progress."""

    goal_id: UUID
    title: str
    measure: str
    target_date: date | None
    status: GoalStatus
    set_at: datetime
    closed_at: datetime | None  # achieved or abandoned (None while open)
    reason: str  # why it was abandoned
    strategies: tuple[StrategyPlan, ...]
    progress: Progress


@attrs.frozen
class OverdueItem:
    """A goal past its target date or a tactic past its due date, still open on the day."""

    kind: Literal["goal", "tactic"]
    item_id: UUID
    goal_id: UUID
    title: str  # the goal's title or the tactic's description
    owner: str | None  # the tactic's owner (None for a goal)
    due_on: date  # the tactic's due date or the goal's target date
    days_overdue: int  # >= 1


@attrs.frozen
class AccountPlan:
    """An account's plan as of the end of ``today``."""

    account_id: UUID
    today: date
    goals: tuple[GoalPlan, ...]
    progress: Progress
    overdue: tuple[OverdueItem, ...]


def account_plan(read_model: ReadModel, account_id: UUID, *, today: date) -> AccountPlan:
    """The plan of ``account_id`` from the ``account_plans`` read model, as of the end of
    ``today`` (a date; effective time, UTC).

    Goals, strategies and tactics come in the order they were set or added (by effective
    time, then in recording order). Overdue items come the most overdue first; among equals
    goals before tactics, then by title and id. Raises ``InvalidValue`` naming ``read_model``,
    ``account_id`` or ``today`` when one is malformed, and ``AccountNotFound`` when the read
    model has no row for the account.
    """
    require_read_model(read_model)
    day = require_day("today", today)
    row = plan_row(read_model, require_account_id(account_id))

    def visible(moment: datetime) -> bool:
        return _day(moment) <= day

    def closed_by_then(item: dict[str, Any]) -> bool:
        return item["closed_at"] is not None and _day(item["closed_at"]) <= day

    tactics_of: dict[str, list[TacticPlan]] = {}
    for tactic_hex, item in _in_order(row["tactics"], "added_at"):
        if not visible(item["added_at"]):
            continue
        closed = closed_by_then(item)
        tactics_of.setdefault(item["strategy"], []).append(
            TacticPlan(
                tactic_id=UUID(tactic_hex),
                description=item["description"],
                owner=item["owner"],
                due_on=item["due_on"],
                status=TacticStatus(item["status"]) if closed else TacticStatus.OPEN,
                added_at=item["added_at"],
                closed_at=item["closed_at"] if closed else None,
                reason=item["reason"] if closed else "",
            )
        )
    strategies_of: dict[str, list[StrategyPlan]] = {}
    for strategy_hex, item in _in_order(row["strategies"], "added_at"):
        if visible(item["added_at"]):
            strategies_of.setdefault(item["goal"], []).append(
                StrategyPlan(
                    strategy_id=UUID(strategy_hex),
                    description=item["description"],
                    added_at=item["added_at"],
                    tactics=tuple(tactics_of.get(strategy_hex, ())),
                )
            )
    goals: list[GoalPlan] = []
    overdue: list[OverdueItem] = []
    for goal_hex, item in _in_order(row["goals"], "set_at"):
        if not visible(item["set_at"]):
            continue
        closed = closed_by_then(item)
        strategies = tuple(strategies_of.get(goal_hex, ()))
        tactics = [tactic for strategy in strategies for tactic in strategy.tactics]
        goal = GoalPlan(
            goal_id=UUID(goal_hex),
            title=item["title"],
            measure=item["measure"],
            target_date=item["target_date"],
            status=GoalStatus(item["status"]) if closed else GoalStatus.OPEN,
            set_at=item["set_at"],
            closed_at=item["closed_at"] if closed else None,
            reason=item["reason"] if closed else "",
            strategies=strategies,
            progress=_progress(
                tactics, "the goal has no tactic", "every tactic of the goal was dropped"
            ),
        )
        goals.append(goal)
        if goal.status is GoalStatus.OPEN:
            overdue.extend(_overdue(goal, tactics, day))
    overdue.sort(key=lambda o: (-o.days_overdue, o.kind != "goal", o.title, o.item_id.hex))
    every_tactic = [t for g in goals for s in g.strategies for t in s.tactics]
    return AccountPlan(
        account_id=account_id,
        today=day,
        goals=tuple(goals),
        progress=(
            _progress(
                every_tactic, "the plan has no tactic", "every tactic of the plan was dropped"
            )
            if goals
            else _NO_GOAL
        ),
        overdue=tuple(overdue),
    )


_NO_GOAL = Progress(0, 0, None, "the plan has no goal")


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _in_order(items: dict[str, Any], at: str) -> list[tuple[str, Any]]:
    return sorted(items.items(), key=lambda pair: (pair[1][at], pair[1]["version"]))


def _progress(tactics: list[TacticPlan], none: str, all_dropped: str) -> Progress:
    planned = [t for t in tactics if t.status is not TacticStatus.DROPPED]
    completed = sum(1 for t in planned if t.status is TacticStatus.COMPLETED)
    if not planned:
        return Progress(0, 0, None, all_dropped if tactics else none)
    return Progress(completed, len(planned), Decimal(completed) / Decimal(len(planned)))


def _overdue(goal: GoalPlan, tactics: list[TacticPlan], day: date) -> list[OverdueItem]:
    found = []
    if goal.target_date is not None and goal.target_date < day:
        found.append(
            OverdueItem(
                kind="goal",
                item_id=goal.goal_id,
                goal_id=goal.goal_id,
                title=goal.title,
                owner=None,
                due_on=goal.target_date,
                days_overdue=(day - goal.target_date).days,
            )
        )
    for tactic in tactics:
        if tactic.status is TacticStatus.OPEN and tactic.due_on is not None and tactic.due_on < day:
            found.append(
                OverdueItem(
                    kind="tactic",
                    item_id=tactic.tactic_id,
                    goal_id=goal.goal_id,
                    title=tactic.description,
                    owner=tactic.owner,
                    due_on=tactic.due_on,
                    days_overdue=(day - tactic.due_on).days,
                )
            )
    return found
