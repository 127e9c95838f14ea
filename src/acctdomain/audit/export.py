"""Exporting a store's whole log, with its chain, as JSON Lines; importing it into an empty store.

The file has one JSON object per line:

- line 1, the header: ``{"kind": "header", "format": "acctdomain-export", "version": 1,
  "scheme": ..., "exported_at": ...}``;
- one line per event, in notification order: ``id`` (notification id), ``originator_id``,
  ``version``, ``topic``, ``recorded_at`` and ``effective_at`` (read from the state, null if it
  has none), the state as ``state`` (its JSON value, when writing that value back gives the
  stored bytes exactly) or ``state_b64``, and ``hash`` (the event's chain hash, base64);
- the trailer: ``{"kind": "trailer", "events": ..., "head_position": ..., "head_hash": ...}``.

:func:`import_log` reads the file twice: first it checks every line and recomputes the chain
(a changed, missing, added or reordered line is refused with InvalidValue naming the line,
before anything is written), then it writes the events through the target store's recorder, in
order and in batches, with the notification ids they had, so the recorder recomputes the chain
and ends on the exported head hash.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NoReturn
from uuid import UUID, uuid4

import attrs
from eventsourcing.persistence import StoredEvent

from acctdomain.audit.chain import DIGEST_SIZE, GENESIS, link
from acctdomain.audit.readers import DEFAULT_PAGE_SIZE, ChainReader
from acctdomain.audit.scheme import CHAIN_SCHEME, b64decode, b64encode, decode_state, state_times
from acctdomain.audit.verify import (
    Progress,
    VerifyReport,
    _check_options,
    _open_reader,
    _verify,
)
from acctdomain.errors import InvalidValue, RuleViolation, StoreConfigurationError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "ExportSummary",
    "ImportSummary",
    "export_log",
    "import_log",
]

EXPORT_FORMAT = "acctdomain-export"
EXPORT_VERSION = 1
DEFAULT_BATCH_SIZE = 500

PathArg = str | os.PathLike[str]

# The settings of eventsourcing's JSON transcoder: a state written back with them is the
# stored bytes exactly when it was written by the transcoder.
_dump_state = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_dump_line = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_EVENT_FIELDS = frozenset(
    {"id", "originator_id", "version", "topic", "recorded_at", "effective_at", "hash"}
)
_TRAILER_FIELDS = frozenset({"kind", "events", "head_position", "head_hash"})
_HEADER_FIELDS = frozenset({"kind", "format", "version", "scheme", "exported_at"})


@attrs.frozen(kw_only=True)
class ExportSummary:
    """What :func:`export_log` wrote."""

    events: int
    """Event lines written."""
    head_position: int
    """Notification id of the last event (0 for an empty store)."""
    head_hash: bytes
    """Its chain hash (:data:`~acctdomain.audit.GENESIS` for an empty store)."""

    @property
    def head_hex(self) -> str:
        """``head_hash`` in hexadecimal."""
        return self.head_hash.hex()


@attrs.frozen(kw_only=True)
class ImportSummary:
    """What :func:`import_log` wrote, and the verification of the store afterwards."""

    events: int
    head_position: int
    head_hash: bytes
    """The imported store's head hash: the export's."""
    report: VerifyReport
    """``verify`` of the target after the import."""

    @property
    def head_hex(self) -> str:
        """``head_hash`` in hexadecimal."""
        return self.head_hash.hex()


# --- export --------------------------------------------------------------------------------------


def export_log(
    store: Any,
    destination: PathArg,
    *,
    progress: Progress | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    keys: PathArg | None = None,
) -> ExportSummary:
    """Write every event of ``store`` (an ``AccountService``, a recorder, a store URL or
    ``StoreSpec``, as :func:`~acctdomain.audit.verify` takes) with its chain hash to the JSON
    Lines file ``destination``.

    The store is read in pages of ``page_size`` events inside one read transaction (bounded
    memory; writers may go on appending), and ``progress(done, total)`` is called after each.
    Each event's link is recomputed on the way: a store whose chain is broken is refused
    (InvalidValue, field ``store``, naming the first problem) and no file is left behind. The
    file is written beside ``destination`` and moved there when complete.

    The file holds personal fields as they are stored: encrypted. Their keys are not in it;
    with ``keys`` (a path) they are written to that separate file (see
    :func:`~acctdomain.application.personal.write_keys`), which ``import_log`` takes too."""
    _check_options(progress, page_size)
    target = Path(destination)
    partial = target.with_name(f".{target.name}.{uuid4().hex[:8]}.partial")
    try:
        with _open_reader(store) as reader, open(partial, "x", encoding="utf-8") as file:
            summary = _export(reader, file, progress, page_size)
        os.replace(partial, target)
        if keys is not None:
            from acctdomain.application.personal import opened_key_store, write_keys

            with opened_key_store(store) as key_store:
                write_keys(key_store, keys)
    except OSError as error:
        raise InvalidValue("destination", f"cannot write {str(target)!r}: {error}") from error
    finally:
        if partial.exists():
            partial.unlink()
    return summary


def _export(
    reader: ChainReader, file: IO[str], progress: Progress | None, page_size: int
) -> ExportSummary:
    total = reader.count_events()
    if progress is not None:
        progress(0, total)
    header = {
        "kind": "header",
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "scheme": CHAIN_SCHEME,
        "exported_at": datetime.now(UTC).isoformat(),
    }
    write = file.write
    write(_dump_line(header) + "\n")
    previous, position, count = GENESIS, 0, 0
    if total and (not reader.has_chain() or reader.count_links() == 0):
        _refuse_broken(reader, page_size)
    pages = reader.pages(0, page_size) if reader.has_chain() else iter(())
    for page in pages:
        lines = []
        for row in page:
            notification_id, originator_id, version, topic, state, stored = row
            if originator_id is None or stored is None:
                _refuse_broken(reader, page_size)
            if link(previous, notification_id, originator_id, version, topic, state) != stored:
                _refuse_broken(reader, page_size)
            lines.append(_event_line(row))
            previous, position = stored, notification_id
        write("".join(lines))
        count += len(page)
        if progress is not None:
            progress(count, total)
    trailer = {
        "kind": "trailer",
        "events": count,
        "head_position": position,
        "head_hash": b64encode(previous),
    }
    write(_dump_line(trailer) + "\n")
    return ExportSummary(events=count, head_position=position, head_hash=previous)


def _refuse_broken(reader: ChainReader, page_size: int) -> NoReturn:
    report = _verify(reader, None, page_size)
    problem = report.problem
    assert problem is not None, "a link did not match but verify found nothing"
    raise InvalidValue(
        "store",
        f"the chain is broken at position {problem.position} ({problem.kind}: "
        f"{problem.detail}); only a store that verifies is exported",
    )


def _event_line(row: tuple[Any, ...]) -> str:
    notification_id, originator_id, version, topic, state, stored = row
    value = decode_state(state)
    recorded_at, effective_at = state_times(value)
    line: dict[str, Any] = {
        "id": notification_id,
        "originator_id": originator_id.decode("utf-8"),
        "version": version,
        "topic": topic.decode("utf-8"),
        "recorded_at": recorded_at,
        "effective_at": effective_at,
    }
    if value is not None and _dump_state(value).encode("utf-8") == state:
        line["state"] = value
    else:
        line["state_b64"] = b64encode(state)
    line["hash"] = b64encode(stored)
    return _dump_line(line) + "\n"


# --- reading an export ---------------------------------------------------------------------------


@attrs.frozen
class _Event:
    line: int
    notification_id: int
    originator_id: str
    version: int
    topic: str
    state: bytes
    stated_hash: bytes


@attrs.frozen
class _Trailer:
    line: int
    events: int
    head_position: int
    head_hash: bytes


def _refused(line: int, reason: str) -> InvalidValue:
    return InvalidValue(f"line {line}", reason)


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, JSON value) of each line of the file."""
    try:
        file = open(path, encoding="utf-8")  # noqa: SIM115 - closed by the with below
    except OSError as error:
        raise InvalidValue("source", f"cannot read {str(path)!r}: {error}") from error
    with file:
        number = 0
        try:
            for number, text in enumerate(file, start=1):
                if not text.strip():
                    raise _refused(number, "an empty line")
                if not text.endswith("\n"):
                    raise _refused(number, "the last line does not end: the file was cut short")
                try:
                    yield number, json.loads(text)
                except ValueError as error:
                    raise _refused(number, f"not JSON ({error})") from error
        except UnicodeDecodeError as error:
            raise _refused(number + 1, f"not UTF-8 text ({error})") from error


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_event(number: int, value: Any, uuid_ids: bool) -> _Event:
    if not isinstance(value, dict):
        raise _refused(number, "expected a JSON object")
    if "kind" in value:
        raise _refused(number, f"unexpected {value['kind']!r} line among the events")
    states = [name for name in ("state", "state_b64") if name in value]
    fields = set(value) - {"state", "state_b64"}
    if len(states) != 1 or fields != _EVENT_FIELDS:
        raise _refused(
            number,
            "expected the fields id, originator_id, version, topic, recorded_at, "
            "effective_at, hash and one of state or state_b64",
        )
    notification_id, originator_id = value["id"], value["originator_id"]
    version, topic = value["version"], value["topic"]
    if not _whole(notification_id) or notification_id < 1:
        raise _refused(number, f"id: expected a notification id >= 1, got {notification_id!r}")
    if not isinstance(originator_id, str) or not originator_id:
        raise _refused(number, f"originator_id: expected a text, got {originator_id!r}")
    if uuid_ids:
        try:
            canonical = UUID(originator_id).hex == originator_id
        except ValueError:
            canonical = False
        if not canonical:
            raise _refused(
                number,
                f"originator_id {originator_id!r} is not a UUID in 32 lowercase hexadecimal "
                "digits, and the target store keeps UUID ids",
            )
    if not _whole(version):
        raise _refused(number, f"version: expected a whole number, got {version!r}")
    if not isinstance(topic, str) or not topic:
        raise _refused(number, f"topic: expected a text, got {topic!r}")
    if "state" in value:
        state = _dump_state(value["state"]).encode("utf-8")
    else:
        decoded = b64decode(value["state_b64"])
        if decoded is None:
            raise _refused(number, "state_b64: expected base64")
        state = decoded
    times = state_times(decode_state(state))
    if times != (value["recorded_at"], value["effective_at"]):
        raise _refused(number, "recorded_at or effective_at is not what the event's state records")
    stated = b64decode(value["hash"])
    if stated is None or len(stated) != DIGEST_SIZE:
        raise _refused(number, f"hash: expected {DIGEST_SIZE} bytes in base64")
    return _Event(number, notification_id, originator_id, version, topic, state, stated)


def _parse_trailer(number: int, value: dict[str, Any]) -> _Trailer:
    if set(value) != _TRAILER_FIELDS:
        raise _refused(
            number, "expected the trailer's fields kind, events, head_position and head_hash"
        )
    events, position = value["events"], value["head_position"]
    head = b64decode(value["head_hash"])
    if not _whole(events) or events < 0 or not _whole(position) or position < 0:
        raise _refused(number, "events and head_position: expected whole numbers >= 0")
    if head is None or len(head) != DIGEST_SIZE:
        raise _refused(number, f"head_hash: expected {DIGEST_SIZE} bytes in base64")
    return _Trailer(number, events, position, head)


def _link_of(previous: bytes, event: _Event) -> bytes:
    return link(
        previous,
        event.notification_id,
        event.originator_id.encode("utf-8"),
        event.version,
        event.topic.encode("utf-8"),
        event.state,
    )


def _checked_events(path: Path, uuid_ids: bool) -> Iterator[_Event]:
    """The file's events, each checked against the chain recomputed from the genesis; the
    header and the trailer checked too. InvalidValue naming the first bad line."""
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise _refused(1, "the file is empty: expected the export's header")
    number, header = first
    if not isinstance(header, dict) or header.get("kind") != "header":
        raise _refused(number, "expected the export's header line")
    if header.get("format") != EXPORT_FORMAT or set(header) != _HEADER_FIELDS:
        raise _refused(number, f"not an {EXPORT_FORMAT} header")
    if header["version"] != EXPORT_VERSION or isinstance(header["version"], bool):
        raise _refused(number, f"unsupported version {header['version']!r} (this reads 1)")
    if header["scheme"] != CHAIN_SCHEME:
        raise _refused(number, f"unsupported chain scheme {header['scheme']!r}")
    previous, last_id, count = GENESIS, 0, 0
    item = next(lines, None)
    while item is not None:
        number, value = item
        if isinstance(value, dict) and value.get("kind") == "trailer":
            break
        event = _parse_event(number, value, uuid_ids)
        following = next(lines, None)
        if event.notification_id <= last_id:
            raise _refused(
                number,
                f"notification id {event.notification_id} is not above {last_id} of the "
                "line before: lines are out of order or repeated",
            )
        computed = _link_of(previous, event)
        if computed != event.stated_hash:
            raise _refused(number, _mismatch(computed, following, uuid_ids))
        yield event
        previous, last_id, count = computed, event.notification_id, count + 1
        item = following
    if item is None:
        raise _refused(number + 1, "no trailer line: the export was cut short")
    trailer = _parse_trailer(*item)
    if trailer.events != count:
        raise _refused(
            trailer.line,
            f"the trailer counts {trailer.events} events but the file has {count}: "
            "lines are missing or were added",
        )
    if (trailer.head_position, trailer.head_hash) != (last_id, previous):
        raise _refused(
            trailer.line,
            "the trailer's head is not the chain's last link: lines at the end are missing "
            "or the trailer was changed",
        )
    extra = next(lines, None)
    if extra is not None:
        raise _refused(extra[0], "a line after the trailer")


def _mismatch(computed: bytes, following: tuple[int, Any] | None, uuid_ids: bool) -> str:
    """Why a line's hash is not the link recomputed for it."""
    if following is not None:
        number, value = following
        try:
            after = _parse_event(number, value, uuid_ids)
        except InvalidValue:
            after = None
        if after is not None and _link_of(computed, after) == after.stated_hash:
            return "the hash on this line was changed (its event links to the next line)"
    return (
        "the event on this line does not link to the line before it: it was changed, or a "
        "line before it is missing or out of order"
    )


# --- import --------------------------------------------------------------------------------------


def import_log(
    source: PathArg,
    store: Any,
    *,
    progress: Progress | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    keys: PathArg | None = None,
) -> ImportSummary:
    """Import the export file ``source`` into ``store``, which must be empty (an
    ``AccountService``, an SQLite or PostgreSQL application recorder, a store URL or
    ``StoreSpec``).

    The whole file is checked first (InvalidValue naming the line, nothing written); a store
    that holds events or chain rows is refused with RuleViolation (field ``store``). The events
    are then written through the store's recorder in order, ``batch_size`` at a time
    (``progress(written, total)`` after each batch), keeping their notification ids, so the
    store's own chain ends on the exported head hash; the store is verified afterwards.

    ``keys`` is the key file written by ``export_log(..., keys=...)``: its keys go into the
    store before the events, so personal fields read as they did in the source. Without it they
    read ``"[erased]"`` there.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidValue("batch_size", f"expected a positive number, got {batch_size!r}")
    _check_options(progress, DEFAULT_PAGE_SIZE)
    path = Path(source)
    from acctdomain.application.personal import load_keys, opened_key_store, read_keys

    key_records = [] if keys is None else read_keys(keys)
    with _target(store) as writer:
        writer.check_empty()
        total = 0
        for _ in _checked_events(path, writer.uuid_ids):
            total += 1
        if key_records:  # before the events: a service following the store reads them
            owner = store if hasattr(store, "personal_data") else writer.recorder
            with opened_key_store(owner) as key_store:
                load_keys(key_store, key_records)
        if progress is not None:
            progress(0, total)
        written, head = 0, GENESIS
        batch: list[_Event] = []
        for event in _checked_events(path, writer.uuid_ids):
            head = event.stated_hash
            if batch and (
                len(batch) == batch_size or event.notification_id != batch[-1].notification_id + 1
            ):
                written += writer.write(batch)
                batch = []
                if progress is not None:
                    progress(written, total)
            batch.append(event)
        if batch:
            written += writer.write(batch)
            if progress is not None:
                progress(written, total)
        report = writer.verify()
    if not report.ok or report.checked != total or report.head_hash != head:
        found = report.problem
        raise StoreConfigurationError(
            "store",
            "the imported events do not verify in the target store to the exported head "
            + (f"({found.kind} at position {found.position})" if found else f"({report.head_hex})"),
        )
    return ImportSummary(
        events=total, head_position=report.head_position, head_hash=head, report=report
    )


# --- writing into the target ---------------------------------------------------------------------


class _Writer:
    """Writes checked events through one chained recorder, keeping their notification ids."""

    uuid_ids = False

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.next_id = 1

    def check_empty(self) -> None:
        with _open_reader(self.recorder) as reader:
            events, links = reader.count_events(), reader.count_links()
        if events or links:
            raise RuleViolation(
                "store",
                f"the target store holds {events} event(s) and {links} chain row(s): "
                "import only into an empty store",
            )

    def stored_events(self, batch: list[_Event]) -> list[StoredEvent]:
        return [
            StoredEvent(
                originator_id=UUID(event.originator_id) if self.uuid_ids else event.originator_id,
                originator_version=event.version,
                topic=event.topic,
                state=event.state,
            )
            for event in batch
        ]

    def write(self, batch: list[_Event]) -> int:
        """Write one batch of consecutive notification ids; how many were written."""
        expected = [event.notification_id for event in batch]
        written = list(self._insert(expected[0], self.stored_events(batch)) or ())
        if written != expected:
            raise StoreConfigurationError(
                "store",
                f"the target store gave notification ids {written[:1]}..{written[-1:]} to "
                f"events exported as {expected[0]}..{expected[-1]}: did another process write "
                "to it during the import?",
            )
        self.next_id = expected[-1] + 1
        return len(batch)

    def _insert(self, first_id: int, events: list[StoredEvent]) -> Any:
        raise NotImplementedError

    def verify(self) -> VerifyReport:
        with _open_reader(self.recorder) as reader:
            return _verify(reader, None, DEFAULT_PAGE_SIZE)


class _SQLiteWriter(_Writer):
    """SQLite gives a new row the rowid after the highest one. Where the export has a gap
    before a batch, a placeholder row takes the id just below the batch in the batch's own
    transaction, and is deleted before the commit: it is never seen, and has no chain row."""

    def _insert(self, first_id: int, events: list[StoredEvent]) -> Any:
        recorder = self.recorder
        if first_id == self.next_id:
            return recorder.insert_events(events)
        table = recorder.events_table_name
        placeholder = f"acctdomain-import-gap-{uuid4().hex}"
        with recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"INSERT INTO {table} (rowid, originator_id, originator_version, topic, state) "
                "VALUES (?, ?, 0, '', x'')",
                (first_id - 1, placeholder),
            )
            ids = recorder._insert_events(cursor, events)
            cursor.execute(f"DELETE FROM {table} WHERE rowid = ?", (first_id - 1,))
        recorder.commit_signal.committed()
        return ids


class _PostgresWriter(_Writer):
    """PostgreSQL takes notification ids from a sequence: it is set to the batch's first id
    before the batch is written."""

    def __init__(self, recorder: Any) -> None:
        super().__init__(recorder)
        datastore = recorder.datastore
        self.uuid_ids = datastore.originator_id_type == "uuid"
        self._table = f'"{datastore.schema}"."{recorder.events_table_name}"'

    def _insert(self, first_id: int, events: list[StoredEvent]) -> Any:
        recorder = self.recorder
        with recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s, false)",
                (self._table, first_id),
            )
        return recorder.insert_events(events)


@contextmanager
def _target(store: Any) -> Iterator[_Writer]:
    from acctdomain.application.stores import StoreSpec, parse_store

    if isinstance(store, str):
        store = parse_store(store)
    if isinstance(store, StoreSpec):
        if store.kind == "memory":
            raise _no_chain()
        from eventsourcing.persistence import InfrastructureFactory
        from eventsourcing.utils import Environment

        from acctdomain.application.service import AccountService

        with store.setting_up():
            factory: Any = InfrastructureFactory.construct(
                Environment(AccountService.name, store.environment())
            )
        try:
            yield _writer_for(factory.application_recorder())
        finally:
            factory.close()
        return
    yield _writer_for(getattr(store, "recorder", store))


def _no_chain() -> StoreConfigurationError:
    return StoreConfigurationError(
        "store", "an in-memory store keeps no hash chain: import into SQLite or PostgreSQL"
    )


def _writer_for(recorder: Any) -> _Writer:
    from eventsourcing.popo import POPOApplicationRecorder

    from acctdomain.application.sqlite_persistence import SubscribableSQLiteApplicationRecorder

    if isinstance(recorder, SubscribableSQLiteApplicationRecorder):
        return _SQLiteWriter(recorder)
    if isinstance(recorder, POPOApplicationRecorder):
        raise _no_chain()
    postgres = _postgres_recorder_class()
    if postgres is not None and isinstance(recorder, postgres):
        return _PostgresWriter(recorder)
    raise StoreConfigurationError(
        "store",
        "expected an application, a chained SQLite or PostgreSQL application recorder, or a "
        f"store URL or StoreSpec, got {type(recorder).__name__}",
    )


def _postgres_recorder_class() -> type[Any] | None:
    try:
        from acctdomain.application.postgres_persistence import (
            ChainedPostgresApplicationRecorder,
        )
    except ImportError:  # psycopg is not installed: there is no PostgreSQL store either
        return None
    return ChainedPostgresApplicationRecorder
