"""`acctdomain projections`: status, catch-up, rebuild, pause, resume and dead letters, on real
SQLite files (and one PostgreSQL schema), with a plugin projection that parks what it fails on.

``test_every_command_has_a_section_in_the_docs`` fails when a command of the group has no
section in docs/cli.md; ``test_the_documented_examples_print_what_the_docs_show`` runs every
example of that page against the store its Python block writes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import typer
from eventsourcing.persistence import PersistenceError, StoredEvent
from rich.console import Console
from typer.testing import CliRunner, Result

from acctdomain import AccountService, account_id_for
from acctdomain.cli import app, build_app
from acctdomain.cli_projections import projections_app
from acctdomain.plugins import CliCommand, DeadLetter, PluginHost, Projection, Rows, hookimpl
from acctdomain.projections import ParkedEventDetail, ProjectionRunner
from tests.conftest import FakeClock
from tests.pg import drop_schema, new_schema_url
from tests.projection_fixtures import (
    UNKNOWN_TOPIC,
    AccountHistory,
    Ledger,
    TopicTotals,
    contact,
    of,
    open_active,
)

runner = CliRunner()

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
# The built-in projections, in registration order (builtin.accounts, .kpis, .workday).
BUILT_IN = [
    "accounts", "kpi_facts", "account_plans", "stakeholders", "value_realised", "white_space",
        "attention",
]  # fmt: skip
ACME, GLOBEX = account_id_for("crm:1"), account_id_for("crm:2")
STATUS_KEYS = {
    "name",
    "version",
    "state",
    "position",
    "head",
    "lag",
    "lag_seconds",
    "dead_letters",
    "unknown_events",
    "serving_version",
    "partitions",
    "partition",
    "on_failure",
    "last_error",
}
LETTER_KEYS = {
    "position",
    "account_id",
    "originator_version",
    "topic",
    "error",
    "parked_at",
    "projection_version",
}


class Parking(AccountHistory):
    """Parks what it fails on (Globex's first contact, notification 7, unless told otherwise)."""

    on_failure = DeadLetter()


class Stopping(TopicTotals):
    """Stops on what it fails on (the default policy)."""


class Projections:
    """A plugin registering the given projections."""

    def __init__(self, *projections: Projection) -> None:
        self.projections = projections

    @hookimpl
    def acctdomain_register_projections(self, register: Callable[[Projection], None]) -> None:
        for projection in self.projections:
            register(projection)


def host_of(*projections: Projection) -> PluginHost:
    return PluginHost(entry_points=False, plugins=[("fixtures", Projections(*projections))])


def write_book(store: str, host: PluginHost) -> None:
    """Acme (notifications 1-4) and Globex (5-8): opened, a contract, two contacts each."""
    service = AccountService(store, clock=FakeClock(), plugins=host)
    try:
        for key in ("crm:1", "crm:2"):
            account_id = open_active(service, key)
            contact(service, account_id, duration_minutes=30)
            contact(service, account_id)
    finally:
        service.close()


@pytest.fixture
def parking() -> Parking:
    return Parking(fails=of(GLOBEX, 3))


@pytest.fixture
def host(parking: Parking) -> PluginHost:
    return host_of(parking)


@pytest.fixture
def db(tmp_path: Path, host: PluginHost) -> str:
    path = str(tmp_path / "book.db")
    write_book(path, host)
    return path


def cli(host: PluginHost, *args: str, input: str | None = None) -> Result:
    return runner.invoke(build_app(host), ["projections", *args], input=input)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {projection["name"]: projection for projection in report["projections"]}


def assert_one_line_error(result: Result, code: int, starts: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {starts}"), result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def read_model_row(db: str, host: PluginHost, name: str, table: str, key: str) -> Any:
    service = AccountService(db, plugins=host)
    try:
        return service.read_model(name).get(table, key)
    finally:
        service.close()


# --- status, catch-up -----------------------------------------------------------------------------


def test_status_lists_the_core_and_plugin_projections(host: PluginHost, db: str) -> None:
    result = cli(host, "status", "--db", db)
    assert result.exit_code == 0, result.output
    assert f"Projections of {db}" in result.stdout
    for word in ("accounts", "account_history", "running", "dead_letter", "lag seconds"):
        assert word in result.stdout
    assert result.stderr == ""


def test_status_json_has_stable_keys_and_applies_nothing(host: PluginHost, db: str) -> None:
    report = as_json(cli(host, "status", "--db", db, "--json"))
    assert set(report) == {"db", "projections"}
    assert report["db"] == db
    assert list(by_name(report)) == [*BUILT_IN, "account_history"]
    for projection in report["projections"]:
        assert set(projection) == STATUS_KEYS
        assert (projection["position"], projection["head"], projection["lag"]) == (0, 8, 8)
        assert projection["lag_seconds"] is None
        assert set(projection["on_failure"]) == {
            "policy",
            "attempts",
            "backoff_seconds",
            "max_backoff",
            "then",
        }
    assert by_name(report)["account_history"]["on_failure"]["policy"] == "dead_letter"


def test_catch_up_applies_the_events_and_parks_what_fails(host: PluginHost, db: str) -> None:
    report = as_json(cli(host, "catch-up", "--db", db, "--json"))
    assert set(report) == {"db", "partition", "left_out", "notifications_read", "projections"}
    assert (report["partition"], report["left_out"]) == (None, [])
    assert report["notifications_read"] == 8
    projections = by_name(report)
    assert projections["accounts"]["position"] == 8
    history = projections["account_history"]
    assert (history["position"], history["dead_letters"], history["state"]) == (8, 2, "running")
    assert history["last_error"]["position"] == 7
    assert "Boom" in history["last_error"]["error"]
    again = as_json(cli(host, "catch-up", "--db", db, "--json"))
    assert again["notifications_read"] == 0
    text = cli(host, "catch-up", "--db", db)
    assert text.exit_code == 0
    assert "Caught up: 0 notifications read" in text.stdout
    assert text.stderr == ""  # the engine's log records stay out of the output


def test_a_projection_that_stops_fails_the_catch_up_with_exit_code_1(tmp_path: Path) -> None:
    host = host_of(Stopping(fails=of(GLOBEX, 3)))
    db = str(tmp_path / "book.db")
    write_book(db, host)
    result = cli(host, "catch-up", "--db", db, "--json")
    assert result.exit_code == 1
    stopped = by_name(json.loads(result.stdout))["topic_totals"]
    assert stopped["state"] == "failed"
    assert stopped["last_error"]["position"] == 7
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: projection 'topic_totals' stopped at 7: Boom(")
    assert "Traceback" not in result.output
    rebuilt = cli(host, "rebuild", "topic_totals", "--db", db)
    assert rebuilt.exit_code == 1
    assert rebuilt.stderr.startswith("error: projection 'topic_totals' stopped at 7: Boom(")


def test_catch_up_as_two_partition_workers(tmp_path: Path) -> None:
    host = host_of(AccountHistory(), TopicTotals())
    path = str(tmp_path / "book.db")
    write_book(path, host)
    reports = [
        as_json(cli(host, "catch-up", "--partition", part, "--db", path, "--json"))
        for part in ("0/2", "1/2")
    ]
    for report, part in zip(reports, ("0/2", "1/2"), strict=True):
        assert report["partition"] == part
        assert "topic_totals" in report["left_out"]
        history = by_name(report)["account_history"]
        assert set(history) == STATUS_KEYS
        assert (history["name"], history["partition"], history["partitions"]) == (
            "account_history",
            part,
            2,
        )
        assert history["position"] == 8
    # A runner without partition: the split projection is the workers', the other its own.
    whole = by_name(as_json(cli(host, "catch-up", "--db", path, "--json")))
    assert (whole["account_history"]["partitions"], whole["account_history"]["position"]) == (
        2,
        8,
    )
    assert (whole["topic_totals"]["partitions"], whole["topic_totals"]["position"]) == (1, 8)
    assert read_model_row(path, host, "account_history", "accounts", ACME.hex) == {
        "versions": (1, 2, 3, 4)
    }


@pytest.mark.parametrize("value", ["2/2", "x", "1", "0/0"])
def test_catch_up_refuses_a_malformed_partition(host: PluginHost, db: str, value: str) -> None:
    result = cli(host, "catch-up", "--partition", value, "--db", db)
    assert_one_line_error(result, 2, "--partition: ")


def test_catch_up_of_a_partition_in_a_store_split_otherwise_fails(
    host: PluginHost, db: str
) -> None:
    assert cli(host, "catch-up", "--partition", "0/2", "--db", db).exit_code == 0
    result = cli(host, "catch-up", "--partition", "0/3", "--db", db, "--json")
    assert result.exit_code == 1
    report = by_name(json.loads(result.stdout))["account_history"]
    assert report["state"] == "failed"
    assert "in 2 partitions" in report["last_error"]["error"]
    assert result.stderr.startswith("error: projection ")
    assert "'account_history' stopped" in result.stderr


def test_follow_for_a_while_catches_up_and_reports(host: PluginHost, db: str) -> None:
    result = cli(host, "follow", "--for", "0.2", "--db", db, "--json")
    report = as_json(result)
    assert result.stderr.startswith(f"following {db}; Ctrl-C stops")
    assert (report["partition"], report["left_out"], report["position"]) == (None, [], 8)
    assert (report["crashes"], report["last_crash"]) == (0, None)
    history = by_name(report)["account_history"]
    assert set(history) == STATUS_KEYS
    assert (history["position"], history["dead_letters"]) == (8, 2)


def test_follow_as_a_partition_worker(tmp_path: Path) -> None:
    host = host_of(AccountHistory(), TopicTotals())
    path = str(tmp_path / "book.db")
    write_book(path, host)
    report = as_json(
        cli(host, "follow", "--partition", "1/2", "--for", "0.1", "--db", path, "--json")
    )
    assert report["partition"] == "1/2"
    assert "topic_totals" in report["left_out"]
    history = by_name(report)["account_history"]
    assert (history["partition"], history["partitions"], history["position"]) == ("1/2", 2, 8)
    text = cli(host, "follow", "--partition", "1/2", "--for", "0", "--db", path)
    assert "Followed" in text.stdout
    assert "partition 1/2" in text.stdout


@pytest.mark.parametrize(
    ("options", "starts"),
    [
        (["--for", "-1"], "--for: expected a number of seconds >= 0, got '-1'"),
        (["--for", "soon"], "--for: expected"),
        (["--for", "inf"], "--for: expected"),
        (["--partition", "3/2"], "--partition: "),
    ],
)
def test_follow_refuses_bad_options(
    host: PluginHost, db: str, options: list[str], starts: str
) -> None:
    assert_one_line_error(cli(host, "follow", *options, "--db", db), 2, starts)


def test_follow_runs_until_sigterm_in_a_process_of_its_own(tmp_path: Path) -> None:
    path = str(tmp_path / "book.db")
    write_book(path, PluginHost(entry_points=False))
    executable = Path(sys.executable).parent / "acctdomain"
    follower = subprocess.Popen(
        [str(executable), "projections", "follow", "--db", path, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ACCTDOMAIN_PLUGINS": ""},
    )
    try:
        assert follower.stderr is not None
        assert follower.stderr.readline().startswith(f"following {path}")
        service = AccountService(path, plugins=PluginHost(entry_points=False))
        try:
            contact(service, ACME)  # recorded while it follows
            head = service.recorder.max_notification_id()
            with ProjectionRunner(service, service.plugins.projections().values()) as observer:
                for _ in range(200):
                    if observer.status()[0].position == head:
                        break
                    time.sleep(0.05)
                assert observer.status()[0].position == head
        finally:
            service.close()
        follower.send_signal(signal.SIGTERM)
        out, _ = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0
    report = json.loads(out)
    assert report["position"] == head
    assert by_name(report)["accounts"]["position"] == head


def test_the_store_comes_from_the_environment_by_default(
    host: PluginHost, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCTDOMAIN_STORE", db)
    assert as_json(cli(host, "status", "--json"))["db"] == db
    monkeypatch.delenv("ACCTDOMAIN_STORE")
    monkeypatch.chdir(tmp_path)
    result = cli(host, "status")
    assert_one_line_error(result, 2, "--db: there is no SQLite store at acctdomain.db")
    assert not (tmp_path / "acctdomain.db").exists()


# --- rebuild ----------------------------------------------------------------------------------


def test_rebuild_every_projection(host: PluginHost, db: str) -> None:
    cli(host, "catch-up", "--db", db)
    report = as_json(cli(host, "rebuild", "--db", db, "--json"))
    assert set(report) == {
        "db",
        "rebuilt",
        "account_id",
        "notifications_read",
        "seconds",
        "cancelled",
        "projections",
    }
    assert report["rebuilt"] == [*BUILT_IN, "account_history"]
    assert (report["account_id"], report["cancelled"]) == (None, False)
    assert report["notifications_read"] >= 8
    projections = by_name(report)
    assert projections["accounts"]["position"] == 8
    assert projections["account_history"]["dead_letters"] == 2  # it still fails on them


def test_rebuild_one_projection_as_a_table(host: PluginHost, db: str) -> None:
    result = cli(host, "rebuild", "accounts", "--db", db)
    assert result.exit_code == 0, result.output
    assert "Rebuilt: 8 notifications read" in result.stdout
    assert "account_history" not in result.stdout
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_rebuild_shows_a_progress_bar_on_a_terminal(
    host: PluginHost, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))
    result = cli(host, "rebuild", "--db", db, "--json")
    assert result.exit_code == 0, result.output
    assert "Rebuilding" in result.stderr
    assert "8/8" in result.stderr  # fed by the rebuild's progress callback
    assert json.loads(result.stdout)["notifications_read"] >= 8


def test_rebuild_one_account_share_after_the_fix(
    host: PluginHost, parking: Parking, db: str
) -> None:
    cli(host, "catch-up", "--db", db)
    parking.fails = None  # the plugin's bug is fixed
    args = ["rebuild", "account_history", "--account", str(GLOBEX), "--db", db, "--json"]
    report = as_json(cli(host, *args))
    assert report["account_id"] == str(GLOBEX)
    assert by_name(report)["account_history"]["dead_letters"] == 0
    row = read_model_row(db, host, "account_history", "accounts", GLOBEX.hex)
    assert row == {"versions": (1, 2, 3, 4)}


def test_rebuild_refuses_an_account_share_a_projection_does_not_declare(
    parking: Parking, tmp_path: Path
) -> None:
    # (the built-in accounts projection declares its share: a book total does not)
    host = host_of(parking, TopicTotals())
    db = str(tmp_path / "totals.db")
    write_book(db, host)
    result = cli(host, "rebuild", "topic_totals", "--account", str(ACME), "--db", db)
    assert_one_line_error(result, 2, "projection 'topic_totals' does not declare its account share")
    result = cli(host, "rebuild", "--account", str(ACME), "--db", db)  # every projection's share
    assert_one_line_error(result, 2, "projection 'kpi_facts' does not declare")


class Interrupting(Ledger):
    """Presses Ctrl-C (sends SIGINT to this process) on the first event it applies."""

    name = "interrupting"

    def __init__(self) -> None:
        self.pressed = False

    def apply(self, event: Any, rows: Rows) -> None:
        if not self.pressed:
            self.pressed = True
            os.kill(os.getpid(), signal.SIGINT)
        super().apply(event, rows)


class InterruptingHistory(AccountHistory):
    """An account share rebuild that Ctrl-C interrupts."""

    name = "interrupting_history"

    def __init__(self) -> None:
        super().__init__()
        self.pressed = False

    def apply(self, event: Any, rows: Rows) -> None:
        if not self.pressed:
            self.pressed = True
            os.kill(os.getpid(), signal.SIGINT)
        super().apply(event, rows)


EXTRA_EVENTS = 12_000


@pytest.fixture
def long_book(tmp_path: Path) -> str:
    """The book, then events of a type no plugin knows: several batches (a rebuild reads 5,000
    notifications per batch, a catch-up or an account's rebuild 500)."""
    db = str(tmp_path / "long.db")
    write_book(db, host_of())
    service = AccountService(db, plugins=PluginHost(entry_points=False))
    try:
        service.recorder.insert_events(
            [StoredEvent(uuid4(), 1, UNKNOWN_TOPIC, b"{}") for _ in range(EXTRA_EVENTS)]
        )
    finally:
        service.close()
    return db


def test_ctrl_c_cancels_a_rebuild_between_batches(long_book: str) -> None:
    host = host_of(Interrupting())
    before = signal.getsignal(signal.SIGINT)
    result = cli(host, "rebuild", "interrupting", "--db", long_book, "--json")
    assert signal.getsignal(signal.SIGINT) is before
    assert result.exit_code == 130, result.output
    report = json.loads(result.stdout)
    assert report["cancelled"] is True
    status = by_name(report)["interrupting"]
    head = 8 + EXTRA_EVENTS
    assert 8 <= status["position"] < status["head"] == head  # the first batches, committed
    assert result.stderr.startswith("cancelled: every projection's position agrees with its rows")
    assert "catch-up" in result.stderr
    assert "Traceback" not in result.output
    caught_up = by_name(as_json(cli(host, "catch-up", "--db", long_book, "--json")))
    assert caught_up["interrupting"]["position"] == head


def test_ctrl_c_cancels_an_account_rebuild_committing_nothing(long_book: str) -> None:
    projection = InterruptingHistory()
    host = host_of(projection)
    projection.pressed = True  # not while catching up
    assert cli(host, "catch-up", "--db", long_book).exit_code == 0
    projection.pressed = False
    args = ["rebuild", "interrupting_history", "--account", str(ACME), "--db", long_book]
    result = cli(host, *args)
    assert result.exit_code == 130, result.output
    assert result.stderr.startswith(f"cancelled: nothing was committed; the rows of account {ACME}")
    row = read_model_row(long_book, host, "interrupting_history", "accounts", ACME.hex)
    assert row == {"versions": (1, 2, 3, 4)}


# --- pause, resume ----------------------------------------------------------------------------


def test_pause_holds_a_projection_until_resumed(host: PluginHost, db: str) -> None:
    paused = as_json(cli(host, "pause", "accounts", "--db", db, "--json"))
    assert set(paused) == {"db", "projection"}
    assert set(paused["projection"]) == STATUS_KEYS
    assert paused["projection"]["state"] == "paused"
    caught_up = by_name(as_json(cli(host, "catch-up", "--db", db, "--json")))
    assert (caught_up["accounts"]["state"], caught_up["accounts"]["position"]) == ("paused", 0)
    assert caught_up["account_history"]["position"] == 8
    result = cli(host, "rebuild", "accounts", "--db", db)
    assert_one_line_error(result, 2, "'accounts' is paused: resume it before rebuilding")
    resumed = cli(host, "resume", "accounts", "--db", db)
    assert resumed.exit_code == 0
    assert resumed.stdout.startswith("resumed accounts at position 0 of 8")
    assert by_name(as_json(cli(host, "catch-up", "--db", db, "--json")))["accounts"]["lag"] == 0
    text = cli(host, "pause", "accounts", "--db", db)
    assert text.stdout.startswith("paused accounts at position 8")
    resumed_json = as_json(cli(host, "resume", "accounts", "--db", db, "--json"))
    assert resumed_json["projection"]["state"] == "running"


# --- dead letters -----------------------------------------------------------------------------


@pytest.fixture
def parked(host: PluginHost, db: str) -> str:
    """The book with Globex's notifications 7 and 8 parked by account_history."""
    assert cli(host, "catch-up", "--db", db).exit_code == 0
    return db


def test_dead_letters_list(host: PluginHost, parked: str) -> None:
    report = as_json(cli(host, "dead-letters", "list", "account_history", "--db", parked, "--json"))
    assert set(report) == {"db", "projection", "account_id", "dead_letters"}
    letters = report["dead_letters"]
    assert [letter["position"] for letter in letters] == [7, 8]
    assert all(set(letter) == LETTER_KEYS for letter in letters)
    assert letters[0]["error"].startswith("Boom(")
    assert letters[1]["error"] is None  # parked behind the first
    assert letters[0]["account_id"] == str(GLOBEX)
    args = ["dead-letters", "list", "account_history", "--account", str(ACME), "--db", parked]
    assert as_json(cli(host, *args, "--json"))["dead_letters"] == []
    table = cli(host, "dead-letters", "list", "account_history", "--db", parked)
    assert "waits behind an earlier dead letter" in table.stdout
    none = cli(host, "dead-letters", "list", "accounts", "--db", parked)
    assert none.stdout == "accounts has no dead letters\n"


def test_dead_letter_show(host: PluginHost, parked: str) -> None:
    args = ["dead-letters", "show", "account_history", "7", "--db", parked]
    report = as_json(cli(host, *args, "--json"))
    assert set(report) == {"db", "projection", "dead_letter", "event_type", "event", "decode_error"}
    assert set(report["dead_letter"]) == LETTER_KEYS
    assert (report["event_type"], report["decode_error"]) == ("ContactLogged", None)
    event = report["event"]
    assert (event["originator_id"], event["originator_version"]) == (str(GLOBEX), 3)
    assert (event["channel"], event["duration_minutes"], event["stakeholder_ids"]) == (
        "phone",
        30,
        [],
    )
    table = cli(host, *args)
    assert table.exit_code == 0
    assert "duration_minutes" in table.stdout
    assert "Boom(" in table.stdout


def test_dead_letter_show_an_event_that_cannot_be_decoded(
    host: PluginHost, parked: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inspect = ProjectionRunner.inspect_dead_letter

    def undecodable(self: ProjectionRunner, name: str, position: int) -> ParkedEventDetail:
        detail = inspect(self, name, position)
        return ParkedEventDetail(detail.parked, None, "the event is not in the store")

    monkeypatch.setattr(ProjectionRunner, "inspect_dead_letter", undecodable)
    args = ["dead-letters", "show", "account_history", "7", "--db", parked]
    report = as_json(cli(host, *args, "--json"))
    assert (report["event"], report["event_type"]) == (None, None)
    assert report["decode_error"] == "the event is not in the store"
    assert "the event is not in the store" in cli(host, *args).stdout


def test_replay_keeps_what_fails_again_then_applies_after_the_fix(
    host: PluginHost, parking: Parking, parked: str
) -> None:
    replay = ["dead-letters", "replay", "account_history", "--db", parked]
    failed = cli(host, *replay, "--json")
    assert failed.exit_code == 1
    report = json.loads(failed.stdout)
    assert set(report) == {"db", "projection", "replayed", "failed"}
    assert report["replayed"] == []
    assert [letter["position"] for letter in report["failed"]] == [7]
    assert failed.stderr.startswith("error: 1 dead letter of account_history failed again")
    assert failed.stderr.count("\n") == 1
    parking.fails = None
    assert as_json(cli(host, *replay, "--position", "7", "--json"))["replayed"] == [7]
    text = cli(host, *replay, "--account", str(GLOBEX))
    assert text.stdout == "replayed 1 dead letter of account_history (positions: 8)\n"
    assert as_json(cli(host, *replay, "--json")) == {
        "db": parked,
        "projection": "account_history",
        "replayed": [],
        "failed": [],
    }
    row = read_model_row(parked, host, "account_history", "accounts", GLOBEX.hex)
    assert row == {"versions": (1, 2, 3, 4)}


def test_replay_refuses_a_position_behind_another(host: PluginHost, parked: str) -> None:
    args = ["dead-letters", "replay", "account_history", "--position", "8", "--db", parked]
    assert_one_line_error(cli(host, *args), 2, f"the dead letter at 7 of account {GLOBEX}")


def test_purge_asks_first(host: PluginHost, parked: str) -> None:
    purge = ["dead-letters", "purge", "account_history", "--db", parked]
    declined = cli(host, *purge, input="n\n")
    assert declined.exit_code == 1
    assert "Delete 2 dead letters of account_history without applying them?" in declined.stderr
    assert "Aborted" in declined.stderr
    assert "purged" not in declined.stdout
    listed = ["dead-letters", "list", "account_history", "--db", parked, "--json"]
    assert len(as_json(cli(host, *listed))["dead_letters"]) == 2
    accepted = cli(host, *purge, "--position", "7", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout.endswith("purged 1 dead letter of account_history\n")  # (after "y")
    report = as_json(cli(host, *purge, "--account", str(GLOBEX), "--yes", "--json"))
    assert report == {"db": parked, "projection": "account_history", "purged": 1}
    nothing = cli(host, *purge)  # nothing left: no question
    assert (nothing.exit_code, nothing.stdout) == (0, "purged 0 dead letters of account_history\n")


# --- mistakes and failures --------------------------------------------------------------------

UNKNOWN = str(uuid4())
BOTH = ["--account", str(ACME), "--position", "7"]
NAMED = [
    ["rebuild", "nope"],
    ["pause", "nope"],
    ["resume", "nope"],
    ["dead-letters", "list", "nope"],
    ["dead-letters", "show", "nope", "7"],
    ["dead-letters", "replay", "nope"],
    ["dead-letters", "purge", "nope", "--yes"],
]


@pytest.mark.parametrize("args", NAMED, ids=lambda args: " ".join(args[:-1]))
def test_an_unknown_projection_is_a_usage_error(host: PluginHost, db: str, args: list[str]) -> None:
    result = cli(host, *args, "--db", db)
    known = ", ".join([*BUILT_IN, "account_history"])
    assert_one_line_error(result, 2, f"no projection named 'nope' (known: {known})")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rebuild", "account_history", "--account", "acme"], "--account 'acme' is not an account"),
        (["dead-letters", "list", "account_history", "--account", "1"], "--account '1' is not"),
        (["dead-letters", "replay", "account_history", "--account", "x"], "--account 'x' is not"),
        (["dead-letters", "purge", "account_history", "--account", "x"], "--account 'x' is not"),
        (
            ["dead-letters", "list", "account_history", "--account", UNKNOWN],
            f"--account {UNKNOWN}: the store has no events of this account",
        ),
        (
            ["rebuild", "account_history", "--account", UNKNOWN],
            f"--account {UNKNOWN}: the store has no events",
        ),
        (["dead-letters", "show", "account_history", "x"], "POSITION 'x' is not a position"),
        (["dead-letters", "show", "account_history", "0"], "POSITION '0' is not a position"),
        (["dead-letters", "show", "account_history", "3"], "'account_history' has no dead letter"),
        (
            ["dead-letters", "replay", "account_history", "--position", "-1"],
            "--position '-1' is not a position",
        ),
        (
            ["dead-letters", "replay", "account_history", "--position", "3"],
            "'account_history' has no dead letter at 3",
        ),
        (
            ["dead-letters", "purge", "account_history", "--position", "3", "--yes"],
            "'account_history' has no dead letter at 3",
        ),
        (
            ["dead-letters", "purge", "account_history", "--position", "two"],
            "--position 'two' is not a position",
        ),
        (
            ["dead-letters", "replay", "account_history", *BOTH],
            "give --account or --position, not both",
        ),
        (
            ["dead-letters", "purge", "account_history", *BOTH],
            "give --account or --position, not both",
        ),
    ],
)
def test_a_bad_account_or_position_is_a_usage_error(
    host: PluginHost, parked: str, args: list[str], message: str
) -> None:
    assert_one_line_error(cli(host, *args, "--db", parked), 2, message)


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("{tmp}/missing.db", "--db: there is no SQLite store at {tmp}/missing.db"),
        ("sqlite:///{tmp}/missing.db", "--db: there is no SQLite store at {tmp}/missing.db"),
        ("memory:", "--db: an in-memory store is empty in a new process"),
        ("ftp://host/book", "--db: store: unsupported scheme 'ftp'"),
        ("postgresql:///nohost", "--db: store: a PostgreSQL URL needs a host"),
        ("{tmp}/not-a-database.db", "--db {tmp}/not-a-database.db: cannot open the store: file is"),
        (
            "postgresql://postgres@127.0.0.1:1/test",
            "--db postgresql://postgres@127.0.0.1:1/test: cannot open the store: connection",
        ),
    ],
    ids=["missing", "missing-url", "memory", "scheme", "no-host", "not-a-database", "refused"],
)
def test_a_store_that_cannot_be_opened_is_a_usage_error(
    host: PluginHost, tmp_path: Path, store: str, message: str
) -> None:
    (tmp_path / "not-a-database.db").write_text("this is not an SQLite database, " * 40)
    result = cli(host, "status", "--db", store.format(tmp=tmp_path))
    assert_one_line_error(result, 2, message.format(tmp=tmp_path))
    assert not (tmp_path / "missing.db").exists()


def test_a_missing_argument_is_a_usage_error_without_traceback(host: PluginHost) -> None:
    for args in (["pause"], ["dead-letters", "show", "account_history"]):
        result = cli(host, *args)
        assert result.exit_code == 2
        assert "Missing argument" in result.stderr
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("method", "error"),
    [
        ("catch_up", PersistenceError("disk I/O error")),
        ("status", sqlite3.OperationalError("database is locked")),
    ],
)
def test_a_store_failure_while_working_ends_with_exit_code_1(
    host: PluginHost, db: str, monkeypatch: pytest.MonkeyPatch, method: str, error: Exception
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(ProjectionRunner, method, fail)
    assert_one_line_error(cli(host, "catch-up", "--db", db), 1, f"{db}: {error}")


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_commands_on_postgresql(host: PluginHost, parking: Parking) -> None:
    url, schema = new_schema_url()
    try:
        write_book(url, host)
        report = as_json(cli(host, "catch-up", "--db", url, "--json"))
        assert report["db"].endswith(f"?schema={schema}")
        history = by_name(report)["account_history"]
        assert history["dead_letters"] == 2
        letters = ["dead-letters", "list", "account_history", "--db", url, "--json"]
        first, second = (x["position"] for x in as_json(cli(host, *letters))["dead_letters"])
        show = ["dead-letters", "show", "account_history", str(first), "--db", url, "--json"]
        assert as_json(cli(host, *show))["event"]["originator_version"] == 3
        parking.fails = None
        replay = ["dead-letters", "replay", "account_history", "--db", url, "--json"]
        assert as_json(cli(host, *replay))["replayed"] == [first, second]
        pause = ["pause", "accounts", "--db", url, "--json"]
        assert as_json(cli(host, *pause))["projection"]["state"] == "paused"
        rebuilt = ["rebuild", "account_history", "--db", url, "--json"]
        assert by_name(as_json(cli(host, *rebuilt)))["account_history"]["dead_letters"] == 0
    finally:
        drop_schema(schema)


# --- registration -----------------------------------------------------------------------------


def test_the_module_app_has_the_group_too() -> None:
    result = runner.invoke(app, ["projections", "--help"])
    assert result.exit_code == 0
    for command in ("status", "catch-up", "rebuild", "pause", "resume", "dead-letters"):
        assert command in result.stdout


class Squatter:
    @hookimpl
    def acctdomain_register_cli_commands(self, register: Callable[[CliCommand], None]) -> None:
        register(CliCommand(name="projections", callback=lambda: typer.echo("mine")))


def test_a_plugin_cannot_take_the_group_name(db: str, parking: Parking) -> None:
    host = PluginHost(
        entry_points=False, plugins=[("squatter", Squatter()), ("p", Projections(parking))]
    )
    result = runner.invoke(build_app(host), ["projections", "status", "--db", db])
    assert result.exit_code == 0
    assert "account_history" in result.stdout
    failure = next(f for f in host.failures if f.plugin == "squatter")
    assert "belongs to a core command" in failure.error


# --- docs/cli.md ------------------------------------------------------------------------------

FENCE = re.compile(r"^```(?P<lang>\w+)\n(?P<body>.*?)^```$", re.S | re.M)
EXIT_CODE = ' || echo "exit code $?"'
# What differs from run to run: when events were parked, correlation ids, durations, hashes.
VARYING = (
    (re.compile(r'("(?:correlation_id|seconds)": )[^,\n]+'), r"\1<varies>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?\+00:00"), "<time>"),
    # chain hashes cover the events' random correlation ids
    (re.compile(r"head [0-9a-f]{16} at"), "head <varies> at"),
)


def command_paths(group: typer.Typer, prefix: str = "") -> list[str]:
    """Every command of ``group``, as typed after ``acctdomain projections``."""
    paths = [f"{prefix}{info.name}" for info in group.registered_commands]
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        paths += command_paths(sub.typer_instance, f"{prefix}{sub.name} ")
    return paths


def section(path: str, text: str) -> str:
    match = re.search(rf"^### `acctdomain projections {re.escape(path)}`$", text, re.M)
    assert match is not None, f"docs/cli.md has no ### `acctdomain projections {path}`"
    following = re.compile(r"^#+ ", re.M).search(text, match.end())
    return text[match.end() : following.start() if following else len(text)]


def documented_examples(text: str) -> list[tuple[str, str]]:
    """Each ``$ acctdomain ...`` line of the console blocks, with the output shown after it
    (in the block, or in the json block that follows it directly)."""
    examples: list[list[str]] = []
    blocks = list(FENCE.finditer(text))
    for block, following in zip(blocks, [*blocks[1:], None], strict=True):
        if block["lang"] != "console":
            continue
        for line in block["body"].splitlines():
            if line.startswith("$ "):
                examples.append([line[2:], ""])
            else:
                examples[-1][1] += line + "\n"
        between = text[block.end() : following.start()] if following else ""
        if following is not None and following["lang"] == "json" and not between.strip():
            examples[-1][1] += following["body"]
    return [(command, output) for command, output in examples]


def normalised(output: str) -> str:
    lines = "\n".join(line.rstrip() for line in output.rstrip("\n").splitlines())
    for pattern, replacement in VARYING:
        lines = pattern.sub(replacement, lines)
    return lines


def test_every_command_has_a_section_in_the_docs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    paths = command_paths(projections_app())
    assert len(paths) == 10
    for path in paths:
        body = section(path, text)
        invocations = [c for c, _ in documented_examples(body)]
        assert any(c.startswith(f"acctdomain projections {path} ") for c in invocations), path
        assert any("--json" in c.split() for c in invocations), f"{path}: no JSON example"


def test_the_documented_examples_print_what_the_docs_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = DOCS.read_text(encoding="utf-8")
    blocks = [block["body"] for block in FENCE.finditer(text) if block["lang"] == "python"]
    assert len(blocks) == 1
    namespace: dict[str, Any] = {"__name__": "docs_cli"}
    exec(compile(blocks[0], "docs/cli.md", "exec", dont_inherit=True), namespace)
    monkeypatch.chdir(tmp_path)
    namespace["make_book"]("book.db")
    assert account_id_for("crm:2") == UUID("e0fa5875-e0d2-5402-a1f1-8a5043d9fe0b")
    cli_app = build_app(namespace["plugins"]())
    examples = documented_examples(text)
    assert len(examples) >= 15
    for command, shown in examples:
        argv = shlex.split(command.removesuffix(EXIT_CODE))
        assert argv[0] == "acctdomain", command
        answer = re.search(r"\[y/N\]: (\w+)$", shown, re.M)
        result = runner.invoke(cli_app, argv[1:], input=f"{answer[1]}\n" if answer else None)
        output = result.output
        if command.endswith(EXIT_CODE) and result.exit_code:
            output += f"exit code {result.exit_code}\n"
        else:
            assert result.exit_code == 0, f"{command}\n{result.output}"
        assert normalised(output) == normalised(shown), command
        if shown.lstrip().startswith("{") and not command.endswith(EXIT_CODE):
            json.loads(shown)  # the JSON shown is JSON
