"""``acctdomain projections``: where each read model is, catch-up, rebuild, pause and resume,
and the dead letters of projections that park the events they fail on.

Every command opens the store named by ``--db`` (an SQLite file or a ``postgresql://`` URL;
default ``$ACCTDOMAIN_STORE``, else ``acctdomain.db``) with the command line's plugins, so plugin
projections are included. A user mistake ends with one line on stderr and exit code 2; a
failure while working, or a projection that failed, with exit code 1; a rebuild cancelled with
Ctrl-C with exit code 130. docs/cli.md documents every command and its JSON.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn, cast
from uuid import UUID

import attrs
import typer
from eventsourcing.persistence import PersistenceError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from acctdomain.application import AccountService, StoreSpec, parse_store
from acctdomain.errors import AcctDomainError, InvalidValue
from acctdomain.plugins import PluginHost
from acctdomain.plugins.types import FailurePolicy, Retry, Stop
from acctdomain.projections import (
    ParkedEvent,
    Partition,
    PolicyRunner,
    ProjectionRunner,
    ProjectionStatus,
    StoreFollower,
    keeps_accounts_apart,
)

__all__ = ["GROUP", "progress_bars", "projections_app"]

GROUP = "projections"
USAGE_ERROR = 2
FAILURE = 1
CANCELLED = 130
"""Exit code of a rebuild cancelled with Ctrl-C (128 + SIGINT, as shells report it)."""


def _store_errors() -> tuple[type[Exception], ...]:
    """What the stores raise when they cannot be read or written (psycopg is optional)."""
    errors: tuple[type[Exception], ...] = (OSError, sqlite3.Error, PersistenceError)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the postgres extra is not installed
        return errors
    return (*errors, psycopg.Error)


STORE_ERRORS = _store_errors()
FAILURES: tuple[type[Exception], ...] = (AcctDomainError, *STORE_ERRORS)

# --- options shared by the commands -----------------------------------------------------------

Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLite file or postgresql:// URL (default: $ACCTDOMAIN_STORE, else acctdomain.db).",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Name = Annotated[str, typer.Argument(help="The projection's name.", show_default=False)]
Account = Annotated[
    str | None, typer.Option("--account", help="Only this account (its id).", show_default=False)
]
Position = Annotated[
    str | None,
    typer.Option("--position", help="Only the dead letter at this position.", show_default=False),
]


def projections_app(host: PluginHost | None = None) -> typer.Typer:
    """The ``projections`` command group, on the projections of ``host``'s plugins (default:
    a ``PluginHost()`` made when a command runs)."""
    group = typer.Typer(
        name=GROUP,
        help="Read models: status, catch-up, rebuild, pause and resume, dead letters.",
        no_args_is_help=True,
        context_settings={"obj": _Plugins(host)},
    )
    group.command("status")(status)
    group.command("catch-up")(catch_up)
    group.command("follow")(follow)
    group.command("rebuild")(rebuild)
    group.command("pause")(pause)
    group.command("resume")(resume)
    letters = typer.Typer(
        help="Events projections parked: list, show, replay, purge.", no_args_is_help=True
    )
    letters.command("list")(list_letters)
    letters.command("show")(show_letter)
    letters.command("replay")(replay_letters)
    letters.command("purge")(purge_letters)
    group.add_typer(letters, name="dead-letters")
    return group


@attrs.define
class _Plugins:
    """The plugin host of the command line, made on first use when none was given."""

    host: PluginHost | None = None

    def get(self) -> PluginHost:
        if self.host is None:
            self.host = PluginHost()
        return self.host


# --- errors, the store, output ----------------------------------------------------------------


def _fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    """End the command with one line on stderr."""
    _say(f"error: {message}")
    raise typer.Exit(code)


def _say(message: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(message, markup=False)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _store(db: str | None) -> StoreSpec:
    try:
        spec = parse_store(db)
    except AcctDomainError as error:
        _fail(f"--db: {_one_line(error)}")
    if spec.kind == "memory":
        _fail("--db: an in-memory store is empty in a new process; give a file or a URL")
    if spec.kind == "sqlite" and not Path(spec.path).is_file():
        _fail(f"--db: there is no SQLite store at {spec.path}")
    return spec


def _where(spec: StoreSpec) -> str:
    """The store's location for output (a URL without its password)."""
    if spec.kind != "postgres":
        return spec.path
    schema = f"?schema={spec.schema}" if spec.schema else ""
    return f"postgresql://{spec.user}@{spec.host}:{spec.port}/{spec.dbname}{schema}"


@contextmanager
def _session(ctx: typer.Context, db: str | None) -> Iterator[tuple[AccountService, str]]:
    """The service on ``--db`` with the command line's plugins, closed afterwards; refusals
    of the runner end with exit code 2, store failures with 1."""
    spec = _store(db)
    where = _where(spec)
    with _quiet_engine():
        try:
            service = AccountService(spec, plugins=ctx.ensure_object(_Plugins).get())
        except FAILURES as error:
            _fail(f"--db {where}: cannot open the store: {_one_line(error)}")
        try:
            yield service, where
        except InvalidValue as error:
            _fail(error.reason)
        except FAILURES as error:
            _fail(f"{where}: {_one_line(error)}", code=FAILURE)
        finally:
            service.close()


@contextmanager
def _quiet_engine() -> Iterator[None]:
    """Keep the engine's log records (parked events, failures with their tracebacks) out of
    the output: the command reports them itself, in its own words."""
    logger = logging.getLogger("acctdomain")
    handler, propagate = logging.NullHandler(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _known(runner: ProjectionRunner, name: str) -> str:
    if name not in runner.names:
        _fail(f"no projection named {name!r} (known: {', '.join(runner.names) or 'none'})")
    return name


def _account(service: AccountService, text: str | None) -> UUID | None:
    """The account ``--account`` names; it must have events in the store."""
    if text is None:
        return None
    try:
        account_id = UUID(text)
    except ValueError:
        _fail(f"--account {text!r} is not an account id (a UUID)")
    if not service.recorder.select_events(account_id, limit=1):
        _fail(f"--account {account_id}: the store has no events of this account")
    return account_id


def _position(text: str | None, option: str = "--position") -> int | None:
    if text is None:
        return None
    try:
        position = int(text)
    except ValueError:
        position = 0
    if position < 1:
        _fail(f"{option} {text!r} is not a position (a notification id >= 1)")
    return position


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _one_of(account: str | None, position: str | None) -> None:
    if account is not None and position is not None:
        _fail("give --account or --position, not both")


def _echo_json(report: Mapping[str, Any]) -> None:
    typer.echo(json.dumps(report, indent=2))


def _stdout() -> Console:
    """The console for tables: as wide as the terminal; wide enough not to wrap in a pipe."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=200)


NUMERIC_COLUMNS = frozenset(
    {"version", "position", "head", "lag events", "lag seconds", "dead letters", "unknown events"}
)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        numeric = column in NUMERIC_COLUMNS
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    return table


# --- JSON shapes ------------------------------------------------------------------------------


def _policy_name(policy: FailurePolicy) -> str:
    return "stop" if isinstance(policy, Stop) else "dead_letter"


def policy_report(policy: FailurePolicy) -> dict[str, Any]:
    """A failure policy as JSON; every key is always present."""
    retry = policy if isinstance(policy, Retry) else None
    return {
        "policy": "retry" if retry else _policy_name(policy),
        "attempts": retry.attempts if retry else None,
        "backoff_seconds": retry.backoff_seconds if retry else None,
        "max_backoff": retry.max_backoff if retry else None,
        "then": _policy_name(retry.then) if retry else None,
    }


def status_report(status: ProjectionStatus) -> dict[str, Any]:
    """One projection's status as JSON; every key is always present."""
    error = status.last_error
    return {
        "name": status.name,
        "version": status.version,
        "serving_version": status.serving_version,
        "partitions": status.partitions,
        "partition": status.partition,
        "state": status.state,
        "position": status.position,
        "head": status.head,
        "lag": status.lag,
        "lag_seconds": status.lag_seconds,
        "dead_letters": status.dead_letters,
        "unknown_events": status.unknown_events,
        "on_failure": policy_report(status.on_failure),
        "last_error": None if error is None else {"position": error.position, "error": error.error},
    }


def letter_report(letter: ParkedEvent) -> dict[str, Any]:
    """A dead letter as JSON; ``error`` is null for an event parked behind an earlier one."""
    return {
        "position": letter.position,
        "account_id": str(letter.account_id),
        "originator_version": letter.originator_version,
        "topic": letter.topic,
        "error": letter.error,
        "parked_at": letter.parked_at.isoformat(),
        "projection_version": letter.version,
    }


def plain(value: object) -> Any:
    """An event's field as JSON: enums by value, ids, amounts and times as text."""
    if isinstance(value, Enum):
        return plain(value.value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if attrs.has(type(value)):
        fields = attrs.fields(cast("type[attrs.AttrsInstance]", type(value)))
        return {f.name: plain(getattr(value, f.name)) for f in fields}
    if isinstance(value, Mapping):
        return {str(plain(key)): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    return repr(value)


# --- status, catch-up -------------------------------------------------------------------------


def _lag_seconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:,.0f}"


def _policy_text(policy: FailurePolicy) -> str:
    if isinstance(policy, Retry):
        return f"retry {policy.attempts}x, then {_policy_name(policy.then)}"
    return _policy_name(policy)


def _print_statuses(title: str, statuses: list[ProjectionStatus]) -> None:
    table = _table(
        title,
        *("name", "version", "state", "position", "head", "lag events", "lag seconds"),
        *("dead letters", "unknown events", "on_failure", "last error"),
    )
    for s in statuses:
        error = s.last_error
        table.add_row(
            *(s.name, str(s.version), s.state, str(s.position), str(s.head), str(s.lag)),
            *(_lag_seconds(s.lag_seconds), str(s.dead_letters), str(s.unknown_events)),
            _policy_text(s.on_failure),
            "" if error is None else f"at {error.position}: {error.error}",
        )
    _stdout().print(table)


def _fail_if_stopped(statuses: list[ProjectionStatus]) -> None:
    """Exit code 1, naming them, if projections stopped on a failure."""
    stopped = [s for s in statuses if s.state == "failed" and s.last_error is not None]
    if stopped:
        _fail(
            "; ".join(
                f"projection {s.name!r} stopped at {s.last_error.position}: {s.last_error.error}"
                for s in stopped
                if s.last_error is not None
            ),
            code=FAILURE,
        )


def status(ctx: typer.Context, db: Db = None, as_json: AsJson = False) -> None:
    """Where every projection is: position, lag, state, dead letters, failure policy."""
    with _session(ctx, db) as (service, where):
        statuses = service.projections.status()
    if as_json:
        _echo_json({"db": where, "projections": [status_report(s) for s in statuses]})
    else:
        _print_statuses(f"Projections of {where}", statuses)


PartitionOption = Annotated[
    str | None,
    typer.Option(
        "--partition",
        metavar="INDEX/COUNT",
        help="Work as one of COUNT workers: apply the events of this part of the accounts "
        "only, to the projections that keep their rows apart by account.",
        show_default=False,
    ),
]


def _partition(text: str | None) -> Partition | None:
    if text is None:
        return None
    try:
        return Partition.parse(text)
    except InvalidValue as error:
        _fail(f"--partition: {error.reason}")


def _worker(service: AccountService, part: Partition) -> tuple[ProjectionRunner, list[str]]:
    """A runner of partition ``part`` for the projections that can be split, and the names
    of those that cannot."""
    projections = list(service.plugins.projections().values())
    splittable = [p for p in projections if keeps_accounts_apart(p)]
    left_out = [p.name for p in projections if p not in splittable]
    return ProjectionRunner(service, splittable, partition=part), left_out


def catch_up(
    ctx: typer.Context, db: Db = None, as_json: AsJson = False, partition: PartitionOption = None
) -> None:
    """Apply the events recorded since each running projection's position."""
    part = _partition(partition)
    left_out: list[str] = []
    with _session(ctx, db) as (service, where):
        if part is None:
            read = service.catch_up()
            statuses = service.projections.status()
        else:
            worker, left_out = _worker(service, part)
            with worker:
                read = worker.catch_up()
                statuses = worker.status()
    if as_json:
        _echo_json(
            {
                "db": where,
                "partition": partition and str(part),
                "left_out": left_out,
                "notifications_read": read,
                "projections": [status_report(s) for s in statuses],
            }
        )
    else:
        title = f"Caught up: {read} notifications read from {where}"
        if part is not None:
            title += f", partition {part}"
        _print_statuses(title, statuses)
        if left_out:
            _say(
                f"not split by account, left to a runner without --partition: {', '.join(left_out)}"
            )
    _fail_if_stopped(statuses)


def follow(
    ctx: typer.Context,
    db: Db = None,
    as_json: AsJson = False,
    partition: PartitionOption = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--for",
            metavar="SECONDS",
            help="Stop after SECONDS (default: on Ctrl-C or SIGTERM).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Keep the projections current: catch up, then apply each new event as it is recorded,
    until stopped. Policies run too, except in a worker of a partition."""
    part = _partition(partition)
    seconds = _seconds(duration)
    stop = threading.Event()
    with _session(ctx, db) as (service, where):
        left_out: list[str] = []
        policies = None
        if part is None:
            runner = ProjectionRunner(service, service.plugins.projections().values())
            policies = PolicyRunner(service, service.plugins.policies().values())
        else:
            runner, left_out = _worker(service, part)
        follower = StoreFollower(service, runner, policies)
        try:
            with _stopped_by_signals(stop):
                follower.start()
                label = "" if part is None else f", partition {part}"
                _say(f"following {where}{label}; Ctrl-C stops")
                stop.wait(seconds)
        finally:
            follower.close()
            statuses = runner.status()
            crashes, last_crash = follower.crashes, follower.last_crash
            runner.close()
            if policies is not None:
                policies.close()
    if as_json:
        _echo_json(
            {
                "db": where,
                "partition": None if part is None else str(part),
                "left_out": left_out,
                "position": follower.position,
                "crashes": crashes,
                "last_crash": None if last_crash is None else last_crash.error,
                "projections": [status_report(s) for s in statuses],
            }
        )
    else:
        label = "" if part is None else f", partition {part}"
        _print_statuses(f"Followed {where} up to {follower.position}{label}", statuses)
    _fail_if_stopped(statuses)


def _seconds(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        _fail(f"--for: expected a number of seconds >= 0, got {text!r}")
    return seconds


@contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set ``stop`` (only the main thread gets signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        number: signal.signal(number, lambda signum, frame: stop.set())
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


# --- rebuild ----------------------------------------------------------------------------------


def progress_bars(label: str) -> Progress:
    """Bars on stderr (``label``, done of total, elapsed, remaining) that draw only for a
    person watching: logs and pipes get the command's own output alone."""
    errors = Console(stderr=True)
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    )


@contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback drawing a bar on stderr, only for a person watching."""
    progress = progress_bars(label)
    task = progress.add_task(label, total=None)
    with progress:
        yield lambda done, total: progress.update(task, completed=done, total=total)


@contextmanager
def _cancelled_by_interrupt(cancel: threading.Event) -> Iterator[None]:
    """Ctrl-C sets ``cancel`` instead of interrupting (only the main thread gets signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: cancel.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _cancelled(account_id: UUID | None) -> NoReturn:
    if account_id is None:
        _say(
            "cancelled: every projection's position agrees with its rows; "
            "`acctdomain projections catch-up` goes on from there"
        )
    else:
        _say(f"cancelled: nothing was committed; the rows of account {account_id} are unchanged")
    raise typer.Exit(CANCELLED)


def rebuild(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(help="The projection to rebuild (default: all).", show_default=False),
    ] = None,
    account: Account = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Empty a projection's tables (or all, or one account's rows) and replay the events.

    Ctrl-C stops between two batches and leaves a consistent state."""
    cancel = threading.Event()
    with _session(ctx, db) as (service, where):
        runner = service.projections
        names = runner.names if name is None else [_known(runner, name)]
        account_id = _account(service, account)
        started = time.perf_counter()
        with _progress_bar("Rebuilding") as progress, _cancelled_by_interrupt(cancel):
            read = runner.rebuild(name, account_id=account_id, progress=progress, cancel=cancel)
        seconds = time.perf_counter() - started
        statuses = [s for s in runner.status() if s.name in names]
    if as_json:
        _echo_json(
            {
                "db": where,
                "rebuilt": names,
                "account_id": None if account_id is None else str(account_id),
                "notifications_read": read,
                "seconds": round(seconds, 2),
                "cancelled": cancel.is_set(),
                "projections": [status_report(s) for s in statuses],
            }
        )
    else:
        share = "" if account_id is None else f" (account {account_id})"
        _print_statuses(f"Rebuilt{share}: {read} notifications read from {where}", statuses)
    if cancel.is_set():
        _cancelled(account_id)
    _fail_if_stopped(statuses)


# --- pause, resume ----------------------------------------------------------------------------


def _set_paused(ctx: typer.Context, name: str, db: str | None, as_json: bool, paused: bool) -> None:
    with _session(ctx, db) as (service, where):
        runner = service.projections
        _known(runner, name)
        if paused:
            runner.pause(name)
        else:
            runner.resume(name)
        found = next(s for s in runner.status() if s.name == name)
    if as_json:
        _echo_json({"db": where, "projection": status_report(found)})
    elif paused:
        typer.echo(f"paused {name} at position {found.position}: catch-ups skip it until resumed")
    else:
        typer.echo(
            f"resumed {name} at position {found.position} of {found.head}: "
            "the next catch-up applies the events recorded meanwhile"
        )


def pause(ctx: typer.Context, name: Name, db: Db = None, as_json: AsJson = False) -> None:
    """Stop applying events to a projection, in every process, until it is resumed."""
    _set_paused(ctx, name, db, as_json, paused=True)


def resume(ctx: typer.Context, name: Name, db: Db = None, as_json: AsJson = False) -> None:
    """Run a paused projection again."""
    _set_paused(ctx, name, db, as_json, paused=False)


# --- dead letters -----------------------------------------------------------------------------


def _print_letters(title: str, letters: list[ParkedEvent]) -> None:
    table = _table(title, "position", "account", "version", "topic", "error", "parked at")
    for letter in letters:
        table.add_row(
            *(str(letter.position), str(letter.account_id), str(letter.originator_version)),
            letter.topic.rpartition(":")[2],
            letter.error or "(waits behind an earlier dead letter of its account)",
            letter.parked_at.isoformat(timespec="seconds"),
        )
    _stdout().print(table)


def list_letters(
    ctx: typer.Context, name: Name, account: Account = None, db: Db = None, as_json: AsJson = False
) -> None:
    """The events a projection parked (one account's), by position."""
    with _session(ctx, db) as (service, where):
        runner = service.projections
        _known(runner, name)
        account_id = _account(service, account)
        letters = runner.dead_letters(name, account_id=account_id)
    if as_json:
        _echo_json(
            {
                "db": where,
                "projection": name,
                "account_id": None if account_id is None else str(account_id),
                "dead_letters": [letter_report(letter) for letter in letters],
            }
        )
    elif not letters:
        typer.echo(f"{name} has no dead letters")
    else:
        _print_letters(f"Dead letters of {name}", letters)


def show_letter(
    ctx: typer.Context,
    name: Name,
    position: Annotated[str, typer.Argument(help="The dead letter's position.")],
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """One dead letter, with its event read back from the store."""
    at = _position(position, "POSITION")
    assert at is not None
    with _session(ctx, db) as (service, where):
        runner = service.projections
        _known(runner, name)
        detail = runner.inspect_dead_letter(name, at)
    letter = letter_report(detail.parked)
    event: dict[str, Any] | None = None if detail.event is None else plain(detail.event)
    report = {
        "db": where,
        "projection": name,
        "dead_letter": letter,
        "event_type": None if detail.event is None else type(detail.event).__qualname__,
        "event": event,
        "decode_error": detail.decode_error,
    }
    if as_json:
        _echo_json(report)
        return
    table = _table(f"Dead letter of {name} at {at}", "field", "value")
    for key, value in (*letter.items(), *(event or {}).items()):
        table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    if detail.decode_error is not None:
        table.add_row("decode_error", detail.decode_error)
    _stdout().print(table)


def replay_letters(
    ctx: typer.Context,
    name: Name,
    account: Account = None,
    position: Position = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Apply dead letters again, each account's in order; those that fail again are kept."""
    _one_of(account, position)
    at = _position(position)
    with _session(ctx, db) as (service, where):
        runner = service.projections
        _known(runner, name)
        account_id = _account(service, account)
        result = runner.replay_dead_letters(name, account_id=account_id, position=at)
    if as_json:
        _echo_json(
            {
                "db": where,
                "projection": name,
                "replayed": list(result.replayed),
                "failed": [letter_report(letter) for letter in result.failed],
            }
        )
    elif result.replayed or not result.failed:
        shown = ", ".join(map(str, result.replayed)) or "none"
        replayed = _count(len(result.replayed), "dead letter")
        typer.echo(f"replayed {replayed} of {name} (positions: {shown})")
    if result.failed:
        first = result.failed[0]
        _fail(
            f"{_count(len(result.failed), 'dead letter')} of {name} failed again (still parked); "
            f"the first, at {first.position}: {first.error}",
            code=FAILURE,
        )


def purge_letters(
    ctx: typer.Context,
    name: Name,
    account: Account = None,
    position: Position = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Delete dead letters without applying them (asks first unless --yes)."""
    _one_of(account, position)
    at = _position(position)
    with _session(ctx, db) as (service, where):
        runner = service.projections
        _known(runner, name)
        account_id = _account(service, account)
        letters = runner.dead_letters(name, account_id=account_id)
        count = len(letters if at is None else [x for x in letters if x.position == at])
        if at is not None and not count:
            _fail(f"{name!r} has no dead letter at {at}")
        if count and not yes:
            typer.confirm(
                f"Delete {_count(count, 'dead letter')} of {name} without applying them?",
                abort=True,
                err=True,
            )
        purged = runner.purge_dead_letters(name, account_id=account_id, position=at) if count else 0
    if as_json:
        _echo_json({"db": where, "projection": name, "purged": purged})
    else:
        typer.echo(f"purged {_count(purged, 'dead letter')} of {name}")
