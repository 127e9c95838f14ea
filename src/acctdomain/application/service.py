"""The application service: every command and query, over any of the three event stores.

It is a thin layer: it loads the account, asks the aggregate to decide, and saves. What it adds
is what a domain model cannot do alone: idempotency keys, retrying after a concurrent write,
snapshots, time travel, and plain-data answers (never a live aggregate).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from enum import Enum
from itertools import takewhile
from typing import Any, ClassVar, Unpack
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    IntegrityError,
    JSONTranscoder,
    Mapper,
    Transcoder,
    Transcoding,
    UUIDAsHex,
)

from acctdomain.application.commands import OPTION_NAMES, CommandOptions, CommandResult
from acctdomain.application.idempotency import (
    IdempotencyRecord,
    derived_id,
    fingerprint,
    record_id_for,
)
from acctdomain.application.kpi_settings import KpiSettings
from acctdomain.application.personal import (
    PersonalData,
    PersonalDataMapper,
    SealedTranscoding,
    key_store_for,
)
from acctdomain.application.read_side import ReadSide
from acctdomain.application.stores import StoreSpec, parse_store
from acctdomain.application.transcoding import (
    AttrsTranscoding,
    DateAsISO,
    EnumTranscoding,
    ExactJSONTranscoder,
)
from acctdomain.domain import ENUM_TYPES, VALUE_TYPES, Account, AccountState, EventContext
from acctdomain.domain.events import AccountEvent
from acctdomain.domain.identifiers import account_id_for
from acctdomain.domain.values import (
    Channel,
    ChurnReason,
    Direction,
    IssueSeverity,
    ManagerType,
    Money,
    OpportunityKind,
    ProductLine,
    Segment,
    Sentiment,
    StakeholderRole,
    SurveyScore,
    moment_of,
    require_aware,
    require_text,
)
from acctdomain.errors import (
    AccountAlreadyExists,
    AccountNotFound,
    CommandRejected,
    ConcurrencyConflict,
    IdempotencyKeyReused,
    InvalidValue,
    NotAuthorized,
    UnknownReference,
)
from acctdomain.plugins.host import PluginHost
from acctdomain.plugins.types import AuthorizationRequest

__all__ = ["AccountService"]

log = logging.getLogger(__name__)

Decision = Callable[[Account | None, EventContext], Account]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _project(aggregate: Any, events: Iterable[Any]) -> Any:
    """Fold events onto an aggregate. eventsourcing's default projector also checks each event
    against a runtime Protocol, which costs more than decoding the event on Python 3.11; the
    version and originator checks still run inside ``mutate``."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class AccountService(ReadSide, Application[UUID]):
    """Records what happens to accounts and answers questions about them.

    >>> from acctdomain import AccountService
    >>> service = AccountService("memory:")

    ``store`` is a URL or file path (see :mod:`acctdomain.application.stores`); ``clock``
    supplies recorded times (tests and simulations may pass their own); ``max_attempts``
    bounds the retries after a concurrent write; with ``project_synchronously`` every command
    brings the read models up to date before it returns.
    """

    name = "acctdomain"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Account: 20}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # eventsourcing names a subclass after itself, and PostgreSQL tables and environment
        # variable prefixes after the name: a subclass that only adds behaviour would then
        # silently write to other tables. Keep the name unless the subclass sets its own.
        name = cls.__dict__.get("name")
        super().__init_subclass__(**kwargs)
        cls.name = name if name is not None else AccountService.name

    def __init__(
        self,
        store: str | StoreSpec | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        max_attempts: int = 8,
        extra_transcodings: Iterable[Transcoding] = (),
        env: dict[str, str] | None = None,
        plugins: PluginHost | None = None,
        project_synchronously: bool = False,
        kpi_settings: KpiSettings | None = None,
    ) -> None:
        self._init_read_side(project_synchronously=project_synchronously)
        if kpi_settings is not None and not isinstance(kpi_settings, KpiSettings):
            raise InvalidValue("kpi_settings", f"expected KpiSettings, got {kpi_settings!r}")
        self.kpi_settings = kpi_settings or KpiSettings.from_environment()
        self.store = store if isinstance(store, StoreSpec) else parse_store(store)
        self.clock = clock
        """Supplies recorded times; tests and simulations pass their own."""
        self.plugins = plugins if plugins is not None else PluginHost()
        """The plugins: built-ins, installed entry points (unless given a host of your own)."""
        self._max_attempts = max_attempts
        self._extra_transcodings = tuple(extra_transcodings)
        self.personal_data = PersonalData(lambda: self.clock())
        """Personal fields sealed per data subject (see :mod:`acctdomain.application.personal`)."""
        with self.store.setting_up():
            super().__init__(env={**self.store.environment(), **(env or {})})
            self.personal_data.attach(key_store_for(self.recorder))  # the subjects' key table
        self.plugins.startup(self)

    def close(self) -> None:
        """Close the read-model runners, then the event store's connections."""
        self._close_read_side()
        super().close()

    # --- persistence wiring -------------------------------------------------------------------

    def construct_mapper(self) -> Mapper[UUID]:
        mapper = self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=PersonalDataMapper
        )
        assert isinstance(mapper, PersonalDataMapper)
        mapper.personal = self.personal_data
        mapper.upcasters = {
            (upcaster.topic, upcaster.from_version): upcaster.upcast
            for upcaster in self.plugins.upcasters().values()
        }
        return mapper

    def construct_transcoder(self) -> Transcoder:
        transcoder = ExactJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        transcodings: list[Transcoding] = [
            UUIDAsHex(),
            DecimalAsStr(),
            DatetimeAsISO(),
            DateAsISO(),
        ]
        transcodings += [EnumTranscoding(enum_class) for enum_class in ENUM_TYPES]
        transcodings += [AttrsTranscoding(value_class) for value_class in VALUE_TYPES]
        transcodings += self._extra_transcodings
        transcodings += self.plugins.transcodings().values()
        transcodings.append(SealedTranscoding(self.personal_data))
        for transcoding in transcodings:
            transcoder.register(transcoding)

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        # Snapshot the aggregate we already hold, whenever a command crossed an interval
        # boundary (commands may append several events), instead of eventsourcing's reload from
        # the store at exact multiples. A failed snapshot must not fail a committed command:
        # the events are safe, the next boundary writes a new snapshot.
        # The first new version of each aggregate, in one pass (a bulk save holds many).
        first_versions: dict[UUID, int] = {}
        for e in processing_event.events:
            known = first_versions.get(e.originator_id)
            if known is None or e.originator_version < known:
                first_versions[e.originator_id] = e.originator_version
        due: list[Any] = []
        for aggregate_id, aggregate in processing_event.aggregates.items():
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval is None or self.snapshots is None:
                continue
            first = first_versions.get(aggregate_id)
            if first is None or first - 1 >= aggregate.version // interval * interval:
                continue
            due.append(aggregate)
        if len(due) > 1 and self.snapshots is not None:
            try:  # a bulk save: all its snapshots in one transaction...
                self.snapshots.put([Account.Snapshot.take(aggregate) for aggregate in due])
                return
            except Exception:  # ...else one by one, so that one bad snapshot loses only itself
                pass
        for aggregate in due:
            try:
                assert self.snapshots is not None
                self.snapshots.put([Account.Snapshot.take(aggregate)])
            except Exception:
                log.warning(
                    "snapshot of %s at version %s failed",
                    aggregate.id,
                    aggregate.version,
                    exc_info=True,
                )

    # --- command machinery --------------------------------------------------------------------

    def _options(self, options: CommandOptions) -> CommandOptions:
        unknown = set(options) - OPTION_NAMES
        if unknown:
            raise InvalidValue("options", f"unknown option(s): {', '.join(sorted(unknown))}")
        if "actor" not in options:
            raise InvalidValue("actor", "who records the command is required")
        require_text("actor", options["actor"])
        if "effective_at" in options:
            require_aware("effective_at", options["effective_at"])
        if "idempotency_key" in options:
            require_text("idempotency_key", options["idempotency_key"])
        for name in ("correlation_id", "causation_id"):
            if name in options and not isinstance(options[name], UUID):
                raise InvalidValue(name, "expected a UUID")
        version = options.get("expected_version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise InvalidValue("expected_version", "expected an integer")
        return options

    def _new_id(self, options: CommandOptions, given: UUID | None, purpose: str) -> UUID:
        """The id of an item a command creates: given, derived from the idempotency key (so a
        repeat addresses the same item), or random."""
        if given is not None:
            if not isinstance(given, UUID):
                raise InvalidValue(f"{purpose}_id", "expected a UUID")
            return given
        key = options.get("idempotency_key")
        return derived_id(key, purpose) if key else uuid4()

    def _fingerprint(
        self,
        command: str,
        account_id: UUID | None,
        arguments: dict[str, Any],
        options: CommandOptions,
    ) -> str:
        given = {k: v for k, v in options.items() if k != "idempotency_key"}
        payload = {"account_id": account_id, "arguments": arguments, "options": given}
        return fingerprint(command, self.mapper.transcoder.encode(_canonical(payload)))

    def _replayed(self, key: str, command: str, digest: str) -> CommandResult | None:
        try:
            record: IdempotencyRecord = self.repository.get(record_id_for(key))
        except AggregateNotFoundError:
            return None
        if record.command != command or record.fingerprint != digest:
            raise IdempotencyKeyReused(
                key, f"it was first used for {record.command!r} with other arguments"
            )
        assert record.account_id is not None
        return CommandResult(record.account_id, record.account_version, record.entity_id)

    def _execute(
        self,
        command: str,
        account_id: UUID | None,
        options: CommandOptions,
        arguments: dict[str, Any],
        decide: Decision,
        entity_id: UUID | None = None,
        *,
        subject_id: UUID | None = None,
    ) -> CommandResult:
        """Run a command (see :meth:`_decide_and_save`), then let the read side react to its
        success (see :meth:`ReadSide._after_command`)."""
        result = self._decide_and_save(
            command, account_id, options, arguments, decide, entity_id, subject_id=subject_id
        )
        self._after_command()
        return result

    def _decide_and_save(
        self,
        command: str,
        account_id: UUID | None,
        options: CommandOptions,
        arguments: dict[str, Any],
        decide: Decision,
        entity_id: UUID | None = None,
        *,
        subject_id: UUID | None = None,
    ) -> CommandResult:
        """Replay a command if its idempotency key was seen, else load, decide, save, and after
        a concurrent write reload and decide again. ``subject_id`` names the account in errors
        when there is none to load (opening one)."""
        subject = account_id or subject_id
        assert subject is not None, "a command addresses an account"
        options = self._options(options)
        self._authorize(command, subject, options, arguments)
        key = options.get("idempotency_key")
        digest = self._fingerprint(command, account_id, arguments, options) if key else ""
        correlation_id = options.get("correlation_id") or uuid4()
        expected_version = options.get("expected_version")
        for attempt in range(self._max_attempts):
            if key and (first := self._replayed(key, command, digest)) is not None:
                return first
            current = None if account_id is None else self._load(account_id)
            if (
                expected_version is not None
                and current is not None
                and (current.version != expected_version)
            ):
                raise ConcurrencyConflict(
                    current.id,
                    f"expected version {expected_version}, the account is at {current.version}",
                )
            now = self.clock()
            ctx = EventContext(
                actor=options["actor"],
                effective_at=options.get("effective_at", now),
                recorded_at=now,
                correlation_id=correlation_id,
                causation_id=options.get("causation_id"),
            )
            try:
                account = decide(current, ctx)
            except CommandRejected as refusal:
                # The change that made this command invalid may be this very command, run
                # by another process under the same key: then its result is the answer.
                if key and (first := self._replayed(key, command, digest)) is not None:
                    return first
                if attempt == 0 or isinstance(refusal, AccountAlreadyExists):
                    raise
                raise ConcurrencyConflict(
                    subject, f"a concurrent change made the command invalid: {refusal}"
                ) from refusal
            result = CommandResult(account.id, account.version, entity_id)
            to_save: list[Any] = [account]
            if key:
                to_save.append(
                    IdempotencyRecord.record(
                        key=key,
                        command=command,
                        fingerprint=digest,
                        account_id=account.id,
                        account_version=account.version,
                        entity_id=entity_id,
                    )
                )
            try:
                self.save(*to_save)
            except IntegrityError:
                # Someone else appended first. The objects we hold are discarded (never saved
                # again: their pending events are gone); the next attempt reloads.
                if key and (first := self._replayed(key, command, digest)) is not None:
                    return first
                if expected_version is not None:
                    raise ConcurrencyConflict(
                        account.id, f"expected version {expected_version}, another writer won"
                    ) from None
                if account_id is None and key is None:
                    raise AccountAlreadyExists(
                        "account_id", f"account {account.id} was opened concurrently"
                    ) from None
                # Jitter, so that writers who collided do not collide again in lockstep.
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                continue
            return result
        raise ConcurrencyConflict(
            subject, f"gave up after {self._max_attempts} conflicting attempts"
        )

    def _authorize(
        self, command: str, account_id: UUID, options: CommandOptions, arguments: dict[str, Any]
    ) -> None:
        request = AuthorizationRequest(options["actor"], command, account_id, dict(arguments))
        denied = self.plugins.authorize(request)
        if denied is not None:
            plugin, denial = denied
            raise NotAuthorized("actor", denial.reason, plugin)

    def _load(self, account_id: UUID) -> Account:
        if not isinstance(account_id, UUID):
            raise InvalidValue("account_id", f"expected a UUID, got {type(account_id).__name__}")
        try:
            account: object = self.repository.get(account_id, projector_func=_project)
        except AggregateNotFoundError:
            raise AccountNotFound(account_id) from None
        if not isinstance(account, Account):
            raise AccountNotFound(account_id, "the id belongs to something else")
        return account

    def _change(
        self,
        command: str,
        account_id: UUID,
        options: CommandOptions,
        arguments: dict[str, Any],
        apply: Callable[[Account, EventContext], None],
        entity_id: UUID | None = None,
    ) -> CommandResult:
        def decide(account: Account | None, ctx: EventContext) -> Account:
            assert account is not None
            apply(account, ctx)
            return account

        return self._execute(command, account_id, options, arguments, decide, entity_id)

    # --- commands: the account ----------------------------------------------------------------

    def open_account(
        self,
        *,
        name: str,
        segment: Segment | str,
        industry: str,
        currency: str,
        manager: str,
        manager_type: ManagerType | str,
        external_key: str | None = None,
        account_id: UUID | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Open an account. Its id is ``account_id``, else derived from ``external_key`` (the
        same key always addresses the same account), else random."""
        arguments = dict(
            name=name,
            segment=segment,
            industry=industry,
            currency=currency,
            manager=manager,
            manager_type=manager_type,
            external_key=external_key,
            account_id=account_id,
        )
        derived = None if external_key is None else account_id_for(external_key)
        if account_id is None:
            new_id = derived or self._new_id(options, None, "account")
        elif not isinstance(account_id, UUID):
            raise InvalidValue("account_id", "expected a UUID")
        elif derived is not None and account_id != derived:
            raise InvalidValue(
                "account_id",
                f"{account_id} is not the id derived from external key {external_key!r} "
                f"({derived}); give one or the other, or both in agreement",
            )
        else:
            new_id = account_id

        def decide(_: Account | None, ctx: EventContext) -> Account:
            if self._exists(new_id):
                raise AccountAlreadyExists("account_id", f"account {new_id} exists already")
            return Account.open(
                account_id=new_id,
                name=name,
                segment=segment,
                industry=industry,
                currency=currency,
                manager=manager,
                manager_type=manager_type,
                external_key=external_key,
                ctx=ctx,
            )

        return self._execute("open_account", None, options, arguments, decide, subject_id=new_id)

    def _exists(self, account_id: UUID) -> bool:
        return bool(list(self.events.get(account_id, limit=1)))

    def reassign_manager(
        self,
        account_id: UUID,
        *,
        manager: str,
        manager_type: ManagerType | str,
        reason: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Hand the account to another account manager."""
        return self._change(
            "reassign_manager",
            account_id,
            options,
            dict(manager=manager, manager_type=manager_type, reason=reason),
            lambda a, ctx: a.reassign_manager(
                manager=manager, manager_type=manager_type, reason=reason, ctx=ctx
            ),
        )

    # --- commands: relationship ---------------------------------------------------------------

    def log_contact(
        self,
        account_id: UUID,
        *,
        channel: Channel | str,
        direction: Direction | str,
        summary: str = "",
        stakeholder_ids: Sequence[UUID] = (),
        duration_minutes: int | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record a call, email, meeting or QBR, with the stakeholders who took part."""
        stakeholder_ids = _materialise("stakeholder_ids", stakeholder_ids)
        return self._change(
            "log_contact",
            account_id,
            options,
            dict(
                channel=channel,
                direction=direction,
                summary=summary,
                stakeholder_ids=tuple(stakeholder_ids),
                duration_minutes=duration_minutes,
            ),
            lambda a, ctx: a.log_contact(
                channel=channel,
                direction=direction,
                summary=summary,
                stakeholder_ids=stakeholder_ids,
                duration_minutes=duration_minutes,
                ctx=ctx,
            ),
        )

    def receive_request(
        self,
        account_id: UUID,
        *,
        subject: str,
        channel: Channel | str,
        request_id: UUID | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record a customer request; the result's ``entity_id`` is the request id."""
        new_id = self._new_id(options, request_id, "request")
        return self._change(
            "receive_request",
            account_id,
            options,
            dict(subject=subject, channel=channel, request_id=request_id),
            lambda a, ctx: a.receive_request(
                request_id=new_id, subject=subject, channel=channel, ctx=ctx
            ),
            new_id,
        )

    def answer_request(
        self,
        account_id: UUID,
        *,
        request_id: UUID,
        response: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record the answer to a customer request (its first-response time)."""
        return self._change(
            "answer_request",
            account_id,
            options,
            dict(request_id=request_id, response=response),
            lambda a, ctx: a.answer_request(request_id=request_id, response=response, ctx=ctx),
        )

    def add_stakeholder(
        self,
        account_id: UUID,
        *,
        name: str,
        role: StakeholderRole | str,
        sentiment: Sentiment | str = Sentiment.UNKNOWN,
        title: str = "",
        stakeholder_id: UUID | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Add a person to the stakeholder map; ``entity_id`` is the stakeholder id."""
        new_id = self._new_id(options, stakeholder_id, "stakeholder")
        return self._change(
            "add_stakeholder",
            account_id,
            options,
            dict(
                name=name,
                role=role,
                sentiment=sentiment,
                title=title,
                stakeholder_id=stakeholder_id,
            ),
            lambda a, ctx: a.add_stakeholder(
                stakeholder_id=new_id,
                name=name,
                title=title,
                role=role,
                sentiment=sentiment,
                ctx=ctx,
            ),
            new_id,
        )

    def update_stakeholder(
        self,
        account_id: UUID,
        *,
        stakeholder_id: UUID,
        title: str | None = None,
        role: StakeholderRole | str | None = None,
        sentiment: Sentiment | str | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Change a stakeholder's title, role or sentiment (None keeps a value)."""
        return self._change(
            "update_stakeholder",
            account_id,
            options,
            dict(stakeholder_id=stakeholder_id, title=title, role=role, sentiment=sentiment),
            lambda a, ctx: a.update_stakeholder(
                stakeholder_id=stakeholder_id, title=title, role=role, sentiment=sentiment, ctx=ctx
            ),
        )

    def remove_stakeholder(
        self,
        account_id: UUID,
        *,
        stakeholder_id: UUID,
        reason: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record that a stakeholder left."""
        return self._change(
            "remove_stakeholder",
            account_id,
            options,
            dict(stakeholder_id=stakeholder_id, reason=reason),
            lambda a, ctx: a.remove_stakeholder(
                stakeholder_id=stakeholder_id, reason=reason, ctx=ctx
            ),
        )

    def record_feedback(
        self,
        account_id: UUID,
        *,
        score: SurveyScore,
        respondent: str = "",
        comment: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record a survey answer: ``NpsScore(9)``, ``CsatScore(4)`` or ``CesScore(6)``."""
        return self._change(
            "record_feedback",
            account_id,
            options,
            dict(score=score, respondent=respondent, comment=comment),
            lambda a, ctx: a.record_feedback(
                score=score, respondent=respondent, comment=comment, ctx=ctx
            ),
        )

    def erase_subject(
        self,
        account_id: UUID,
        *,
        subject_id: UUID,
        reason: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Erase a data subject's personal data (the right to be forgotten): destroy its key,
        record ``SubjectErased``, bring the read models up to date and scrub the store (see
        :mod:`acctdomain.application.personal`). ``subject_id`` is a stakeholder id,
        ``respondent_subject_id(account_id, respondent)`` or
        ``contact_notes_subject_id(account_id)``. Erasing an erased subject again changes
        nothing. ``reason`` must not name the person."""
        self._options(options)
        if not isinstance(subject_id, UUID):
            raise InvalidValue("subject_id", f"expected a UUID, got {type(subject_id).__name__}")
        account = self._load(account_id)
        record = self.personal_data.store.get(subject_id)
        if record is None or record.account_id != account_id:
            raise UnknownReference(
                "subject_id", f"account {account_id} keeps no personal data of {subject_id}"
            )
        if record.key is None and account.is_erased(subject_id):
            arguments = dict(subject_id=subject_id, reason=reason)
            self._authorize("erase_subject", account_id, options, arguments)
            return CommandResult(account.id, account.version, None)

        def erase(account: Account, ctx: EventContext) -> None:
            if not account.is_erased(subject_id):
                account.erase_subject(subject_id=subject_id, reason=reason, ctx=ctx)
            # After the checks, before the event is saved: if the save fails, erasing again
            # finds the key gone and records the event.
            self.personal_data.erase(subject_id)

        result = self._change(
            "erase_subject", account_id, options, dict(subject_id=subject_id, reason=reason), erase
        )
        try:  # the read models rewrite the rows that held the person's data...
            self.catch_up()
        except Exception:
            log.warning("read models could not catch up after an erasure", exc_info=True)
        if not self.personal_data.store.scrub():  # ...before the store's free space is cleared
            log.warning("the store could not be scrubbed entirely: a reader held its log")
        return result

    def record_value_delivered(
        self,
        account_id: UUID,
        *,
        amount: Money,
        description: str,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record value (money saved) the customer got from us."""
        return self._change(
            "record_value_delivered",
            account_id,
            options,
            dict(amount=amount, description=description),
            lambda a, ctx: a.record_value_delivered(
                amount=amount, description=description, ctx=ctx
            ),
        )

    # --- commands: revenue --------------------------------------------------------------------

    def start_contract(
        self,
        account_id: UUID,
        *,
        term_end: date,
        lines: Sequence[ProductLine],
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Start the first contract; ``term_end`` is the renewal date."""
        lines = _materialise("lines", lines)
        return self._change(
            "start_contract",
            account_id,
            options,
            dict(term_end=term_end, lines=tuple(lines)),
            lambda a, ctx: a.start_contract(term_end=term_end, lines=lines, ctx=ctx),
        )

    def mark_renewal_due(
        self, account_id: UUID, *, due_on: date, **options: Unpack[CommandOptions]
    ) -> CommandResult:
        """Put the renewal into the pipeline, due on ``due_on``."""
        return self._change(
            "mark_renewal_due",
            account_id,
            options,
            dict(due_on=due_on),
            lambda a, ctx: a.mark_renewal_due(due_on=due_on, ctx=ctx),
        )

    def renew(
        self,
        account_id: UUID,
        *,
        term_end: date,
        lines: Sequence[ProductLine],
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Renew until ``term_end`` with the complete new set of product lines."""
        lines = _materialise("lines", lines)
        return self._change(
            "renew",
            account_id,
            options,
            dict(term_end=term_end, lines=tuple(lines)),
            lambda a, ctx: a.renew(term_end=term_end, lines=lines, ctx=ctx),
        )

    def churn(
        self,
        account_id: UUID,
        *,
        reason: ChurnReason | str,
        detail: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record that the customer left."""
        return self._change(
            "churn",
            account_id,
            options,
            dict(reason=reason, detail=detail),
            lambda a, ctx: a.churn(reason=reason, detail=detail, ctx=ctx),
        )

    def reactivate(
        self,
        account_id: UUID,
        *,
        term_end: date,
        lines: Sequence[ProductLine],
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Win a churned customer back with a new contract."""
        lines = _materialise("lines", lines)
        return self._change(
            "reactivate",
            account_id,
            options,
            dict(term_end=term_end, lines=tuple(lines)),
            lambda a, ctx: a.reactivate(term_end=term_end, lines=lines, ctx=ctx),
        )

    def upsell(
        self,
        account_id: UUID,
        *,
        product: str,
        added_arr: Money,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """More of a product the customer has."""
        return self._change(
            "upsell",
            account_id,
            options,
            dict(product=product, added_arr=added_arr),
            lambda a, ctx: a.upsell(product=product, added_arr=added_arr, ctx=ctx),
        )

    def cross_sell(
        self, account_id: UUID, *, product: str, arr: Money, **options: Unpack[CommandOptions]
    ) -> CommandResult:
        """A product the customer did not have."""
        return self._change(
            "cross_sell",
            account_id,
            options,
            dict(product=product, arr=arr),
            lambda a, ctx: a.cross_sell(product=product, arr=arr, ctx=ctx),
        )

    def downgrade(
        self,
        account_id: UUID,
        *,
        product: str,
        reduced_by: Money,
        reason: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Contraction during the term."""
        return self._change(
            "downgrade",
            account_id,
            options,
            dict(product=product, reduced_by=reduced_by, reason=reason),
            lambda a, ctx: a.downgrade(
                product=product, reduced_by=reduced_by, reason=reason, ctx=ctx
            ),
        )

    def offer_opportunity(
        self,
        account_id: UUID,
        *,
        kind: OpportunityKind | str,
        product: str,
        estimated_arr: Money,
        opportunity_id: UUID | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Offer an upsell or cross-sell; ``entity_id`` is the opportunity id."""
        new_id = self._new_id(options, opportunity_id, "opportunity")
        return self._change(
            "offer_opportunity",
            account_id,
            options,
            dict(
                kind=kind,
                product=product,
                estimated_arr=estimated_arr,
                opportunity_id=opportunity_id,
            ),
            lambda a, ctx: a.offer_opportunity(
                opportunity_id=new_id,
                kind=kind,
                product=product,
                estimated_arr=estimated_arr,
                ctx=ctx,
            ),
            new_id,
        )

    def win_opportunity(
        self,
        account_id: UUID,
        *,
        opportunity_id: UUID,
        arr: Money,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """The customer accepted: records the win and the upsell or cross-sell."""
        return self._change(
            "win_opportunity",
            account_id,
            options,
            dict(opportunity_id=opportunity_id, arr=arr),
            lambda a, ctx: a.win_opportunity(opportunity_id=opportunity_id, arr=arr, ctx=ctx),
        )

    def lose_opportunity(
        self,
        account_id: UUID,
        *,
        opportunity_id: UUID,
        reason: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """The customer declined an offer."""
        return self._change(
            "lose_opportunity",
            account_id,
            options,
            dict(opportunity_id=opportunity_id, reason=reason),
            lambda a, ctx: a.lose_opportunity(
                opportunity_id=opportunity_id, reason=reason, ctx=ctx
            ),
        )

    # --- commands: issues ---------------------------------------------------------------------

    def raise_issue(
        self,
        account_id: UUID,
        *,
        title: str,
        severity: IssueSeverity | str,
        category: str,
        issue_id: UUID | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record a problem; ``entity_id`` is the issue id."""
        new_id = self._new_id(options, issue_id, "issue")
        return self._change(
            "raise_issue",
            account_id,
            options,
            dict(title=title, severity=severity, category=category, issue_id=issue_id),
            lambda a, ctx: a.raise_issue(
                issue_id=new_id, title=title, severity=severity, category=category, ctx=ctx
            ),
            new_id,
        )

    def respond_to_issue(
        self, account_id: UUID, *, issue_id: UUID, **options: Unpack[CommandOptions]
    ) -> CommandResult:
        """Record the first response to an issue."""
        return self._change(
            "respond_to_issue",
            account_id,
            options,
            dict(issue_id=issue_id),
            lambda a, ctx: a.respond_to_issue(issue_id=issue_id, ctx=ctx),
        )

    def escalate_issue(
        self,
        account_id: UUID,
        *,
        issue_id: UUID,
        to_team: str,
        reason: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Escalate an open issue to an internal team."""
        return self._change(
            "escalate_issue",
            account_id,
            options,
            dict(issue_id=issue_id, to_team=to_team, reason=reason),
            lambda a, ctx: a.escalate_issue(
                issue_id=issue_id, to_team=to_team, reason=reason, ctx=ctx
            ),
        )

    def resolve_issue(
        self,
        account_id: UUID,
        *,
        issue_id: UUID,
        resolution: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Resolve an open issue."""
        return self._change(
            "resolve_issue",
            account_id,
            options,
            dict(issue_id=issue_id, resolution=resolution),
            lambda a, ctx: a.resolve_issue(issue_id=issue_id, resolution=resolution, ctx=ctx),
        )

    # --- commands: account plan ---------------------------------------------------------------

    def set_goal(
        self,
        account_id: UUID,
        *,
        title: str,
        measure: str = "",
        target_date: date | None = None,
        goal_id: UUID | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Set an account-plan goal; ``entity_id`` is the goal id."""
        new_id = self._new_id(options, goal_id, "goal")
        return self._change(
            "set_goal",
            account_id,
            options,
            dict(title=title, measure=measure, target_date=target_date, goal_id=goal_id),
            lambda a, ctx: a.set_goal(
                goal_id=new_id, title=title, measure=measure, target_date=target_date, ctx=ctx
            ),
            new_id,
        )

    def add_strategy(
        self,
        account_id: UUID,
        *,
        goal_id: UUID,
        description: str,
        strategy_id: UUID | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Add a strategy to a goal; ``entity_id`` is the strategy id."""
        new_id = self._new_id(options, strategy_id, "strategy")
        return self._change(
            "add_strategy",
            account_id,
            options,
            dict(goal_id=goal_id, description=description, strategy_id=strategy_id),
            lambda a, ctx: a.add_strategy(
                strategy_id=new_id, goal_id=goal_id, description=description, ctx=ctx
            ),
            new_id,
        )

    def add_tactic(
        self,
        account_id: UUID,
        *,
        strategy_id: UUID,
        description: str,
        owner: str,
        due_on: date | None = None,
        tactic_id: UUID | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Add a tactic to a strategy; ``entity_id`` is the tactic id."""
        new_id = self._new_id(options, tactic_id, "tactic")
        return self._change(
            "add_tactic",
            account_id,
            options,
            dict(
                strategy_id=strategy_id,
                description=description,
                owner=owner,
                due_on=due_on,
                tactic_id=tactic_id,
            ),
            lambda a, ctx: a.add_tactic(
                tactic_id=new_id,
                strategy_id=strategy_id,
                description=description,
                owner=owner,
                due_on=due_on,
                ctx=ctx,
            ),
            new_id,
        )

    def complete_tactic(
        self, account_id: UUID, *, tactic_id: UUID, **options: Unpack[CommandOptions]
    ) -> CommandResult:
        """Mark a tactic done."""
        return self._change(
            "complete_tactic",
            account_id,
            options,
            dict(tactic_id=tactic_id),
            lambda a, ctx: a.complete_tactic(tactic_id=tactic_id, ctx=ctx),
        )

    def drop_tactic(
        self,
        account_id: UUID,
        *,
        tactic_id: UUID,
        reason: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Give a tactic up."""
        return self._change(
            "drop_tactic",
            account_id,
            options,
            dict(tactic_id=tactic_id, reason=reason),
            lambda a, ctx: a.drop_tactic(tactic_id=tactic_id, reason=reason, ctx=ctx),
        )

    def achieve_goal(
        self, account_id: UUID, *, goal_id: UUID, **options: Unpack[CommandOptions]
    ) -> CommandResult:
        """Mark a goal reached."""
        return self._change(
            "achieve_goal",
            account_id,
            options,
            dict(goal_id=goal_id),
            lambda a, ctx: a.achieve_goal(goal_id=goal_id, ctx=ctx),
        )

    def abandon_goal(
        self,
        account_id: UUID,
        *,
        goal_id: UUID,
        reason: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Give a goal up."""
        return self._change(
            "abandon_goal",
            account_id,
            options,
            dict(goal_id=goal_id, reason=reason),
            lambda a, ctx: a.abandon_goal(goal_id=goal_id, reason=reason, ctx=ctx),
        )

    # --- commands: business units and white space ---------------------------------------------

    def add_business_unit(
        self,
        account_id: UUID,
        *,
        name: str,
        unit_id: UUID | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record a business unit of the customer; ``entity_id`` is the unit id."""
        new_id = self._new_id(options, unit_id, "unit")
        return self._change(
            "add_business_unit",
            account_id,
            options,
            dict(name=name, unit_id=unit_id),
            lambda a, ctx: a.add_business_unit(unit_id=new_id, name=name, ctx=ctx),
            new_id,
        )

    def rename_business_unit(
        self, account_id: UUID, *, unit_id: UUID, name: str, **options: Unpack[CommandOptions]
    ) -> CommandResult:
        """Give a business unit a new name."""
        return self._change(
            "rename_business_unit",
            account_id,
            options,
            dict(unit_id=unit_id, name=name),
            lambda a, ctx: a.rename_business_unit(unit_id=unit_id, name=name, ctx=ctx),
        )

    def remove_business_unit(
        self,
        account_id: UUID,
        *,
        unit_id: UUID,
        reason: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record that a business unit was closed, sold or merged."""
        return self._change(
            "remove_business_unit",
            account_id,
            options,
            dict(unit_id=unit_id, reason=reason),
            lambda a, ctx: a.remove_business_unit(unit_id=unit_id, reason=reason, ctx=ctx),
        )

    def adopt_product(
        self, account_id: UUID, *, unit_id: UUID, product: str, **options: Unpack[CommandOptions]
    ) -> CommandResult:
        """Record that a business unit uses one of the account's product lines."""
        return self._change(
            "adopt_product",
            account_id,
            options,
            dict(unit_id=unit_id, product=product),
            lambda a, ctx: a.adopt_product(unit_id=unit_id, product=product, ctx=ctx),
        )

    def end_product_adoption(
        self,
        account_id: UUID,
        *,
        unit_id: UUID,
        product: str,
        reason: str = "",
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record that a business unit stopped using a product."""
        return self._change(
            "end_product_adoption",
            account_id,
            options,
            dict(unit_id=unit_id, product=product, reason=reason),
            lambda a, ctx: a.end_product_adoption(
                unit_id=unit_id, product=product, reason=reason, ctx=ctx
            ),
        )

    def mark_product_ineligible(
        self,
        account_id: UUID,
        *,
        unit_id: UUID,
        product: str,
        reason: str,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record that a business unit cannot use a product, and why."""
        return self._change(
            "mark_product_ineligible",
            account_id,
            options,
            dict(unit_id=unit_id, product=product, reason=reason),
            lambda a, ctx: a.mark_product_ineligible(
                unit_id=unit_id, product=product, reason=reason, ctx=ctx
            ),
        )

    def restore_product_eligibility(
        self, account_id: UUID, *, unit_id: UUID, product: str, **options: Unpack[CommandOptions]
    ) -> CommandResult:
        """Make a product marked ineligible for a business unit possible again."""
        return self._change(
            "restore_product_eligibility",
            account_id,
            options,
            dict(unit_id=unit_id, product=product),
            lambda a, ctx: a.restore_product_eligibility(unit_id=unit_id, product=product, ctx=ctx),
        )

    def target_opportunity(
        self,
        account_id: UUID,
        *,
        opportunity_id: UUID,
        unit_id: UUID,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Aim an open opportunity at a business unit (replacing any earlier target)."""
        return self._change(
            "target_opportunity",
            account_id,
            options,
            dict(opportunity_id=opportunity_id, unit_id=unit_id),
            lambda a, ctx: a.target_opportunity(
                opportunity_id=opportunity_id, unit_id=unit_id, ctx=ctx
            ),
        )

    # --- queries ------------------------------------------------------------------------------

    def get_account(self, account_id: UUID) -> AccountState:
        """The account's current state."""
        return self._load(account_id).state()

    def get_account_at_version(self, account_id: UUID, version: int) -> AccountState:
        """The account's state just after its event number ``version`` (1 = opened)."""
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidValue("version", f"expected an integer >= 1, got {version!r}")
        state = self._load_version(account_id, version)
        if state.version != version:
            raise InvalidValue("version", f"account {account_id} has only {state.version} versions")
        return state

    def _load_version(self, account_id: UUID, version: int) -> AccountState:
        self._load(account_id)  # AccountNotFound / type check
        account: Account = self.repository.get(account_id, version=version, projector_func=_project)
        return account.state()

    def get_account_as_known_at(self, account_id: UUID, recorded_at: datetime) -> AccountState:
        """The account as the store knew it at recorded time ``recorded_at`` (what a report
        run then would have seen), whatever was recorded later, backdated or not."""
        require_aware("recorded_at", recorded_at)
        known = list(takewhile(lambda e: e.timestamp <= recorded_at, self._history(account_id)))
        if not known:
            raise AccountNotFound(account_id, f"not recorded yet at {recorded_at.isoformat()}")
        account: Account | None = None
        for event in known:
            account = event.mutate(account)
        assert account is not None
        return account.state()

    def get_account_as_effective_at(self, account_id: UUID, when: date | datetime) -> AccountState:
        """The account as it was in the business at ``when``, by everything recorded so far
        (late entries included). A ``date`` means the end of that day, UTC."""
        cutoff = moment_of("when", when, end=True)
        account = Account.as_effective_at(self._history(account_id), cutoff)
        if account is None:
            raise AccountNotFound(account_id, f"not opened yet at {cutoff.isoformat()}")
        return account.state()

    def history(self, account_id: UUID) -> tuple[AccountEvent, ...]:
        """Every event of the account, in order (events are immutable plain data)."""
        return tuple(self._history(account_id))

    def _history(self, account_id: UUID) -> list[AccountEvent]:
        if not isinstance(account_id, UUID):
            raise InvalidValue("account_id", f"expected a UUID, got {type(account_id).__name__}")
        events = list(self.events.get(account_id))
        if not events or not isinstance(events[0], AccountEvent):
            raise AccountNotFound(account_id)
        return events  # type: ignore[return-value]


def _materialise(field: str, values: Iterable[Any]) -> tuple[Any, ...]:
    """A caller's sequence as a tuple, read once (a generator would be used up by the
    fingerprint before the aggregate saw it)."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidValue(field, f"expected a sequence, got {type(values).__name__}")
    return tuple(values)


def _canonical(value: Any) -> Any:
    """Arguments in one canonical form, so equal commands fingerprint identically: dicts with
    sorted keys, any sequence as a tuple, enum members as their values ("smb" == Segment.SMB)."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return tuple(_canonical(item) for item in value)
    if isinstance(value, Enum):
        return value.value
    return value
