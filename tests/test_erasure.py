"""Erasure of personal data: personal fields are encrypted per data subject, erasing a subject
destroys its key. The events stay and verify, every reader shows the data as erased, and nothing
readable is left in the SQLite file (grepped raw) nor in any PostgreSQL row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from psycopg import sql

from acctdomain import AccountService
from acctdomain.application.personal import (
    ERASED,
    PERSONAL_FIELDS,
    KeyRecord,
    PersonalData,
    Sealed,
    contact_notes_subject_id,
    read_keys,
    respondent_subject_id,
)
from acctdomain.application.stores import parse_store
from acctdomain.audit import export_log, import_log, timeline, verify
from acctdomain.builtin.stakeholders import stakeholder_map
from acctdomain.domain import events as ev
from acctdomain.domain.values import NpsScore
from acctdomain.errors import (
    AccountNotFound,
    InvalidTransition,
    InvalidValue,
    UnknownReference,
)
from acctdomain.plugins import PluginHost
from tests.conftest import FakeClock
from tests.pg import drop_schema, new_schema_url

KEPT = "Kept-Karla-4711"
GONE = "Gone-Gustav-0815"
GONE_TITLE = "Chief-Secret-Officer-3141"
SUMMARY = "Lunch-with-Gustav-about-his-divorce-2718"
COMMENT = "Gustav-says-pricing-hurts-1618"
RESPONDENT = "Gustav Respondent-1414"
MARKERS_GONE = (GONE, GONE_TITLE, SUMMARY, COMMENT, RESPONDENT)


def new_service(url: str, clock: FakeClock | None = None, **kwargs: Any) -> AccountService:
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return AccountService(url, plugins=PluginHost(entry_points=False), **extra, **kwargs)


def open_account(service: AccountService, name: str = "Acme") -> UUID:
    return service.open_account(
        name=name,
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        actor="amy",
    ).account_id


@pytest.fixture
def book(service: AccountService) -> tuple[AccountService, UUID, UUID, UUID]:
    """An account with one stakeholder to keep and one to erase, a contact with the second, a
    survey answer from a respondent."""
    account = open_account(service)
    kept = service.add_stakeholder(
        account, name=KEPT, title="CTO", role="champion", actor="amy"
    ).entity_id
    gone = service.add_stakeholder(
        account, name=GONE, title=GONE_TITLE, role="economic_buyer", actor="amy"
    ).entity_id
    assert kept is not None
    assert gone is not None
    service.log_contact(
        account, channel="meeting", direction="outbound", summary=SUMMARY,
        stakeholder_ids=[gone], actor="amy",
    )  # fmt: skip
    service.record_feedback(
        account, score=NpsScore(4), respondent=RESPONDENT, comment=COMMENT, actor="amy"
    )
    return service, account, kept, gone


def stored_states(service: AccountService) -> list[bytes]:
    return [
        bytes(n.state) for n in service.recorder.select_notifications(start=None, limit=1_000_000)
    ]


# --- what is stored, and what reads back ------------------------------------------------------


def test_personal_fields_are_stored_encrypted_and_read_back_exactly(
    book: tuple[AccountService, UUID, UUID, UUID],
) -> None:
    service, account, kept, gone = book
    states = b"".join(stored_states(service))
    for marker in (KEPT, *MARKERS_GONE):
        assert marker.encode() not in states
    history = service.history(account)
    added = [e for e in history if isinstance(e, ev.StakeholderAdded)]
    assert [(e.name, e.title) for e in added] == [(KEPT, "CTO"), (GONE, GONE_TITLE)]
    contact = next(e for e in history if isinstance(e, ev.ContactLogged))
    assert contact.summary == SUMMARY
    feedback = next(e for e in history if isinstance(e, ev.FeedbackRecorded))
    assert (feedback.respondent, feedback.comment) == (RESPONDENT, COMMENT)
    names = {p.stakeholder_id: p.name for p in service.get_account(account).stakeholders}
    assert names == {kept: KEPT, gone: GONE}


def test_empty_texts_need_no_key_and_stay_empty(service: AccountService) -> None:
    account = open_account(service)
    service.log_contact(account, channel="phone", direction="inbound", actor="amy")
    service.record_feedback(account, score=NpsScore(9), actor="amy")
    assert service.personal_data.store.records() == []
    contact, feedback = service.history(account)[1:]
    assert isinstance(contact, ev.ContactLogged)
    assert contact.summary == ""
    assert isinstance(feedback, ev.FeedbackRecorded)
    assert feedback.comment == ""


def test_the_projections_fast_decoder_opens_personal_fields(
    book: tuple[AccountService, UUID, UUID, UUID],
) -> None:
    service, account, kept, gone = book
    service.catch_up()
    people = stakeholder_map(
        service.read_model("stakeholders"), account, today=service.clock().date()
    ).people
    assert {(p.stakeholder_id, p.name, p.title) for p in people} == {
        (kept, KEPT, "CTO"),
        (gone, GONE, GONE_TITLE),
    }


# --- erasure ------------------------------------------------------------------------------------


def test_erasure_shows_the_data_as_erased_everywhere_and_verify_passes(
    book: tuple[AccountService, UUID, UUID, UUID], store_url: str
) -> None:
    service, account, kept, gone = book
    before = stored_states(service)
    result = service.erase_subject(account, subject_id=gone, reason="asked", actor="dpo")
    assert result.version == 6

    after = stored_states(service)
    assert after[: len(before)] == before  # the events stay as they were
    erasure = service.history(account)[-1]
    assert isinstance(erasure, ev.SubjectErased)
    assert (erasure.subject_id, erasure.reason, erasure.actor) == (gone, "asked", "dpo")
    people = {p.stakeholder_id: p for p in service.get_account(account).stakeholders}
    assert (people[gone].name, people[gone].title) == (ERASED, ERASED)
    assert (people[kept].name, people[kept].title) == (KEPT, "CTO")
    contact = next(e for e in service.history(account) if isinstance(e, ev.ContactLogged))
    assert contact.summary == ERASED
    # ... as it was known before the erasure, too: the key is gone for every reader
    old = service.get_account_at_version(account, 3)
    assert {p.name for p in old.stakeholders} == {KEPT, ERASED}

    service.catch_up()
    row = service.read_model("stakeholders").get("stakeholders", account.hex)
    assert row is not None
    assert (row["people"][gone.hex]["name"], row["people"][gone.hex]["title"]) == (ERASED, ERASED)
    assert row["people"][kept.hex]["name"] == KEPT

    lines = [entry.description for entry in timeline(service, account)]
    text = "\n".join(lines)
    assert GONE not in text
    assert SUMMARY not in text
    assert KEPT in text
    assert lines[-1] == "Personal data erased: subject '[erased]' (asked)"

    if store_url != "memory:":
        assert verify(store_url).ok


def test_a_fresh_service_and_a_rebuild_read_the_erasure(
    book: tuple[AccountService, UUID, UUID, UUID], store_url: str
) -> None:
    service, account, kept, gone = book
    service.erase_subject(account, subject_id=gone, actor="dpo")
    other = service if store_url == "memory:" else new_service(store_url)
    try:
        other.projections.rebuild()
        row = other.read_model("stakeholders").get("stakeholders", account.hex)
        assert row is not None
        assert row["people"][gone.hex]["name"] == ERASED
        assert row["people"][kept.hex]["name"] == KEPT
        added = [e for e in other.history(account) if isinstance(e, ev.StakeholderAdded)]
        assert [e.name for e in added] == [KEPT, ERASED]
    finally:
        if other is not service:
            other.close()


def test_snapshots_hold_no_plaintext_and_show_the_erasure(
    service: AccountService, store_url: str
) -> None:
    account = open_account(service)
    person = service.add_stakeholder(
        account, name=GONE, title=GONE_TITLE, role="champion", actor="amy"
    ).entity_id
    assert person is not None
    for _ in range(19):  # to version 21: a snapshot at 20
        service.log_contact(account, channel="email", direction="outbound", actor="amy")
    assert service.snapshots is not None
    snapshots: list[Any] = list(service.snapshots.get(account))
    assert snapshots, "a snapshot was taken"
    stored = service.snapshots.recorder.select_events(account)
    assert all(GONE.encode() not in bytes(s.state) for s in stored)
    assert snapshots[-1].state["_stakeholders"][person].name == GONE

    service.erase_subject(account, subject_id=person, actor="dpo")
    snapshot: Any = next(iter(service.snapshots.get(account)))
    assert snapshot.state["_stakeholders"][person].name == ERASED
    state = service.get_account(account)  # loaded from the snapshot
    assert [(p.name, p.title) for p in state.stakeholders] == [(ERASED, ERASED)]


def test_erasing_twice_changes_nothing(book: tuple[AccountService, UUID, UUID, UUID]) -> None:
    service, account, _, gone = book
    first = service.erase_subject(account, subject_id=gone, actor="dpo")
    count = len(stored_states(service))
    again = service.erase_subject(account, subject_id=gone, actor="dpo")
    assert again.version == first.version
    assert len(stored_states(service)) == count


def test_erasure_after_a_lost_event_records_it(
    book: tuple[AccountService, UUID, UUID, UUID],
) -> None:
    service, account, _, gone = book
    service.personal_data.erase(gone)  # the key went, the event was never saved (a crash)
    result = service.erase_subject(account, subject_id=gone, actor="dpo")
    assert result.version == 6
    assert isinstance(service.history(account)[-1], ev.SubjectErased)


def test_bad_erasures_are_refused_and_append_nothing(
    book: tuple[AccountService, UUID, UUID, UUID],
) -> None:
    service, account, kept, _ = book
    other = open_account(service, "Globex")
    count = len(stored_states(service))
    with pytest.raises(UnknownReference) as unknown:
        service.erase_subject(account, subject_id=uuid4(), actor="dpo")
    assert unknown.value.field == "subject_id"
    with pytest.raises(UnknownReference):  # the subject is another account's
        service.erase_subject(other, subject_id=kept, actor="dpo")
    with pytest.raises(InvalidValue) as not_uuid:
        service.erase_subject(account, subject_id=kept.hex, actor="dpo")  # type: ignore[arg-type]
    assert not_uuid.value.field == "subject_id"
    with pytest.raises(InvalidValue) as no_actor:
        service.erase_subject(account, subject_id=kept)  # type: ignore[call-arg]
    assert no_actor.value.field == "actor"
    with pytest.raises(AccountNotFound):
        service.erase_subject(uuid4(), subject_id=kept, actor="dpo")
    with pytest.raises(InvalidValue):
        service.erase_subject(account, subject_id=kept, reason=3, actor="dpo")  # type: ignore[arg-type]
    assert len(stored_states(service)) == count
    assert service.personal_data.store.get(kept) is not None
    assert service.get_account(account).stakeholders[0].name == KEPT


def test_nothing_personal_about_an_erased_subject_is_recorded_again(
    book: tuple[AccountService, UUID, UUID, UUID],
) -> None:
    service, account, kept, gone = book
    service.erase_subject(account, subject_id=gone, actor="dpo")
    respondent = respondent_subject_id(account, RESPONDENT)
    service.erase_subject(account, subject_id=respondent, actor="dpo")
    count = len(stored_states(service))
    with pytest.raises(InvalidTransition):
        service.update_stakeholder(account, stakeholder_id=gone, title="CEO", actor="amy")
    with pytest.raises(InvalidTransition):
        service.log_contact(
            account, channel="phone", direction="inbound", stakeholder_ids=[kept, gone],
            actor="amy",
        )  # fmt: skip
    with pytest.raises(InvalidTransition):  # the same person, however the name is spaced
        service.record_feedback(
            account, score=NpsScore(9), respondent=" gustav  respondent-1414", comment="ok",
            actor="amy",
        )  # fmt: skip
    assert len(stored_states(service)) == count
    service.remove_stakeholder(account, stakeholder_id=gone, actor="amy")  # nothing personal


def test_a_respondent_is_erased_on_its_own(service: AccountService) -> None:
    account = open_account(service)
    service.record_feedback(
        account, score=NpsScore(3), respondent=RESPONDENT, comment=COMMENT, actor="amy"
    )
    service.record_feedback(
        account, score=NpsScore(10), respondent="Other", comment="great", actor="amy"
    )
    service.erase_subject(
        account, subject_id=respondent_subject_id(account, RESPONDENT), actor="dpo"
    )
    answers = [
        (e.respondent, e.comment)
        for e in service.history(account)
        if isinstance(e, ev.FeedbackRecorded)
    ]
    assert answers == [(ERASED, ERASED), ("Other", "great")]
    assert service.get_account(account).latest_nps == NpsScore(10)


def test_a_contact_summary_needs_every_participant(service: AccountService) -> None:
    account = open_account(service)
    first = service.add_stakeholder(account, name="A", role="champion", actor="amy").entity_id
    second = service.add_stakeholder(account, name="B", role="influencer", actor="amy").entity_id
    assert first is not None
    assert second is not None
    service.log_contact(
        account, channel="meeting", direction="outbound", summary="both", actor="amy",
        stakeholder_ids=[first, second],
    )  # fmt: skip
    service.log_contact(
        account, channel="meeting", direction="outbound", summary="first", actor="amy",
        stakeholder_ids=[first],
    )  # fmt: skip
    service.log_contact(
        account, channel="phone", direction="inbound", summary="nobody listed", actor="amy"
    )
    service.erase_subject(account, subject_id=second, actor="dpo")
    summaries = [e.summary for e in service.history(account) if isinstance(e, ev.ContactLogged)]
    assert summaries == [ERASED, "first", "nobody listed"]
    service.erase_subject(account, subject_id=contact_notes_subject_id(account), actor="dpo")
    summaries = [e.summary for e in service.history(account) if isinstance(e, ev.ContactLogged)]
    assert summaries == [ERASED, "first", ERASED]


def test_personal_fields_are_declared_in_one_place() -> None:
    declared = {(cls.__name__, fields.fields) for cls, fields in PERSONAL_FIELDS.items()}
    assert declared == {
        ("StakeholderAdded", ("name", "title")),
        ("StakeholderUpdated", ("title",)),
        ("FeedbackRecorded", ("respondent", "comment")),
        ("ContactLogged", ("summary",)),
    }


def test_a_ciphertext_that_does_not_open_is_an_error(service: AccountService) -> None:
    account = open_account(service)
    person = service.add_stakeholder(account, name="A", role="champion", actor="amy").entity_id
    assert person is not None
    sealed = service.personal_data.seal("name", "A", (person,), account)
    assert isinstance(sealed, Sealed)
    assert service.personal_data.open(sealed) == "A"
    forged = Sealed("title", sealed.subjects, sealed.nonce, sealed.ciphertext)
    with pytest.raises(InvalidValue) as refused:
        service.personal_data.open(forged)
    assert refused.value.field == "title"


def test_a_key_store_must_be_attached() -> None:
    with pytest.raises(Exception, match="not attached"):
        PersonalData().store  # noqa: B018


# --- nothing readable left: the raw SQLite file, every PostgreSQL row ------------------------


def raw_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))


def test_nothing_readable_remains_in_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    service = new_service(str(path), project_synchronously=True)
    account = open_account(service)
    kept = service.add_stakeholder(account, name=KEPT, role="champion", actor="amy").entity_id
    gone = service.add_stakeholder(
        account, name=GONE, title=GONE_TITLE, role="economic_buyer", actor="amy"
    ).entity_id
    assert kept is not None
    assert gone is not None
    service.log_contact(
        account, channel="meeting", direction="outbound", summary=SUMMARY,
        stakeholder_ids=[gone], actor="amy",
    )  # fmt: skip
    for _ in range(20):  # a snapshot, and read-model rows rewritten many times
        service.update_stakeholder(account, stakeholder_id=gone, title=GONE_TITLE + "x", actor="a")
        service.update_stakeholder(account, stakeholder_id=gone, title=GONE_TITLE, actor="a")
    key = service.personal_data.store.get(gone)
    assert key is not None
    assert key.key is not None
    events = len(stored_states(service))
    assert GONE.encode() in raw_bytes(path)  # the read model held it: the grep can find it

    service.erase_subject(account, subject_id=gone, reason="asked", actor="dpo")
    service.close()

    data = raw_bytes(path)
    for marker in MARKERS_GONE[:3]:
        assert marker.encode() not in data, marker
    assert key.key not in data
    assert KEPT.encode() in data  # the kept stakeholder is still in its read model
    report = verify(str(path))
    assert report.ok
    assert report.total == events + 1
    reopened = new_service(str(path))
    try:
        names = {p.stakeholder_id: p.name for p in reopened.get_account(account).stakeholders}
        assert names == {kept: KEPT, gone: ERASED}
    finally:
        reopened.close()


@pytest.mark.postgres
def test_no_postgres_row_holds_the_erased_data() -> None:
    url, schema = new_schema_url()
    try:
        service = new_service(url, project_synchronously=True)
        account = open_account(service)
        gone = service.add_stakeholder(
            account, name=GONE, title=GONE_TITLE, role="economic_buyer", actor="amy"
        ).entity_id
        assert gone is not None
        service.log_contact(
            account, channel="meeting", direction="outbound", summary=SUMMARY,
            stakeholder_ids=[gone], actor="amy",
        )  # fmt: skip
        key = service.personal_data.store.get(gone)
        assert key is not None
        assert key.key is not None
        assert any(GONE in row for row in all_rows(schema))  # the read model holds it
        service.erase_subject(account, subject_id=gone, actor="dpo")
        service.close()

        rows = all_rows(schema)
        for marker in (GONE, GONE_TITLE, SUMMARY, key.key.hex()):
            for encoded in (marker, marker.encode().hex()):
                assert not any(encoded in row for row in rows), marker
        assert verify(url).ok
    finally:
        drop_schema(schema)


def all_rows(schema: str) -> list[str]:
    """Every row of every table of the schema, as text (bytea in hex)."""
    from tests.pg import POSTGRES_URL

    with parse_store(POSTGRES_URL).connect() as connection:
        tables = [
            str(row[0])
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        ]
        rows: list[str] = []
        for table in tables:
            query = sql.SQL("SELECT t::text FROM {}.{} t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            rows += [str(row[0]) for row in connection.execute(query)]
    return rows


# --- export and import --------------------------------------------------------------------------


def test_keys_travel_only_in_their_own_file(tmp_path: Path) -> None:
    source = str(tmp_path / "source.db")
    service = new_service(source)
    account = open_account(service)
    kept = service.add_stakeholder(account, name=KEPT, role="champion", actor="amy").entity_id
    gone = service.add_stakeholder(account, name=GONE, role="champion", actor="amy").entity_id
    assert kept is not None
    assert gone is not None
    service.erase_subject(account, subject_id=gone, actor="dpo")
    service.close()

    export_log(source, tmp_path / "book.jsonl", keys=tmp_path / "keys.json")
    assert KEPT not in (tmp_path / "book.jsonl").read_text(encoding="utf-8")
    records = {r.subject_id: r for r in read_keys(tmp_path / "keys.json")}
    assert records[gone].key is None
    assert records[gone].erased_at is not None
    assert records[kept].key is not None

    without, with_keys = str(tmp_path / "without.db"), str(tmp_path / "with.db")
    import_log(tmp_path / "book.jsonl", without)
    import_log(tmp_path / "book.jsonl", with_keys, keys=tmp_path / "keys.json")
    for target, kept_name in ((without, ERASED), (with_keys, KEPT)):
        copy = new_service(target)
        try:
            names = {p.stakeholder_id: p.name for p in copy.get_account(account).stakeholders}
            assert names == {kept: kept_name, gone: ERASED}
            if target == with_keys:  # the erased subject stays erased
                with pytest.raises(InvalidTransition):
                    copy.personal_data.seal("name", "x", (gone,), account)
        finally:
            copy.close()


def test_a_bad_key_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    source = str(tmp_path / "source.db")
    service = new_service(source)
    open_account(service)
    service.close()
    export_log(source, tmp_path / "book.jsonl")
    bad = tmp_path / "bad.json"
    for content in ("not json", json.dumps({"format": "other"}), json.dumps(
        {"format": "acctdomain-subject-keys", "version": 1, "keys": [{"subject_id": "x"}]}
    )):  # fmt: skip
        bad.write_text(content, encoding="utf-8")
        target = str(tmp_path / f"{uuid4().hex}.db")
        with pytest.raises(InvalidValue) as refused:
            import_log(tmp_path / "book.jsonl", target, keys=bad)
        assert refused.value.field == "keys"
        assert verify(target).total == 0
    with pytest.raises(InvalidValue):
        read_keys(tmp_path / "missing.json")


def test_key_records_keep_their_fields() -> None:
    record = KeyRecord(uuid4(), uuid4(), b"k" * 32, FakeClock().now)
    assert record.erased_at is None


# --- keys: cached per process, written with their events, checked in the transaction ----------


@pytest.fixture(params=("sqlite", "postgres"))
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A fresh store that two services (two processes, as far as keys go) can share."""
    if request.param == "sqlite":
        yield str(tmp_path / "shared.db")
        return
    url, schema = new_schema_url()
    try:
        yield url
    finally:
        drop_schema(schema)


def key_rows(service: AccountService) -> dict[UUID, bytes | None]:
    return {r.subject_id: r.key for r in service.personal_data.store.records()}


def test_keys_are_written_in_the_transaction_of_their_events(durable_url: str) -> None:
    service = new_service(durable_url)
    try:
        assert service.personal_data.transactional
        account = open_account(service)
        recorder: Any = service.recorder
        writer = recorder.key_writer
        assert writer is not None

        def crash_before_commit(cursor: Any, events: Any) -> None:
            writer(cursor, events)  # the key row is written...
            raise OSError("power cut")  # ...and the transaction never commits

        recorder.key_writer = crash_before_commit
        count = len(stored_states(service))
        with pytest.raises(OSError, match="power cut"):
            service.add_stakeholder(account, name=GONE, role="champion", actor="amy")
        assert key_rows(service) == {}  # neither the key...
        assert len(stored_states(service)) == count  # ...nor the event
        recorder.key_writer = writer
        person = service.add_stakeholder(account, name=GONE, role="champion", actor="amy")
        assert person.entity_id is not None
        assert key_rows(service)[person.entity_id] is not None
    finally:
        service.close()
    reopened = new_service(durable_url)
    try:
        assert [p.name for p in reopened.get_account(account).stakeholders] == [GONE]
    finally:
        reopened.close()


def test_a_known_key_is_not_read_again_for_each_write(durable_url: str) -> None:
    service = new_service(durable_url)
    try:
        account = open_account(service)
        person = service.add_stakeholder(account, name=KEPT, role="champion", actor="amy")
        assert person.entity_id is not None
        store: Any = service.personal_data.store
        reads: list[UUID] = []
        real_get, real_get_many = store.get, store.get_many

        def counting_get(subject_id: UUID) -> Any:
            reads.append(subject_id)
            return real_get(subject_id)

        def counting_get_many(subject_ids: Any) -> Any:
            reads.extend(subject_ids)
            return real_get_many(subject_ids)

        store.get, store.get_many = counting_get, counting_get_many
        for title in ("CTO", "CEO", "COO"):  # as the mapper seals: keys from the cache
            sealed = service.personal_data.seal(
                "title", title, (person.entity_id,), account, used={}
            )
            assert isinstance(sealed, Sealed)
        service.personal_data.prefetch([person.entity_id])
        assert reads == []
        service.update_stakeholder(
            account, stakeholder_id=person.entity_id, title="COO", actor="amy"
        )
        assert service.get_account(account).stakeholders[0].title == "COO"
    finally:
        service.close()


def test_an_erasure_by_another_process_stops_writes_at_once(durable_url: str) -> None:
    writer, eraser = new_service(durable_url), new_service(durable_url)
    try:
        account = open_account(writer)
        person = writer.add_stakeholder(account, name=GONE, role="champion", actor="amy")
        assert person.entity_id is not None
        writer.update_stakeholder(
            account, stakeholder_id=person.entity_id, title="CTO", actor="amy"
        )  # the writer holds the key now
        # The erasure destroys the key before it records SubjectErased: in between, the
        # account itself does not know yet, only the key row does.
        eraser.personal_data.erase(person.entity_id)
        count = len(stored_states(writer))
        with pytest.raises(InvalidTransition):  # well within the writer's key cache time
            writer.update_stakeholder(
                account, stakeholder_id=person.entity_id, title=GONE_TITLE, actor="amy"
            )
        assert len(stored_states(writer)) == count
        with pytest.raises(InvalidTransition):  # and it remembers
            writer.personal_data.seal("title", "x", (person.entity_id,), account)
    finally:
        writer.close()
        eraser.close()


def test_the_erasing_process_forgets_the_key_at_once(
    book: tuple[AccountService, UUID, UUID, UUID],
) -> None:
    service, account, kept, gone = book
    sealed = service.personal_data.seal("name", GONE, (gone,), account)
    assert isinstance(sealed, Sealed)
    assert service.personal_data.open(sealed) == GONE  # the key is cached now
    service.erase_subject(account, subject_id=gone, actor="dpo")
    assert service.personal_data.open(sealed) == ERASED  # no waiting for the cache to expire
    with pytest.raises(InvalidTransition):
        service.personal_data.seal("name", GONE, (gone,), account)
    assert service.personal_data.open(service.personal_data.seal("name", "k", (kept,), account))


def test_a_key_another_writer_made_first_is_adopted(durable_url: str) -> None:
    first, second = new_service(durable_url), new_service(durable_url)
    try:
        account = open_account(first)
        subject = respondent_subject_id(account, RESPONDENT)
        second.personal_data.prefetch([subject])  # the second has a key of its own in mind...
        first.record_feedback(
            account, score=NpsScore(3), respondent=RESPONDENT, comment="one", actor="amy"
        )  # ...when the first stores its key
        stored = key_rows(first)[subject]
        second.record_feedback(
            account, score=NpsScore(5), respondent=RESPONDENT, comment="two", actor="amy"
        )  # refused in the transaction, decided again under the stored key
        assert key_rows(second)[subject] == stored
    finally:
        first.close()
        second.close()
    reader = new_service(durable_url)
    try:
        answers = [
            (e.respondent, e.comment)
            for e in reader.history(account)
            if isinstance(e, ev.FeedbackRecorded)
        ]
        assert answers == [(RESPONDENT, "one"), (RESPONDENT, "two")]
    finally:
        reader.close()


def test_a_bulk_import_makes_its_keys_with_its_events(tmp_path: Path) -> None:
    from acctdomain.importing import import_files

    data = Path(__file__).parent / "data" / "import"
    service = new_service(str(tmp_path / "book.db"))
    try:
        store: Any = service.personal_data.store

        def no_key_on_its_own(record: KeyRecord) -> KeyRecord:
            raise AssertionError(f"a key was stored on its own: {record.subject_id}")

        store.create = no_key_on_its_own
        report = import_files(service, [(k, data / f"{k}.csv") for k in ("accounts", "surveys")])
        assert report.errors == ()
        rows = key_rows(service)
        assert rows
        assert all(key is not None for key in rows.values())
        assert verify(str(tmp_path / "book.db")).ok
    finally:
        service.close()
    reopened = new_service(str(tmp_path / "book.db"))
    try:
        comments = [
            e.comment
            for account_id in {r.account_id for r in reopened.personal_data.store.records()}
            for e in reopened.history(account_id)
            if isinstance(e, ev.FeedbackRecorded)
        ]
        assert comments
        assert ERASED not in comments
    finally:
        reopened.close()
