"""Built-in plugin ``builtin.policies``: the account manager's automatic follow-ups.

Three policies, registered through ``acctdomain_register_policies`` like any plugin's, each
switched on in :class:`PolicySettings` (``enabled``; none by default, because each appends
events to customers' histories on its own):

- ``follow_up_detractors`` (on events): an NPS answer of 0 to 6 adds a tactic "Follow up on
  NPS <score>" under the goal "Keep the relationship healthy", strategy "Follow up on
  feedback", due ``follow_up_days`` after the answer. Cause: the ``FeedbackRecorded`` event.
- ``escalate_overdue_issues`` (on time): an open issue past its target
  (:meth:`~acctdomain.builtin.targets.ServiceTargets.issue_breach`: its first response or its
  resolution, by severity) is escalated to the team ``escalate_to`` names for that target,
  unless it was escalated to that team already. Cause: the ``IssueRaised`` event.
- ``prepare_renewals`` (on time): a renewal due within ``renewal_horizon_days`` (90) adds a
  tactic "Prepare the renewal due on <date>" under the goal "Renew on time", strategy "Prepare
  the renewal", due ``prepare_days_before`` the renewal, unless that renewal has a tactic
  under that strategy already. The renewal date is the one the account's latest
  ``RenewalDue``, ``ContractStarted``, ``Renewed`` or ``Reactivated`` event set (renewing
  moves it a term on, churning removes it); that event is the cause.

Tactics are owned by the account's manager (or ``owner``). Each policy creates its goal and
strategy once per account, with ids derived from the policy and the account; an account
manager who achieves or abandons that goal switches the policy off for the account.

The clock-driven policies read the ``policy_watch`` read model (registered here when one of
them is enabled): the open issues with their severity, times, escalations and the id of the
event that raised them; and each account's renewal date with the id of the event that set it.
Every reaction has an idempotency key naming what it is about (the feedback event; the
account, issue and missed target; the account and renewal date), so it is recorded once,
whatever the number of runs, crashes, resets or rebuilds.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID, uuid5

import attrs

from acctdomain.builtin.targets import DEFAULT_TARGETS, ServiceTargets
from acctdomain.domain import events as ev
from acctdomain.domain.records import GoalStatus
from acctdomain.domain.state import AccountState
from acctdomain.domain.values import AccountStatus, IssueSeverity, NpsScore
from acctdomain.errors import AccountNotFound, InvalidValue
from acctdomain.plugins import Projection, Rows, hookimpl
from acctdomain.plugins.types import Policy, PolicyContext, Reaction

__all__ = [
    "ESCALATE_OVERDUE_ISSUES",
    "FOLLOW_UP_DETRACTORS",
    "POLICY_NAMES",
    "PREPARE_RENEWALS",
    "SETTINGS_ENV_VAR",
    "WATCH",
    "PoliciesPlugin",
    "PolicySettings",
    "PolicyWatchProjection",
    "acctdomain_register_policies",
    "acctdomain_register_projections",
    "goal_id_for",
    "strategy_id_for",
]

FOLLOW_UP_DETRACTORS = "follow_up_detractors"
ESCALATE_OVERDUE_ISSUES = "escalate_overdue_issues"
PREPARE_RENEWALS = "prepare_renewals"
POLICY_NAMES = (FOLLOW_UP_DETRACTORS, ESCALATE_OVERDUE_ISSUES, PREPARE_RENEWALS)
"""The built-in policies, in the order they run."""

WATCH = "policy_watch"
"""The read model of the clock-driven policies."""

SETTINGS_ENV_VAR = "ACCTDOMAIN_POLICY_SETTINGS"
"""The environment variable naming the TOML file of the built-in policies' settings."""

STAGES = ("response", "resolution")

# Goal and strategy of each policy's tactics: (goal title, goal measure, strategy).
PLANS: dict[str, tuple[str, str, str]] = {
    FOLLOW_UP_DETRACTORS: (
        "Keep the relationship healthy",
        "every detractor answer followed up",
        "Follow up on feedback",
    ),
    PREPARE_RENEWALS: (
        "Renew on time",
        "every renewal prepared before it is due",
        "Prepare the renewal",
    ),
}

_NAMESPACE = UUID("6f1d2a4e-8c3b-5e7f-9a0d-1b2c3d4e5f60")
DETRACTOR_MAX = 6
"""The highest NPS answer that makes a detractor (0 to 6, as NPS defines)."""


def goal_id_for(policy: str, account_id: UUID) -> UUID:
    """The id of the goal ``policy`` keeps its tactics under in the account's plan."""
    return uuid5(_NAMESPACE, f"{policy}:{account_id.hex}:goal")


def strategy_id_for(policy: str, account_id: UUID) -> UUID:
    """The id of the strategy ``policy`` adds its tactics to in the account's plan."""
    return uuid5(_NAMESPACE, f"{policy}:{account_id.hex}:strategy")


# --- settings ------------------------------------------------------------------------------------


def _days(field: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidValue(field, f"expected a whole number of days >= {minimum}, got {value!r}")
    return value


def _check_enabled(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, frozenset) or not value <= set(POLICY_NAMES):
        raise InvalidValue("enabled", f"expected a set of {', '.join(POLICY_NAMES)}, got {value!r}")


def _check_days(minimum: int) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        _days(attribute.name, value, minimum)

    return check


def _check_targets(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, ServiceTargets):
        raise InvalidValue("targets", f"expected ServiceTargets, got {type(value).__name__}")


def _check_teams(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping) or set(value) != set(STAGES):
        raise InvalidValue("escalate_to", f"expected a team for each of {', '.join(STAGES)}")
    for stage, team in value.items():
        if not isinstance(team, str) or not team.strip():
            raise InvalidValue(f"escalate_to.{stage}", f"expected a team name, got {team!r}")


def _check_owner(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise InvalidValue("owner", f"expected a name or None, got {value!r}")


@attrs.frozen
class PolicySettings:
    """How the built-in policies behave.

    ``enabled``: the policies that run (names from :data:`POLICY_NAMES`; default none).
    ``renewal_horizon_days``: a renewal due within this many days gets its preparation
    tactic (90). ``prepare_days_before``: that tactic is due this many days before the renewal
    (60), but never before the day the renewal date was set. ``follow_up_days``: a detractor's
    follow-up tactic is due this many days after the answer (7). ``targets``: response and
    resolution limits by severity (:data:`~acctdomain.builtin.targets.DEFAULT_TARGETS`).
    ``escalate_to``: the team an issue goes to when it misses its ``response`` target
    (``support``) and its ``resolution`` target (``engineering``). ``owner``: who owns the
    tactics the policies add (None: the account's manager).
    """

    enabled: frozenset[str] = attrs.field(default=frozenset(), validator=_check_enabled)
    renewal_horizon_days: int = attrs.field(default=90, validator=_check_days(1))
    prepare_days_before: int = attrs.field(default=60, validator=_check_days(0))
    follow_up_days: int = attrs.field(default=7, validator=_check_days(0))
    targets: ServiceTargets = attrs.field(default=DEFAULT_TARGETS, validator=_check_targets)
    escalate_to: Mapping[str, str] = attrs.field(
        factory=lambda: {"response": "support", "resolution": "engineering"},
        validator=_check_teams,
    )
    owner: str | None = attrs.field(default=None, validator=_check_owner)

    @classmethod
    def all_enabled(cls, **settings: Any) -> PolicySettings:
        """Settings with every built-in policy enabled (and ``settings`` as given)."""
        return cls(enabled=frozenset(POLICY_NAMES), **settings)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PolicySettings:
        """Settings from configuration (the TOML file's table): ``enabled`` (a list of names,
        or ``"all"``), ``renewal_horizon_days``, ``prepare_days_before``, ``follow_up_days``,
        ``owner``, ``escalate_to`` (``{response = team, resolution = team}``, either may be
        left out) and ``targets`` (hours, as
        :meth:`~acctdomain.builtin.targets.ServiceTargets.from_mapping` reads them). What is
        left out keeps its default; unknown keys and bad values raise ``InvalidValue``."""
        if not isinstance(data, Mapping):
            raise InvalidValue("policy settings", f"expected a table, got {type(data).__name__}")
        known = {field.name for field in attrs.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidValue("policy settings", f"unknown key(s): {', '.join(sorted(unknown))}")
        given: dict[str, Any] = dict(data)
        if "enabled" in given:
            enabled = given["enabled"]
            if enabled == "all":
                enabled = POLICY_NAMES
            if not isinstance(enabled, list | tuple) or not all(
                isinstance(name, str) for name in enabled
            ):
                raise InvalidValue("enabled", f'expected a list of names or "all", got {enabled!r}')
            unknown_names = set(enabled) - set(POLICY_NAMES)
            if unknown_names:
                raise InvalidValue(
                    "enabled",
                    f"no built-in policy named {', '.join(sorted(unknown_names))} "
                    f"(known: {', '.join(POLICY_NAMES)})",
                )
            given["enabled"] = frozenset(enabled)
        if "escalate_to" in given:
            teams = given["escalate_to"]
            if not isinstance(teams, Mapping) or not set(teams) <= set(STAGES):
                raise InvalidValue(
                    "escalate_to", f"expected a table of {' and '.join(STAGES)}, got {teams!r}"
                )
            given["escalate_to"] = {**cls().escalate_to, **teams}
        if "targets" in given:
            given["targets"] = ServiceTargets.from_mapping(given["targets"])
        return cls(**given)

    @classmethod
    def from_toml(cls, path: str | Path) -> PolicySettings:
        """Settings from a TOML file (see :meth:`from_mapping`)."""
        try:
            with open(path, "rb") as file:
                data = tomllib.load(file)
        except OSError as error:
            raise InvalidValue("policy settings", f"cannot read {path}: {error}") from None
        except tomllib.TOMLDecodeError as error:
            raise InvalidValue("policy settings", f"{path} is not TOML: {error}") from None
        return cls.from_mapping(data)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> PolicySettings:
        """The file named by ``ACCTDOMAIN_POLICY_SETTINGS``, else the defaults."""
        path = (os.environ if env is None else env).get(SETTINGS_ENV_VAR)
        return cls.from_toml(path) if path else cls()


# --- the read model ----------------------------------------------------------------------------


ISSUES = "issues"
RENEWALS = "renewals"


class PolicyWatchProjection(Projection):
    """Tables ``issues`` (key ``<account hex>:<issue hex>``: each open issue's ``account_id``,
    ``issue_id``, ``severity``, ``raised_at``, ``first_response_at``, ``escalated_to`` (the
    teams), ``cause`` (the IssueRaised event's id) and ``correlation_id``; removed when
    resolved) and ``renewals`` (key ``<account hex>``: ``account_id``, ``due_on``, ``cause``
    (the id of the event that set that date), ``correlation_id``, ``set_on`` (that event's
    effective day) and ``prepared_for`` (the renewal date that has a tactic under
    ``prepare_renewals``'s strategy); removed when the account churns). Times are effective
    times."""

    name = WATCH
    tables = (ISSUES, RENEWALS)
    event_types: ClassVar[tuple[type, ...]] = (
        ev.IssueRaised,
        ev.IssueResponded,
        ev.IssueEscalated,
        ev.IssueResolved,
        ev.ContractStarted,
        ev.Renewed,
        ev.Reactivated,
        ev.RenewalDue,
        ev.Churned,
        ev.TacticAdded,
    )
    description = "Open issues and renewal dates, with their causes, for the built-in policies."

    def account_share(self, account_id: UUID) -> dict[str, str]:
        """Every row's key starts with the account's hex (which has a fixed length)."""
        return {ISSUES: account_id.hex, RENEWALS: account_id.hex}

    def apply(self, event: Any, rows: Rows) -> None:
        account = event.originator_id
        if isinstance(event, ev.IssueRaised | ev.IssueResponded | ev.IssueEscalated):
            self._issue(event, rows)
        elif isinstance(event, ev.IssueResolved):
            rows.delete(ISSUES, f"{account.hex}:{event.issue_id.hex}")
        elif isinstance(event, ev.Churned):
            rows.delete(RENEWALS, account.hex)
        elif isinstance(event, ev.TacticAdded):
            row = rows.get(RENEWALS, account.hex)
            if row is not None and event.strategy_id == strategy_id_for(PREPARE_RENEWALS, account):
                rows.put(RENEWALS, account.hex, {**row, "prepared_for": row["due_on"]})
        else:
            due_on = event.due_on if isinstance(event, ev.RenewalDue) else event.term_end
            row = rows.get(RENEWALS, account.hex)
            rows.put(
                RENEWALS,
                account.hex,
                {
                    "account_id": account,
                    "due_on": due_on,
                    "cause": event.id,
                    "correlation_id": event.correlation_id,
                    "set_on": event.effective_at.astimezone(UTC).date(),
                    "prepared_for": None if row is None else row["prepared_for"],
                },
            )

    @staticmethod
    def _issue(event: Any, rows: Rows) -> None:
        key = f"{event.originator_id.hex}:{event.issue_id.hex}"
        if isinstance(event, ev.IssueRaised):
            rows.put(
                ISSUES,
                key,
                {
                    "account_id": event.originator_id,
                    "issue_id": event.issue_id,
                    "severity": event.severity.value,
                    "raised_at": event.effective_at,
                    "first_response_at": None,
                    "escalated_to": [],
                    "cause": event.id,
                    "correlation_id": event.correlation_id,
                },
            )
            return
        row = rows.get(ISSUES, key)
        if row is None:  # cannot happen for events the aggregate accepted
            return
        if isinstance(event, ev.IssueResponded):
            if row["first_response_at"] is None:
                row["first_response_at"] = event.effective_at
        elif event.to_team not in row["escalated_to"]:
            row["escalated_to"] = [*row["escalated_to"], event.to_team]
        rows.put(ISSUES, key, row)


# --- the policies --------------------------------------------------------------------------------


def _plan(
    policy: str, account: AccountState, cause: UUID, correlation_id: UUID | None
) -> list[Reaction] | None:
    """The reactions that give ``policy`` its goal and strategy in the account's plan (none
    when both exist); None when the goal was achieved or abandoned: the policy is off there."""
    account_id = account.account_id
    goal_id, strategy_id = goal_id_for(policy, account_id), strategy_id_for(policy, account_id)
    title, measure, strategy = PLANS[policy]
    reactions = []
    goal = next((g for g in account.goals if g.goal_id == goal_id), None)
    if goal is None:
        reactions.append(
            Reaction(
                "set_goal",
                account_id,
                {"goal_id": goal_id, "title": title, "measure": measure},
                key=f"{account_id.hex}:goal",
                cause=cause,
                correlation_id=correlation_id,
            )
        )
    elif goal.status is not GoalStatus.OPEN:
        return None
    if all(s.strategy_id != strategy_id for s in account.strategies):
        reactions.append(
            Reaction(
                "add_strategy",
                account_id,
                {"strategy_id": strategy_id, "goal_id": goal_id, "description": strategy},
                key=f"{account_id.hex}:strategy",
                cause=cause,
                correlation_id=correlation_id,
            )
        )
    return reactions


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _duration(limit: timedelta) -> str:
    hours = limit.total_seconds() / 3600
    if hours % 24 == 0:
        days = int(hours // 24)
        return f"{days} day" if days == 1 else f"{days} days"
    return f"{hours:g} hours" if hours != 1 else "1 hour"


def _account(context: PolicyContext, account_id: UUID) -> AccountState | None:
    try:
        return context.account(account_id)
    except AccountNotFound:
        return None


@attrs.frozen
class BuiltinPolicies:
    """The built-in policies under one set of settings."""

    settings: PolicySettings

    def policies(self) -> list[Policy]:
        """The enabled policies."""
        every = {
            FOLLOW_UP_DETRACTORS: Policy(
                FOLLOW_UP_DETRACTORS,
                (ev.FeedbackRecorded,),
                self.follow_up_detractor,
                description="A detractor NPS answer gets a follow-up tactic.",
            ),
            ESCALATE_OVERDUE_ISSUES: Policy(
                ESCALATE_OVERDUE_ISSUES,
                (),
                None,
                description="An issue past its response or resolution target is escalated.",
                due=self.escalate_overdue_issues,
            ),
            PREPARE_RENEWALS: Policy(
                PREPARE_RENEWALS,
                (),
                None,
                description="A renewal due within the horizon gets a preparation tactic.",
                due=self.prepare_renewals,
            ),
        }
        return [every[name] for name in POLICY_NAMES if name in self.settings.enabled]

    def _owner(self, account: AccountState) -> str:
        return self.settings.owner or account.manager

    def follow_up_detractor(
        self, event: ev.FeedbackRecorded, context: PolicyContext
    ) -> list[Reaction]:
        """Reactions to one survey answer: a follow-up tactic for a detractor."""
        score = event.score
        if not isinstance(score, NpsScore) or score.value > DETRACTOR_MAX:
            return []
        account = _account(context, event.originator_id)
        if account is None:
            return []
        reactions = _plan(FOLLOW_UP_DETRACTORS, account, event.id, event.correlation_id)
        if reactions is None:
            return []
        who = f" from {event.respondent}" if event.respondent.strip() else ""
        arguments = {
            "strategy_id": strategy_id_for(FOLLOW_UP_DETRACTORS, account.account_id),
            "description": f"Follow up on NPS {score.value}{who}",
            "owner": self._owner(account),
            "due_on": _day(event.effective_at) + timedelta(days=self.settings.follow_up_days),
        }
        tactic = Reaction("add_tactic", account.account_id, arguments, key=f"{event.id.hex}:tactic")
        return [*reactions, tactic]

    def escalate_overdue_issues(self, context: PolicyContext) -> Iterator[Reaction]:
        """The escalations due at ``context.now``: one per open issue and missed target."""
        targets, teams = self.settings.targets, self.settings.escalate_to
        for _, row in context.read_model(WATCH).scan(ISSUES):
            severity = IssueSeverity(row["severity"])
            breach = targets.issue_breach(
                severity, row["raised_at"], row["first_response_at"], context.now
            )
            if breach is None:
                continue
            team = teams[breach.stage]
            if team in row["escalated_to"]:
                continue
            account_id, issue_id = row["account_id"], row["issue_id"]
            reason = (
                f"past its {breach.stage} target of {_duration(breach.limit)} "
                f"for a {severity.value} issue"
            )
            yield Reaction(
                "escalate_issue",
                account_id,
                {"issue_id": issue_id, "to_team": team, "reason": reason},
                key=f"{account_id.hex}:{issue_id.hex}:{breach.stage}",
                cause=row["cause"],
                correlation_id=row["correlation_id"],
            )

    def prepare_renewals(self, context: PolicyContext) -> Iterator[Reaction]:
        """The preparation tactics due at ``context.now``: one per account and renewal date."""
        today = _day(context.now)
        horizon = today + timedelta(days=self.settings.renewal_horizon_days)
        for _, row in context.read_model(WATCH).scan(RENEWALS):
            due_on: date = row["due_on"]
            if not today <= due_on <= horizon or row["prepared_for"] == due_on:
                continue
            account = _account(context, row["account_id"])
            if account is None or account.status is AccountStatus.CHURNED:
                continue
            cause, correlation_id = row["cause"], row["correlation_id"]
            reactions = _plan(PREPARE_RENEWALS, account, cause, correlation_id)
            if reactions is None:
                continue
            prepare_by = max(
                due_on - timedelta(days=self.settings.prepare_days_before), row["set_on"]
            )
            arguments = {
                "strategy_id": strategy_id_for(PREPARE_RENEWALS, account.account_id),
                "description": f"Prepare the renewal due on {due_on.isoformat()}",
                "owner": self._owner(account),
                "due_on": prepare_by,
            }
            yield from reactions
            yield Reaction(
                "add_tactic",
                account.account_id,
                arguments,
                key=f"{account.account_id.hex}:{due_on.isoformat()}",
                cause=cause,
                correlation_id=correlation_id,
            )


# --- the plugin ---------------------------------------------------------------------------------


class PoliciesPlugin:
    """The built-in policies as a plugin, under ``settings`` (default: read from
    ``ACCTDOMAIN_POLICY_SETTINGS`` when the hooks are called). To configure them in code,
    block ``builtin.policies`` and register ``PoliciesPlugin(PolicySettings(...))``."""

    def __init__(self, settings: PolicySettings | None = None) -> None:
        if settings is not None and not isinstance(settings, PolicySettings):
            raise InvalidValue("settings", f"expected PolicySettings, got {settings!r}")
        self.settings = settings

    def _settings(self) -> PolicySettings:
        return self.settings if self.settings is not None else PolicySettings.from_environment()

    @hookimpl
    def acctdomain_register_projections(self, register: Callable[[Projection], None]) -> None:
        """Register ``policy_watch`` when a clock-driven policy is enabled."""
        if self._settings().enabled & {ESCALATE_OVERDUE_ISSUES, PREPARE_RENEWALS}:
            register(PolicyWatchProjection())

    @hookimpl
    def acctdomain_register_policies(self, register: Callable[[Policy], None]) -> None:
        """Register the enabled built-in policies."""
        for policy in BuiltinPolicies(self._settings()).policies():
            register(policy)


_DEFAULT = PoliciesPlugin()


@hookimpl
def acctdomain_register_projections(register: Callable[[Projection], None]) -> None:
    """Register ``policy_watch`` when the settings enable a clock-driven policy."""
    _DEFAULT.acctdomain_register_projections(register)


@hookimpl
def acctdomain_register_policies(register: Callable[[Policy], None]) -> None:
    """Register the built-in policies the settings enable (``ACCTDOMAIN_POLICY_SETTINGS``)."""
    _DEFAULT.acctdomain_register_policies(register)
