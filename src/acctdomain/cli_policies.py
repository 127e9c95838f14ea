"""``acctdomain policies run``: run every registered policy once against the store named by
``--db``: react to the events recorded since each policy's position, then issue what time
passing requires at ``--now`` (default: the current time).

The store options, errors and exit codes are those of ``acctdomain projections`` (a user
mistake: one ``error:`` line on stderr and exit code 2; a failure while working, or a policy
that stopped, exit code 1). docs/cli.md documents the command and its JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from acctdomain.cli_common import NaiveTime, parse_moment
from acctdomain.cli_projections import (
    FAILURE,
    AsJson,
    Db,
    _echo_json,
    _fail,
    _Plugins,
    _say,
    _session,
    _stdout,
)
from acctdomain.plugins import PluginHost
from acctdomain.projections.policies import PolicyRunner

__all__ = ["GROUP", "policies_app", "run_report"]

GROUP = "policies"


def policies_app(host: PluginHost | None = None) -> typer.Typer:
    """The ``policies`` command group, on the policies of ``host``'s plugins (default: a
    ``PluginHost()`` made when a command runs)."""
    group = typer.Typer(
        name=GROUP,
        help="Policies: automatic reactions to events and to time passing.",
        no_args_is_help=True,
        context_settings={"obj": _Plugins(host)},
    )
    group.command("run")(run)
    return group


def _now(text: str | None) -> datetime:
    """``--now``: a time with its offset, or a date (its start, UTC); default: now."""
    if text is None:
        return datetime.now(UTC)
    try:
        moment = parse_moment(text)
    except NaiveTime:
        _fail(f"--now: {text!r} has no offset from UTC (add +00:00 or Z)")
    except ValueError:
        _fail(
            f"--now: expected a date (YYYY-MM-DD) or a time with its offset "
            f"(2026-03-31T18:00:00+00:00), got {text!r}"
        )
    if isinstance(moment, datetime):
        return moment
    return datetime.combine(moment, datetime.min.time(), UTC)


def run_report(runner: PolicyRunner, where: str, now: datetime, read: int) -> dict[str, Any]:
    """What ``acctdomain policies run --json`` prints; every key is always present."""
    reactions = [reaction.as_dict() for reaction in runner.reactions]
    return {
        "db": where,
        "now": now.isoformat(),
        "policies": runner.names,
        "notifications_read": read,
        "issued": sum(r["outcome"] == "issued" for r in reactions),
        "done_before": sum(r["outcome"] == "done_before" for r in reactions),
        "refused": sum(r["outcome"] == "refused" for r in reactions),
        "reactions": reactions,
        "refusals": [
            {
                "policy": refusal.policy,
                "command": refusal.command,
                "account_id": str(refusal.account_id),
                "causation_id": str(refusal.event_id),
                "position": refusal.position,
                "error": refusal.error,
            }
            for refusal in runner.refusals
        ],
        "failures": {
            name: {"position": failure.position, "error": failure.error}
            for name, failure in sorted(runner.failures().items())
        },
    }


def run(
    ctx: typer.Context,
    db: Db = None,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            metavar="TIME",
            help="The time the clock-driven policies check against: an ISO 8601 time with "
            "its offset, or a date (its start, UTC). Default: now.",
            show_default=False,
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Run every policy once: react to new events, then to time passing."""
    moment = _now(now)
    with (
        _session(ctx, db) as (service, where),
        PolicyRunner(service, service.plugins.policies().values()) as runner,
    ):
        read = runner.run(now=moment)
        report = run_report(runner, where, moment, read)
    if as_json:
        _echo_json(report)
    else:
        _print(report)
    if report["failures"]:
        raise typer.Exit(FAILURE)


def _print(report: dict[str, Any]) -> None:
    _stdout().print(
        f"Policies run at {report['now']} on {report['db']}: "
        f"{report['notifications_read']} notifications read, {report['issued']} reactions "
        f"issued, {report['done_before']} done before, {report['refused']} refused"
    )
    if report["reactions"]:
        table = Table(title="Reactions", title_justify="left")
        for column in ("policy", "command", "account", "cause", "outcome"):
            table.add_column(column)
        for reaction in report["reactions"]:
            table.add_row(
                reaction["policy"],
                reaction["command"],
                reaction["account_id"],
                reaction["causation_id"],
                reaction["outcome"],
            )
        _stdout().print(table)
    if not report["policies"]:
        _say("no policy is registered (the built-in ones are enabled in settings)")
    for refusal in report["refusals"]:
        _say(f"refused: {refusal['policy']}: {refusal['command']}: {refusal['error']}")
    for name, failure in report["failures"].items():
        _say(f"stopped: {name} at notification {failure['position']}: {failure['error']}")
