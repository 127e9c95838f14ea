"""The ``stakeholders`` read model and the stakeholder-map view.

The projection keeps one row per account (key: the account id's hex) in table
``stakeholders``: every person added to the account's stakeholder map, with their title, role
and sentiment as last recorded, when they were added, last updated and removed, and when they
were last met: the latest effective time of a contact (``ContactLogged``) that lists them among
its ``stakeholder_ids``. The row grows with the stakeholder map only, not with the contacts.

:func:`stakeholder_map` reads that row and tells, on a given day, who is on the map now and the
gaps an account manager should see, each with a readable reason:

- ``no_champion``: nobody on the map is a champion (a champion whose sentiment is negative is
  no champion);
- ``no_economic_buyer``: nobody on the map is an economic buyer or a decision maker;
- ``not_met``: an economic buyer or decision maker not met in the last ``not_met_days`` days
  (90 by default), or never met;
- ``detractor``: an economic buyer or decision maker whose sentiment is negative.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

import attrs

from acctdomain.builtin.workday import account_row, require_day, require_read_model
from acctdomain.domain import events as ev
from acctdomain.domain.values import Sentiment, StakeholderRole
from acctdomain.errors import InvalidValue
from acctdomain.plugins import Projection, ReadModel, Rows

__all__ = [
    "DECIDING_ROLES",
    "NOT_MET_DAYS",
    "STAKEHOLDERS",
    "Gap",
    "StakeholderMap",
    "StakeholderView",
    "StakeholdersProjection",
    "stakeholder_map",
]

STAKEHOLDERS = "stakeholders"
NOT_MET_DAYS = 90
DECIDING_ROLES = (StakeholderRole.ECONOMIC_BUYER, StakeholderRole.DECISION_MAKER)
"""The roles whose people sign: they must be met regularly and must not be against us."""


class StakeholdersProjection(Projection):
    """Table ``stakeholders``: key = account id (hex), value = ``{"people": {stakeholder hex:
    {"name", "title", "role", "sentiment", "added_at", "updated_at", "removed_at",
    "last_contact_at"}}}``; roles and sentiments are the values of ``StakeholderRole`` and
    ``Sentiment``, times are effective times."""

    name = "stakeholders"
    tables = (STAKEHOLDERS,)
    event_types: ClassVar[tuple[type, ...]] = (
        ev.AccountOpened,
        ev.StakeholderAdded,
        ev.StakeholderUpdated,
        ev.StakeholderRemoved,
        ev.ContactLogged,
        ev.SubjectErased,
    )
    description = "One row per account: stakeholders with role, sentiment and last contact."
    # Rows are built fresh or changed through ``rows``, never kept nor shared between rows.
    cache_rows: ClassVar[bool] = True

    def account_share(self, account_id: UUID) -> dict[str, str]:
        """The account's row is under its hex (which has a fixed length)."""
        return {STAKEHOLDERS: account_id.hex}

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        if isinstance(event, ev.AccountOpened):
            rows.put(STAKEHOLDERS, key, {"people": {}})
            return
        if isinstance(event, ev.ContactLogged) and not event.stakeholder_ids:
            return  # nobody to mark as met: the row is not even read
        row = rows.get(STAKEHOLDERS, key)
        if row is None:  # an account whose opening this read model never saw
            return
        people: dict[str, dict[str, Any]] = row["people"]
        if isinstance(event, ev.SubjectErased):  # a forgotten person's name and title go
            person = people.get(event.subject_id.hex)
            if person is None:  # another kind of data subject (a survey respondent...)
                return
            person.update(name=ev.ERASED, title=ev.ERASED)
        elif isinstance(event, ev.StakeholderAdded):
            people[event.stakeholder_id.hex] = {
                "name": event.name,
                "title": event.title,
                "role": event.role.value,
                "sentiment": event.sentiment.value,
                "added_at": event.effective_at,
                "updated_at": None,
                "removed_at": None,
                "last_contact_at": None,
            }
        elif isinstance(event, ev.ContactLogged):
            changed = False
            for stakeholder_id in event.stakeholder_ids:
                person = people.get(stakeholder_id.hex)
                if person is not None:
                    last = person["last_contact_at"]
                    if last is None or event.effective_at > last:
                        person["last_contact_at"] = event.effective_at
                        changed = True
            if not changed:  # a backdated contact: nobody's last contact moved
                return
        else:
            person = people.get(event.stakeholder_id.hex)
            if person is None:  # cannot happen for events the aggregate accepted
                return
            if isinstance(event, ev.StakeholderUpdated):
                person.update(
                    title=event.title,
                    role=event.role.value,
                    sentiment=event.sentiment.value,
                    updated_at=event.effective_at,
                )
            else:
                person["removed_at"] = event.effective_at
        rows.put(STAKEHOLDERS, key, row)


# --- the view -----------------------------------------------------------------------------------


@attrs.frozen
class StakeholderView:
    """A person on the customer side, as last recorded."""

    stakeholder_id: UUID
    name: str
    title: str
    role: StakeholderRole
    sentiment: Sentiment
    added_at: datetime
    updated_at: datetime | None  # the last change of title, role or sentiment
    removed_at: datetime | None
    last_contact_at: datetime | None  # the latest contact that listed them (None: never met)
    days_since_contact: int | None  # whole days (UTC) from that contact to the day asked about


GapKind = Literal["no_champion", "no_economic_buyer", "not_met", "detractor"]


@attrs.frozen
class Gap:
    """Something missing or wrong on the stakeholder map; ``stakeholder_id`` names the person
    it is about (None for what nobody fills)."""

    kind: GapKind
    reason: str
    stakeholder_id: UUID | None = None


@attrs.frozen
class StakeholderMap:
    """An account's stakeholders and the gaps on ``today``."""

    account_id: UUID
    today: date
    not_met_days: int
    people: tuple[StakeholderView, ...]  # on the map: not removed
    former: tuple[StakeholderView, ...]  # removed
    gaps: tuple[Gap, ...]


def stakeholder_map(
    read_model: ReadModel, account_id: UUID, *, today: date, not_met_days: int = NOT_MET_DAYS
) -> StakeholderMap:
    """The stakeholder map of ``account_id`` from the ``stakeholders`` read model, with its
    gaps on ``today`` (a date; effective time, UTC).

    The map is the current one: the people not removed, with their role and sentiment as last
    recorded. An economic buyer or decision maker counts as met when their latest contact is at
    most ``not_met_days`` whole days before ``today`` (a contact dated after ``today`` counts
    as met). People come by name, then id; gaps in the order ``no_champion``,
    ``no_economic_buyer``, ``not_met`` (never met first, then the longest unmet), then
    ``detractor`` (by name). Raises ``InvalidValue`` naming ``read_model``, ``account_id``,
    ``today`` or ``not_met_days`` (an int >= 0), and ``AccountNotFound`` when the read model
    has no row for the account.
    """
    require_read_model(read_model)
    day = require_day("today", today)
    if isinstance(not_met_days, bool) or not isinstance(not_met_days, int) or not_met_days < 0:
        raise InvalidValue(
            "not_met_days", f"expected a whole number of days >= 0, got {not_met_days!r}"
        )
    row = account_row(read_model, "stakeholders", STAKEHOLDERS, account_id)
    everyone = sorted(
        (_view(UUID(hex_id), person, day) for hex_id, person in row["people"].items()),
        key=lambda p: (p.name, p.stakeholder_id.hex),
    )
    people = [p for p in everyone if p.removed_at is None]
    return StakeholderMap(
        account_id=account_id,
        today=day,
        not_met_days=not_met_days,
        people=tuple(people),
        former=tuple(p for p in everyone if p.removed_at is not None),
        gaps=tuple(_gaps(people, not_met_days)),
    )


def _view(stakeholder_id: UUID, person: dict[str, Any], day: date) -> StakeholderView:
    last = person["last_contact_at"]
    return StakeholderView(
        stakeholder_id=stakeholder_id,
        name=person["name"],
        title=person["title"],
        role=StakeholderRole(person["role"]),
        sentiment=Sentiment(person["sentiment"]),
        added_at=person["added_at"],
        updated_at=person["updated_at"],
        removed_at=person["removed_at"],
        last_contact_at=last,
        days_since_contact=None if last is None else (day - last.astimezone(UTC).date()).days,
    )


def _label(person: StakeholderView) -> str:
    role = person.role.value.replace("_", " ")
    return f"{person.name} ({role})"


def _gaps(people: list[StakeholderView], not_met_days: int) -> list[Gap]:
    gaps: list[Gap] = []
    champions = [p for p in people if p.role is StakeholderRole.CHAMPION]
    if not champions:
        gaps.append(Gap("no_champion", "no champion on the stakeholder map"))
    elif all(p.sentiment is Sentiment.NEGATIVE for p in champions):
        names = ", ".join(p.name for p in champions)
        gaps.append(Gap("no_champion", f"no champion: every champion is negative ({names})"))
    deciding = [p for p in people if p.role in DECIDING_ROLES]
    if not deciding:
        gaps.append(
            Gap("no_economic_buyer", "no economic buyer or decision maker on the stakeholder map")
        )
    unmet = [
        p for p in deciding if p.days_since_contact is None or p.days_since_contact > not_met_days
    ]
    unmet.sort(key=lambda p: (p.days_since_contact is not None, -(p.days_since_contact or 0)))
    for person in unmet:
        if person.days_since_contact is None:
            reason = f"{_label(person)} was never met"
        else:
            reason = (
                f"{_label(person)} was last met {person.days_since_contact} days ago "
                f"(more than {not_met_days})"
            )
        gaps.append(Gap("not_met", reason, person.stakeholder_id))
    for person in deciding:
        if person.sentiment is Sentiment.NEGATIVE:
            reason = f"{_label(person)} is negative about us"
            gaps.append(Gap("detractor", reason, person.stakeholder_id))
    return gaps
