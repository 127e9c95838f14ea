"""Service targets: how fast an issue must get its first response and its resolution, by
severity, and how fast a customer request must be answered.

The prioritised day ranks breaches of these targets, and the escalation policy escalates an
issue that is past its resolution target. Both take the targets as an argument, so a team sets
its own (:meth:`ServiceTargets.from_mapping` reads them from configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import attrs

from acctdomain.domain.values import IssueSeverity
from acctdomain.errors import InvalidValue

__all__ = ["DEFAULT_TARGETS", "Breach", "ServiceTargets"]

Stage = Literal["response", "resolution"]


def _check_by_severity(
    instance: object, attribute: attrs.Attribute[Mapping[IssueSeverity, timedelta]], value: object
) -> None:
    if not isinstance(value, Mapping) or set(value) != set(IssueSeverity):
        names = ", ".join(s.value for s in IssueSeverity)
        raise InvalidValue(attribute.name, f"expected a duration for each severity ({names})")
    for severity, limit in value.items():
        _check_duration(f"{attribute.name}.{severity}", limit)


def _check_duration(field: str, value: object) -> None:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidValue(field, f"expected a positive timedelta, got {value!r}")


def _check_request(instance: object, attribute: attrs.Attribute[timedelta], value: object) -> None:
    _check_duration(attribute.name, value)


@attrs.frozen
class Breach:
    """A target missed (or about to be): what, by how long, and the limit it had."""

    stage: Stage
    limit: timedelta
    overdue_by: timedelta  # > 0: past the limit by this much


@attrs.frozen
class ServiceTargets:
    """Limits from the moment an issue is raised (or a request received)."""

    response: Mapping[IssueSeverity, timedelta] = attrs.field(validator=_check_by_severity)
    resolution: Mapping[IssueSeverity, timedelta] = attrs.field(validator=_check_by_severity)
    request_answer: timedelta = attrs.field(validator=_check_request)

    def issue_breach(
        self,
        severity: IssueSeverity,
        raised_at: datetime,
        first_response_at: datetime | None,
        now: datetime,
    ) -> Breach | None:
        """The target an open issue misses at ``now``: resolution first (it is the later and
        graver one), else a first response still missing past its limit; None when on time."""
        age = now - raised_at
        limit = self.resolution[severity]
        if age > limit:
            return Breach("resolution", limit, age - limit)
        limit = self.response[severity]
        if first_response_at is None and age > limit:
            return Breach("response", limit, age - limit)
        return None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ServiceTargets:
        """Targets from configuration: ``{"response": {"critical": hours, ...},
        "resolution": {...}, "request_answer": hours}`` (hours as numbers); what is left out
        keeps its default. Unknown keys and bad values raise ``InvalidValue`` naming them."""
        if not isinstance(data, Mapping):
            raise InvalidValue("targets", f"expected a mapping, got {type(data).__name__}")
        unknown = set(data) - {"response", "resolution", "request_answer"}
        if unknown:
            raise InvalidValue("targets", f"unknown key(s): {', '.join(sorted(unknown))}")
        base = DEFAULT_TARGETS
        stages: dict[str, Mapping[IssueSeverity, timedelta]] = {}
        for stage in ("response", "resolution"):
            given = data.get(stage, {})
            if not isinstance(given, Mapping):
                raise InvalidValue(stage, "expected a mapping of severity to hours")
            limits = dict(getattr(base, stage))
            for name, hours in given.items():
                try:
                    severity = IssueSeverity(name)
                except ValueError:
                    raise InvalidValue(f"{stage}.{name}", "not an issue severity") from None
                limits[severity] = _hours(f"{stage}.{name}", hours)
            stages[stage] = limits
        answer = data.get("request_answer")
        request = base.request_answer if answer is None else _hours("request_answer", answer)
        return cls(stages["response"], stages["resolution"], request)


def _hours(field: str, value: object) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidValue(field, f"expected a number of hours > 0, got {value!r}")
    return timedelta(hours=value)


DEFAULT_TARGETS = ServiceTargets(
    response={
        IssueSeverity.CRITICAL: timedelta(hours=1),
        IssueSeverity.HIGH: timedelta(hours=4),
        IssueSeverity.MEDIUM: timedelta(days=1),
        IssueSeverity.LOW: timedelta(days=2),
    },
    resolution={
        IssueSeverity.CRITICAL: timedelta(days=1),
        IssueSeverity.HIGH: timedelta(days=3),
        IssueSeverity.MEDIUM: timedelta(days=10),
        IssueSeverity.LOW: timedelta(days=30),
    },
    request_answer=timedelta(days=2),
)
"""Common support targets (first response and resolution by severity; two days to answer)."""
