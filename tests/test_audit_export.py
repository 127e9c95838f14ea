"""Export of the whole log as JSON Lines and import into an empty store: the same events with the
same notification ids, the same head hash, verify passing and equal read models, across SQLite
and PostgreSQL; a corrupted export is refused before anything is written, naming the line."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from acctdomain import AccountService
from acctdomain.audit import CHAIN_SCHEME, GENESIS, export_log, import_log, verify
from acctdomain.demo.book import generate_book
from acctdomain.errors import InvalidValue, RuleViolation, StoreConfigurationError
from acctdomain.plugins import PluginHost
from tests.pg import drop_schema, new_schema_url
from tests.projection_fixtures import dump

NOW = datetime(2025, 6, 30, tzinfo=UTC)


class Stores:
    """Fresh store URLs on both backends; PostgreSQL schemas are dropped at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.schemas: list[str] = []

    def new(self, kind: str) -> str:
        if kind == "sqlite":
            return str(self.folder / f"{uuid4().hex[:8]}.db")
        url, schema = new_schema_url()
        self.schemas.append(schema)
        return url


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    made = Stores(tmp_path)
    try:
        yield made
    finally:
        for schema in made.schemas:
            drop_schema(schema)


def service_on(url: str) -> AccountService:
    return AccountService(url, plugins=PluginHost(entry_points=False))


def write_book(url: str, *, gap: bool = False) -> None:
    service = service_on(url)
    try:
        generate_book(service, accounts=4, seed=11, now=NOW)
        if gap:  # a rolled-back insert burns a PostgreSQL sequence value: a gap in the ids
            first = service.recorder.select_notifications(start=None, limit=1)[0]
            clash = StoredEvent(first.originator_id, 1, first.topic, first.state)
            with pytest.raises(IntegrityError):
                service.recorder.insert_events([clash])
        generate_book(service, accounts=2, seed=12, now=NOW)
    finally:
        service.close()


def events_of(url: str) -> list[tuple[Any, ...]]:
    service = service_on(url)
    try:
        return [
            (n.id, n.originator_id, n.originator_version, n.topic, bytes(n.state))
            for n in service.recorder.select_notifications(start=None, limit=1_000_000)
        ]
    finally:
        service.close()


def read_models_of(url: str) -> dict[str, Any]:
    service = service_on(url)
    try:
        service.projections.rebuild()
        return dump(service.projections)
    finally:
        service.close()


ROUTES = [
    ("sqlite", "sqlite"),
    pytest.param("sqlite", "postgres", marks=pytest.mark.postgres),
    pytest.param("postgres", "sqlite", marks=pytest.mark.postgres),
    pytest.param("postgres", "postgres", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize(("source_kind", "target_kind"), ROUTES)
def test_an_import_reproduces_the_events_the_chain_and_the_read_models(
    stores: Stores, tmp_path: Path, source_kind: str, target_kind: str
) -> None:
    source, target = stores.new(source_kind), stores.new(target_kind)
    write_book(source, gap=source_kind == "postgres")
    path = tmp_path / "book.jsonl"

    # Personal fields are encrypted per data subject: their keys travel in a file of their own.
    exported = export_log(source, path, keys=tmp_path / "keys.json")
    imported = import_log(path, target, keys=tmp_path / "keys.json")

    source_report, target_report = verify(source), verify(target)
    assert target_report.ok
    assert imported.head_hash == exported.head_hash == source_report.head_hash
    assert target_report.head_hash == source_report.head_hash
    assert imported.events == exported.events == source_report.total == target_report.total
    events = events_of(source)
    assert events_of(target) == events
    if source_kind == "postgres":  # the gap is kept: the chain covers the ids
        ids = [event[0] for event in events]
        assert ids != list(range(1, len(ids) + 1))
    assert read_models_of(target) == read_models_of(source)


def test_the_file_has_a_header_one_line_per_event_and_a_trailer(
    stores: Stores, tmp_path: Path
) -> None:
    source = stores.new("sqlite")
    write_book(source)
    path = tmp_path / "book.jsonl"
    summary = export_log(source, path)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    header, events, trailer = lines[0], lines[1:-1], lines[-1]

    assert header["kind"] == "header"
    assert (header["format"], header["version"], header["scheme"]) == (
        "acctdomain-export",
        1,
        CHAIN_SCHEME,
    )
    assert trailer == {
        "kind": "trailer",
        "events": summary.events,
        "head_position": summary.head_position,
        "head_hash": lines[-2]["hash"],
    }
    assert len(events) == summary.events
    stored = events_of(source)
    first = events[0]
    assert (first["id"], first["originator_id"], first["version"], first["topic"]) == (
        stored[0][0],
        stored[0][1].hex,
        stored[0][2],
        stored[0][3],
    )
    assert first["state"]["name"]  # a JSON state is shown as JSON
    assert first["recorded_at"] == first["state"]["timestamp"]["_data_"]
    assert first["effective_at"] == first["state"]["effective_at"]["_data_"]
    assert summary.head_hex == verify(source).head_hex


def test_a_state_that_is_not_json_travels_as_base64(stores: Stores, tmp_path: Path) -> None:
    source, target = stores.new("sqlite"), stores.new("sqlite")
    service = service_on(source)
    try:
        service.recorder.insert_events(
            [
                StoredEvent(uuid4(), 1, "some.module:Binary", b"\x00\xffbinary"),
                StoredEvent(uuid4(), 1, "some.module:Spaced", b'{"a": 1}'),  # not as re-dumped
                StoredEvent("a-text-id", 1, "some.module:Text", b"{}"),
            ]
        )
    finally:
        service.close()
    path = tmp_path / "log.jsonl"
    export_log(source, path)
    lines = [json.loads(line) for line in path.read_text().splitlines()[1:-1]]
    assert ["state_b64" in line for line in lines] == [True, True, False]
    assert lines[2]["recorded_at"] is None

    import_log(path, target)
    assert raw_events(target) == raw_events(source)


def raw_events(path: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT rowid, * FROM stored_events ORDER BY rowid").fetchall()
    connection.close()
    return rows


def test_progress_is_reported_while_exporting_and_importing(stores: Stores, tmp_path: Path) -> None:
    source, target = stores.new("sqlite"), stores.new("sqlite")
    service = service_on(source)
    for name in ("Acme", "Globex", "Initech"):
        service.open_account(
            name=name,
            segment="smb",
            industry="retail",
            currency="EUR",
            manager="amy",
            manager_type="sales",
            actor="amy",
        )
    service.close()
    path = tmp_path / "log.jsonl"
    exported: list[tuple[int, int]] = []
    imported: list[tuple[int, int]] = []
    export_log(source, path, page_size=2, progress=lambda d, t: exported.append((d, t)))
    import_log(path, target, batch_size=2, progress=lambda d, t: imported.append((d, t)))
    assert exported == [(0, 3), (2, 3), (3, 3)]
    assert imported == [(0, 3), (2, 3), (3, 3)]


def test_an_empty_store_exports_and_imports(stores: Stores, tmp_path: Path) -> None:
    source, target = stores.new("sqlite"), stores.new("sqlite")
    path = tmp_path / "empty.jsonl"
    summary = export_log(source, path)
    assert (summary.events, summary.head_hash) == (0, GENESIS)
    assert import_log(path, target).events == 0


# --- refusals ------------------------------------------------------------------------------------


@pytest.fixture
def export(stores: Stores, tmp_path: Path) -> tuple[Path, list[str]]:
    source = stores.new("sqlite")
    service = service_on(source)
    for name in ("Acme", "Globex", "Initech", "Umbrella"):
        service.open_account(
            name=name,
            segment="smb",
            industry="retail",
            currency="EUR",
            manager="amy",
            manager_type="sales",
            actor="amy",
        )
    service.close()
    path = tmp_path / "log.jsonl"
    export_log(source, path)
    return path, path.read_text(encoding="utf-8").splitlines(keepends=True)


def _edit(line: str, **changes: Any) -> str:
    return json.dumps({**json.loads(line), **changes}) + "\n"


def _rename(lines: list[str]) -> list[str]:
    return [lines[0], lines[1], lines[2].replace("Globex", "Glob3x"), *lines[3:]]


def _swap(lines: list[str]) -> list[str]:
    return [lines[0], lines[2], lines[1], *lines[3:]]


CORRUPTIONS: list[tuple[str, Callable[[list[str]], list[str]], int, str]] = [
    ("a changed line", _rename, 3, "does not link to the line before"),
    ("a missing line", lambda ls: [*ls[:2], *ls[3:]], 3, "does not link to the line before"),
    (
        "a bad hash",
        lambda ls: [*ls[:2], _edit(ls[2], hash="A" * 43 + "="), *ls[3:]],
        3,
        "hash on this line was changed",
    ),
    ("swapped lines", _swap, 2, "out of order"),
    ("a repeated line", lambda ls: [ls[0], ls[1], *ls[1:]], 3, "is not above"),
    ("a missing last event", lambda ls: [*ls[:-2], ls[-1]], 5, "lines are missing"),
    ("a missing trailer", lambda ls: ls[:-1], 6, "no trailer"),
    ("a wrong count", lambda ls: [*ls[:-1], _edit(ls[-1], events=9)], 6, "counts 9 events"),
    ("a line after the trailer", lambda ls: [*ls, ls[1]], 7, "after the trailer"),
    ("no header", lambda ls: ls[1:], 1, "header"),
    ("an unknown version", lambda ls: [_edit(ls[0], version=2), *ls[1:]], 1, "version"),
    ("another scheme", lambda ls: [_edit(ls[0], scheme="x"), *ls[1:]], 1, "scheme"),
    ("an empty line", lambda ls: [ls[0], "\n", *ls[1:]], 2, "empty line"),
    ("not JSON", lambda ls: [ls[0], "{oops\n", *ls[1:]], 2, "not JSON"),
    ("a cut line", lambda ls: [*ls[:-1], ls[-1].rstrip("\n")], 6, "cut short"),
    (
        "a changed recorded time",
        lambda ls: [ls[0], _edit(ls[1], recorded_at="2020-01-01T00:00:00+00:00"), *ls[2:]],
        2,
        "recorded_at",
    ),
    (
        "a missing field",
        lambda ls: [ls[0], json.dumps({"id": 1}) + "\n", *ls[2:]],
        2,
        "expected the fields",
    ),
    ("a bad id", lambda ls: [ls[0], _edit(ls[1], id=0), *ls[2:]], 2, "notification id"),
    ("a bad version", lambda ls: [ls[0], _edit(ls[1], version="1"), *ls[2:]], 2, "version"),
    ("a bad topic", lambda ls: [ls[0], _edit(ls[1], topic=""), *ls[2:]], 2, "topic"),
    ("a bad originator", lambda ls: [ls[0], _edit(ls[1], originator_id=7), *ls[2:]], 2, "origin"),
    ("an event that is a list", lambda ls: [ls[0], "[]\n", *ls[2:]], 2, "JSON object"),
    ("a header where an event is", lambda ls: [ls[0], ls[0], *ls[2:]], 2, "unexpected"),
    (
        "bad base64 state",
        lambda ls: [ls[0], _b64_state(ls[1], "!!"), *ls[2:]],
        2,
        "state_b64",
    ),
    ("an empty file", lambda ls: [], 1, "empty"),
]


def _b64_state(line: str, text: str) -> str:
    value = json.loads(line)
    del value["state"]
    return json.dumps({**value, "state_b64": text}) + "\n"


@pytest.mark.parametrize(
    ("case", "corrupt", "line", "words"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS]
)
def test_a_corrupted_export_is_refused_before_anything_is_written(
    stores: Stores,
    export: tuple[Path, list[str]],
    case: str,
    corrupt: Callable[[list[str]], list[str]],
    line: int,
    words: str,
) -> None:
    path, lines = export
    path.write_text("".join(corrupt(lines)), encoding="utf-8")
    target = stores.new("sqlite")

    with pytest.raises(InvalidValue) as refused:
        import_log(path, target)

    assert refused.value.field == f"line {line}", (case, str(refused.value))
    assert words in refused.value.reason, case
    assert verify(target).total == 0


@pytest.mark.postgres
def test_a_refused_import_writes_nothing_to_postgres(
    stores: Stores, export: tuple[Path, list[str]]
) -> None:
    path, lines = export
    path.write_text("".join(_rename(lines)), encoding="utf-8")
    target = stores.new("postgres")
    with pytest.raises(InvalidValue) as refused:
        import_log(path, target)
    assert refused.value.field == "line 3"
    assert verify(target).total == 0


@pytest.mark.postgres
def test_text_ids_cannot_go_into_a_store_of_uuid_ids(stores: Stores, tmp_path: Path) -> None:
    source, target = stores.new("sqlite"), stores.new("postgres")
    service = service_on(source)
    service.recorder.insert_events([StoredEvent("a-text-id", 1, "some.module:Text", b"{}")])
    service.close()
    path = tmp_path / "log.jsonl"
    export_log(source, path)
    with pytest.raises(InvalidValue) as refused:
        import_log(path, target)
    assert refused.value.field == "line 2"
    assert "UUID" in refused.value.reason


def test_a_file_that_is_not_utf8_or_missing_is_refused(stores: Stores, tmp_path: Path) -> None:
    target = stores.new("sqlite")
    with pytest.raises(InvalidValue) as refused:
        import_log(tmp_path / "missing.jsonl", target)
    assert refused.value.field == "source"
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\n")
    with pytest.raises(InvalidValue) as refused:
        import_log(binary, target)
    assert refused.value.field == "line 1"


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_store_that_is_not_empty_is_refused(
    stores: Stores, export: tuple[Path, list[str]], kind: str
) -> None:
    path, _ = export
    target = stores.new(kind)
    service = service_on(target)
    service.open_account(
        name="Existing",
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        actor="amy",
    )
    try:
        with pytest.raises(RuleViolation) as refused:
            import_log(path, service)
        assert refused.value.field == "store"
        assert "empty store" in refused.value.reason
        assert verify(service).total == 1
    finally:
        service.close()


def test_an_import_into_a_running_service_works(
    stores: Stores, export: tuple[Path, list[str]]
) -> None:
    path, _ = export
    service = service_on(stores.new("sqlite"))
    try:
        summary = import_log(path, service.recorder)
        assert summary.report.ok
        notifications = service.recorder.select_notifications(start=None, limit=10)
        names = [service.get_account(n.originator_id).name for n in notifications]
        assert names == ["Acme", "Globex", "Initech", "Umbrella"]
    finally:
        service.close()


def test_in_memory_stores_are_refused(export: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, _ = export
    memory = service_on("memory:")
    for target in ("memory:", memory):
        with pytest.raises(StoreConfigurationError):
            import_log(path, target)
    with pytest.raises(StoreConfigurationError):
        export_log(memory, tmp_path / "out.jsonl")
    with pytest.raises(StoreConfigurationError):
        import_log(path, object())


def test_a_broken_store_is_not_exported(stores: Stores, tmp_path: Path) -> None:
    source = stores.new("sqlite")
    write_book(source)
    with sqlite3.connect(source) as connection:
        connection.execute("UPDATE stored_events SET state = state || ' ' WHERE rowid = 5")
    connection.close()
    out = tmp_path / "out.jsonl"
    with pytest.raises(InvalidValue) as refused:
        export_log(source, out)
    assert refused.value.field == "store"
    assert "broken at position 5" in refused.value.reason
    assert list(tmp_path.glob("*out.jsonl*")) == []


def test_bad_options_are_refused(export: tuple[Path, list[str]], stores: Stores) -> None:
    path, _ = export
    target = stores.new("sqlite")
    for options in ({"batch_size": 0}, {"batch_size": True}, {"progress": "yes"}):
        with pytest.raises(InvalidValue):
            import_log(path, target, **options)
    with pytest.raises(InvalidValue):
        export_log(target, path.with_name("x.jsonl"), page_size=0)
    with pytest.raises(InvalidValue) as refused:
        export_log(target, path.parent / "no" / "such" / "dir.jsonl")
    assert refused.value.field == "destination"
