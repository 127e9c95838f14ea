"""The ``attention`` read model: what in an account waits for its account manager.

One row per account (key: the account id's hex) in table ``attention``:

- ``issues``: the open issues, by issue hex: severity, when raised, first responded (None: not
  yet) and the teams it was escalated to;
- ``requests``: the unanswered customer requests, by request hex: channel and when received;
- ``surveys``: the latest answers per survey kind (``nps``, ``csat``, ``ces``), at most
  :data:`KEPT_ANSWERS` each, oldest first, as ``[effective, score]``;
- ``detractors``: the unhappy answers (NPS 0-6, CSAT 1-2) that no contact has followed yet,
  as ``[effective, kind, score]``, oldest first, at most :data:`KEPT_DETRACTORS` (the
  longest waiting): a contact logged on the account at or after the answer's effective time
  is its follow-up;
- ``last_contact``: the latest effective time of a contact (None: never).

Times are effective times as microseconds since 1970 UTC (see :func:`kpi_facts.micros`). The
row holds what is open and a bounded tail of answers, so it never grows with the history.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from acctdomain.builtin.kpi_facts import SURVEY_KINDS, micros
from acctdomain.domain import events as ev
from acctdomain.domain.values import CsatScore, NpsScore
from acctdomain.plugins import Projection, Rows

__all__ = ["ATTENTION", "KEPT_ANSWERS", "KEPT_DETRACTORS", "AttentionProjection", "is_unhappy"]

ATTENTION = "attention"
KEPT_ANSWERS = 6
"""Answers kept per survey kind: enough for a trend (the last three against the three before)."""
KEPT_DETRACTORS = 32
"""Unhappy answers kept waiting for a follow-up: the longest waiting ones (the day's volume
factor stops growing at 16), so an account nobody contacts does not grow its row forever."""


def is_unhappy(score: object) -> bool:
    """An NPS detractor (0-6) or a CSAT answer of 1 or 2."""
    if isinstance(score, NpsScore):
        return score.value <= 6
    return isinstance(score, CsatScore) and score.value <= 2


class AttentionProjection(Projection):
    """Table ``attention``: open issues and requests, recent survey answers, detractors."""

    name = "attention"
    tables = (ATTENTION,)
    event_types = (
        ev.AccountOpened,
        ev.IssueRaised,
        ev.IssueResponded,
        ev.IssueEscalated,
        ev.IssueResolved,
        ev.RequestReceived,
        ev.RequestAnswered,
        ev.FeedbackRecorded,
        ev.ContactLogged,
    )
    description = "One row per account: open issues and requests, survey answers, detractors."
    # Not cached between rebuild batches: a long history fills the row up to its bounds, and
    # 10,000 decoded rows kept for the whole rebuild made its memory grow with the events.

    def account_share(self, account_id: UUID) -> dict[str, str]:
        """The account's row is under its hex (which has a fixed length)."""
        return {ATTENTION: account_id.hex}

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        if isinstance(event, ev.AccountOpened):
            rows.put(
                ATTENTION,
                key,
                {
                    "issues": {},
                    "requests": {},
                    "surveys": {},
                    "detractors": [],
                    "last_contact": None,
                },
            )
            return
        row = rows.get(ATTENTION, key)
        if row is None:  # an account whose opening this read model never saw
            return
        if _change(event, row):
            rows.put(ATTENTION, key, row)


def _change(event: Any, row: dict[str, Any]) -> bool:
    """Change ``row`` as ``event`` says; False when nothing changed (the row is not written)."""
    at = micros(event.effective_at)
    issues: dict[str, dict[str, Any]] = row["issues"]
    if isinstance(event, ev.IssueRaised):
        issues[event.issue_id.hex] = {
            "severity": event.severity.value,
            "raised": at,
            "responded": None,
            "escalated": [],
        }
        return True
    if isinstance(event, ev.IssueResponded | ev.IssueEscalated | ev.IssueResolved):
        issue = issues.get(event.issue_id.hex)
        if issue is None:  # resolved already
            return False
        if isinstance(event, ev.IssueResolved):
            del issues[event.issue_id.hex]
        elif isinstance(event, ev.IssueEscalated):
            issue["escalated"].append(event.to_team)
        elif issue["responded"] is None or at < issue["responded"]:
            issue["responded"] = at
        return True
    if isinstance(event, ev.RequestReceived):
        row["requests"][event.request_id.hex] = {"channel": event.channel.value, "received": at}
        return True
    if isinstance(event, ev.RequestAnswered):
        return row["requests"].pop(event.request_id.hex, None) is not None
    if isinstance(event, ev.FeedbackRecorded):
        kind = SURVEY_KINDS[type(event.score)]
        answers = row["surveys"].setdefault(kind, [])
        answers.append([at, event.score.value])
        answers.sort(key=lambda answer: answer[0])  # a backdated answer takes its place
        del answers[:-KEPT_ANSWERS]
        last = row["last_contact"]
        if is_unhappy(event.score) and (last is None or last < at):
            waiting = row["detractors"]
            waiting.append([at, kind, event.score.value])
            waiting.sort(key=lambda answer: answer[0])  # a backdated answer takes its place
            del waiting[KEPT_DETRACTORS:]
        return True
    if isinstance(event, ev.ContactLogged):
        if row["last_contact"] is None or at > row["last_contact"]:
            row["last_contact"] = at
        row["detractors"] = [d for d in row["detractors"] if d[0] > at]
        return True
    return False
