"""``acctdomain record``: every command of the service, one subcommand each.

The subcommands are generated from :data:`COMMANDS`, a table that says, per command, which
service method it calls, which options it takes and how each option's text is parsed (dates,
money, product lines, ids, the values of an enum). What every subcommand takes besides:
``--account`` (the account's id, the external key it was opened with, or its exact name),
``--actor`` (default ``$ACCTDOMAIN_ACTOR``), ``--at`` (the effective time), ``--idempotency-key``,
``--expected-version``, ``--db`` and ``--json``.

A user mistake (a malformed value, an unknown or ambiguous account, a command the account
refuses) ends with one ``error:`` line on stderr and exit code 2; nothing was recorded then.
docs/cli.md documents the group and its JSON.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Final
from uuid import UUID

import attrs
import typer
from eventsourcing.utils import get_topic

from acctdomain.application import AccountService
from acctdomain.cli_common import NaiveTime, parse_moment
from acctdomain.cli_kpis import _day
from acctdomain.cli_projections import AsJson, Db, _echo_json, _fail, _Plugins, _session, _stdout
from acctdomain.domain import events as ev
from acctdomain.domain.identifiers import account_id_for
from acctdomain.domain.values import (
    CesScore,
    Channel,
    ChurnReason,
    CsatScore,
    Direction,
    IssueSeverity,
    ManagerType,
    Money,
    NpsScore,
    OpportunityKind,
    ProductLine,
    Segment,
    Sentiment,
    StakeholderRole,
    moment_of,
)
from acctdomain.errors import (
    AccountNotFound,
    CommandRejected,
    ConcurrencyConflict,
    IdempotencyKeyReused,
    InvalidValue,
)
from acctdomain.plugins import PluginHost

__all__ = [
    "COMMANDS",
    "GROUP",
    "Command",
    "Field",
    "accounts_named",
    "record_app",
    "resolve_account",
]

GROUP = "record"
ACTOR_VARIABLE = "ACCTDOMAIN_ACTOR"

REFUSALS: Final = (CommandRejected, AccountNotFound, ConcurrencyConflict, IdempotencyKeyReused)
"""What the service raises when it refuses a command: nothing was appended."""


# --- how option values are parsed --------------------------------------------------------------


@attrs.frozen
class Amount:
    """An amount typed on the command line; without a currency, the account's."""

    amount: Decimal
    currency: str | None

    def money(self, currency: str | None) -> Money:
        found = self.currency or currency
        assert found is not None, "an amount without currency needs the account's"
        return Money(self.amount, found)


@attrs.frozen
class Line:
    """A product line typed on the command line (``analytics=12000``)."""

    product: str
    amount: Amount

    def product_line(self, currency: str | None) -> ProductLine:
        return ProductLine(self.product, self.amount.money(currency))


def _text(option: str, text: str) -> str:
    return text


def _integer(option: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        _fail(f"{option}: expected a whole number, got {text!r}")


def _uuid(option: str, text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        _fail(f"{option}: expected an id (a UUID), got {text!r}")


def _number(option: str, text: str, example: str) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        _fail(f"{option}: expected {example}, got {text!r}")
    return number


def _amount(option: str, text: str) -> Amount:
    """``12000 EUR`` (an amount and its ISO 4217 currency) or ``12000`` (the account's)."""
    example = "an amount and its currency (12000 EUR)"
    parts = text.split()
    if not 1 <= len(parts) <= 2:
        _fail(f"{option}: expected {example}, got {text!r}")
    amount = _number(option, parts[0], example)
    currency = parts[1] if len(parts) == 2 else None
    if currency is not None:
        try:
            Money(amount, currency)
        except InvalidValue as error:
            _fail(f"{option}: {error.reason}")
    return Amount(amount, currency)


def _line(option: str, text: str) -> Line:
    """``analytics=12000`` (in the account's currency) or ``analytics=12000 USD``."""
    product, sign, amount = text.partition("=")
    if not sign or not product.strip() or not amount.strip():
        _fail(f"{option}: expected PRODUCT=AMOUNT (analytics=12000), got {text!r}")
    return Line(product.strip(), _amount(option, amount))


@attrs.frozen
class Kind:
    """How the text of an option becomes a value: ``parse(option, text)`` ends the command
    with one ``error:`` line when it cannot."""

    metavar: str
    parse: Callable[[str, str], Any]
    choices: tuple[str, ...] = ()


def _choice(enum: type[StrEnum]) -> Kind:
    values = tuple(member.value for member in enum)

    def parse(option: str, text: str) -> StrEnum:
        if text not in values:
            _fail(f"{option}: expected one of {', '.join(values)}, got {text!r}")
        return enum(text)

    return Kind("", parse, values)  # the metavar: the field's name


TEXT = Kind("TEXT", _text)
INTEGER = Kind("N", _integer)
DAY = Kind("DATE", _day)
ID = Kind("ID", _uuid)
MONEY = Kind("AMOUNT", _amount)
LINE = Kind("PRODUCT=AMOUNT", _line)
SCORES: Mapping[str, type[NpsScore | CsatScore | CesScore]] = {
    "nps": NpsScore,
    "csat": CsatScore,
    "ces": CesScore,
}


def _survey(option: str, text: str) -> str:
    if text not in SCORES:
        _fail(f"{option}: expected one of {', '.join(SCORES)}, got {text!r}")
    return text


SURVEY = Kind("SURVEY", _survey, tuple(SCORES))


@attrs.frozen
class Field:
    """One option of a command: ``name`` is the service method's keyword, ``flag`` the
    option (default ``--name`` with dashes); ``repeat`` collects every occurrence."""

    name: str
    kind: Kind
    help: str
    required: bool = False
    flag: str = ""
    repeat: bool = False

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def metavar(self) -> str:
        return self.kind.metavar or self.name.upper()

    def help_text(self) -> str:
        text = self.help
        if self.kind.choices:
            text += f" One of: {', '.join(self.kind.choices)}."
        if self.repeat:
            text += " Repeatable."
        return text + (" Required." if self.required else "")


Finish = Callable[[dict[str, Any]], dict[str, Any]]


@attrs.frozen
class Command:
    """A ``record`` subcommand: ``name`` runs the service method ``method`` with ``fields``.
    ``entity`` names what the result's ``entity_id`` is (an issue, a goal...), ``finish``
    turns the parsed options into the method's keywords when they differ."""

    name: str
    method: str
    help: str
    fields: tuple[Field, ...]
    entity: str = ""
    addressed: bool = True  # by --account (every command but open-account)
    finish: Finish | None = None


def _feedback(values: dict[str, Any]) -> dict[str, Any]:
    survey, score = values.pop("survey"), values.pop("score")
    kind = SCORES[survey]
    low, high = kind.RANGE
    if not low <= score <= high:
        _fail(f"--score: {survey} scores go from {low} to {high}, got {score}")
    return {**values, "score": kind(score)}


def _f(name: str, kind: Kind, help: str, *, required: bool = False, **more: Any) -> Field:
    return Field(name, kind, help, required, **more)


REASON = _f("reason", TEXT, "Why (free text).")
ISSUE = _f("issue_id", ID, "The issue's id.", required=True, flag="--issue")
REQUEST = _f("request_id", ID, "The request's id.", required=True, flag="--request")
STAKEHOLDER = _f("stakeholder_id", ID, "The stakeholder's id.", required=True, flag="--stakeholder")
OPPORTUNITY = _f("opportunity_id", ID, "The opportunity's id.", required=True, flag="--opportunity")
GOAL = _f("goal_id", ID, "The goal's id.", required=True, flag="--goal")
STRATEGY = _f("strategy_id", ID, "The strategy's id.", required=True, flag="--strategy")
TACTIC = _f("tactic_id", ID, "The tactic's id.", required=True, flag="--tactic")
UNIT = _f("unit_id", ID, "The business unit's id.", required=True, flag="--unit")
PRODUCT = _f("product", TEXT, "The product (line) name.", required=True)
TERM_END = _f("term_end", DAY, "The end of the term: the renewal date.", required=True)
LINES = _f(
    "lines",
    LINE,
    "A product line with its ARR: analytics=12000 (the account's currency) or "
    "analytics=12000 USD. Give every line of the contract.",
    required=True,
    flag="--line",
    repeat=True,
)
CHANNEL = _f("channel", _choice(Channel), "How.", required=True)
MANAGER = _f("manager", TEXT, "The account manager.", required=True)
MANAGER_TYPE = _f("manager_type", _choice(ManagerType), "The manager's kind.", required=True)


def _new_id(name: str, what: str) -> Field:
    return _f(
        name, ID, f"The new {what}'s id (default: derived from the idempotency key, else new)."
    )


COMMANDS: tuple[Command, ...] = (
    # the account
    Command(
        "open-account",
        "open_account",
        "Open an account (its id: --account-id, else derived from --external-key).",
        (
            _f("name", TEXT, "The customer company's name.", required=True),
            _f("segment", _choice(Segment), "The segment.", required=True),
            _f("industry", TEXT, "The industry.", required=True),
            _f("currency", TEXT, "The contract currency (ISO 4217).", required=True),
            MANAGER,
            MANAGER_TYPE,
            _f("external_key", TEXT, "The CRM's key (crm:0017Q...): the same key, the same id."),
            _f("account_id", ID, "The account's id (default: derived from --external-key)."),
        ),
        addressed=False,
    ),
    Command(
        "reassign-manager",
        "reassign_manager",
        "Hand the account to another account manager.",
        (MANAGER, MANAGER_TYPE, REASON),
    ),
    # relationship
    Command(
        "log-contact",
        "log_contact",
        "Log a call, email, meeting or QBR, with the stakeholders who took part.",
        (
            CHANNEL,
            _f("direction", _choice(Direction), "Who reached out.", required=True),
            _f("summary", TEXT, "What was said."),
            _f(
                "stakeholder_ids",
                ID,
                "A stakeholder who took part (their id).",
                flag="--stakeholder",
                repeat=True,
            ),
            _f("duration_minutes", INTEGER, "How long it took, in minutes.", flag="--minutes"),
        ),
    ),
    Command(
        "receive-request",
        "receive_request",
        "Record a customer request; the entity id is the request's.",
        (
            _f("subject", TEXT, "What the customer asks for.", required=True),
            CHANNEL,
            _new_id("request_id", "request"),
        ),
        entity="request",
    ),
    Command(
        "answer-request",
        "answer_request",
        "Record the answer to a customer request (its first-response time).",
        (REQUEST, _f("response", TEXT, "The answer.")),
    ),
    Command(
        "add-stakeholder",
        "add_stakeholder",
        "Add a person to the stakeholder map; the entity id is the stakeholder's.",
        (
            _f("name", TEXT, "Their name.", required=True),
            _f("role", _choice(StakeholderRole), "Their role.", required=True),
            _f("sentiment", _choice(Sentiment), "How they feel about us (default unknown)."),
            _f("title", TEXT, "Their job title."),
            _new_id("stakeholder_id", "stakeholder"),
        ),
        entity="stakeholder",
    ),
    Command(
        "update-stakeholder",
        "update_stakeholder",
        "Change a stakeholder's title, role or sentiment (what is not given stays).",
        (
            STAKEHOLDER,
            _f("title", TEXT, "Their new job title."),
            _f("role", _choice(StakeholderRole), "Their new role."),
            _f("sentiment", _choice(Sentiment), "Their new sentiment."),
        ),
    ),
    Command(
        "remove-stakeholder",
        "remove_stakeholder",
        "Record that a stakeholder left.",
        (STAKEHOLDER, REASON),
    ),
    Command(
        "record-feedback",
        "record_feedback",
        "Record a survey answer: NPS (0-10), CSAT (1-5) or CES (1-7).",
        (
            _f("survey", SURVEY, "The survey.", required=True),
            _f("score", INTEGER, "The answer's score.", required=True),
            _f("respondent", TEXT, "Who answered."),
            _f("comment", TEXT, "What they wrote."),
        ),
        finish=_feedback,
    ),
    Command(
        "record-value",
        "record_value_delivered",
        "Record value (money saved) the customer got from us.",
        (
            _f(
                "amount",
                MONEY,
                "How much: 5000 EUR, or 5000 in the account's currency.",
                required=True,
            ),
            _f("description", TEXT, "What it came from.", required=True),
        ),
    ),
    # revenue
    Command(
        "start-contract",
        "start_contract",
        "Start the first contract, until --term-end, with its product lines.",
        (TERM_END, LINES),
    ),
    Command(
        "mark-renewal-due",
        "mark_renewal_due",
        "Put the renewal into the pipeline, due on --due-on.",
        (_f("due_on", DAY, "When the renewal is due.", required=True),),
    ),
    Command(
        "renew",
        "renew",
        "Renew until --term-end with the complete new set of product lines.",
        (TERM_END, LINES),
    ),
    Command(
        "churn",
        "churn",
        "Record that the customer left.",
        (
            _f("reason", _choice(ChurnReason), "Why they left.", required=True),
            _f("detail", TEXT, "More about why."),
        ),
    ),
    Command(
        "reactivate",
        "reactivate",
        "Win a churned customer back with a new contract.",
        (TERM_END, LINES),
    ),
    Command(
        "upsell",
        "upsell",
        "More of a product the customer has: ARR added to its line.",
        (PRODUCT, _f("added_arr", MONEY, "The ARR added: 3000 EUR, or 3000.", required=True)),
    ),
    Command(
        "cross-sell",
        "cross_sell",
        "A product the customer did not have, with its ARR.",
        (PRODUCT, _f("arr", MONEY, "Its ARR: 6000 EUR, or 6000.", required=True)),
    ),
    Command(
        "downgrade",
        "downgrade",
        "Contraction during the term: ARR taken off a product line.",
        (
            PRODUCT,
            _f("reduced_by", MONEY, "The ARR taken off: 2000 EUR, or 2000.", required=True),
            REASON,
        ),
    ),
    Command(
        "offer-opportunity",
        "offer_opportunity",
        "Offer an upsell or cross-sell; the entity id is the opportunity's.",
        (
            _f("kind", _choice(OpportunityKind), "What is offered.", required=True),
            PRODUCT,
            _f("estimated_arr", MONEY, "The ARR hoped for: 5000 EUR, or 5000.", required=True),
            _new_id("opportunity_id", "opportunity"),
        ),
        entity="opportunity",
    ),
    Command(
        "win-opportunity",
        "win_opportunity",
        "The customer accepted an offer: records the win and the upsell or cross-sell.",
        (OPPORTUNITY, _f("arr", MONEY, "The ARR won: 5000 EUR, or 5000.", required=True)),
    ),
    Command(
        "lose-opportunity",
        "lose_opportunity",
        "The customer declined an offer.",
        (OPPORTUNITY, REASON),
    ),
    # issues
    Command(
        "raise-issue",
        "raise_issue",
        "Record a problem of the customer's; the entity id is the issue's.",
        (
            _f("title", TEXT, "What is wrong.", required=True),
            _f("severity", _choice(IssueSeverity), "How bad it is.", required=True),
            _f("category", TEXT, "Its category (billing, outage...).", required=True),
            _new_id("issue_id", "issue"),
        ),
        entity="issue",
    ),
    Command(
        "respond-issue",
        "respond_to_issue",
        "Record the first response to an issue.",
        (ISSUE,),
    ),
    Command(
        "escalate-issue",
        "escalate_issue",
        "Escalate an open issue to an internal team.",
        (
            ISSUE,
            _f("to_team", TEXT, "The team (support, product, engineering...).", required=True),
            REASON,
        ),
    ),
    Command(
        "resolve-issue",
        "resolve_issue",
        "Resolve an open issue.",
        (ISSUE, _f("resolution", TEXT, "How it was resolved.")),
    ),
    # the account plan
    Command(
        "set-goal",
        "set_goal",
        "Set a goal of the account plan; the entity id is the goal's.",
        (
            _f("title", TEXT, "The goal.", required=True),
            _f("measure", TEXT, "How reaching it is measured."),
            _f("target_date", DAY, "When it should be reached."),
            _new_id("goal_id", "goal"),
        ),
        entity="goal",
    ),
    Command(
        "add-strategy",
        "add_strategy",
        "Add a strategy to a goal; the entity id is the strategy's.",
        (
            GOAL,
            _f("description", TEXT, "The strategy.", required=True),
            _new_id("strategy_id", "strategy"),
        ),
        entity="strategy",
    ),
    Command(
        "add-tactic",
        "add_tactic",
        "Add a tactic (owner, due date) to a strategy; the entity id is the tactic's.",
        (
            STRATEGY,
            _f("description", TEXT, "The tactic.", required=True),
            _f("owner", TEXT, "Who does it.", required=True),
            _f("due_on", DAY, "When it is due."),
            _new_id("tactic_id", "tactic"),
        ),
        entity="tactic",
    ),
    Command("complete-tactic", "complete_tactic", "Mark a tactic done.", (TACTIC,)),
    Command("drop-tactic", "drop_tactic", "Give a tactic up.", (TACTIC, REASON)),
    Command("achieve-goal", "achieve_goal", "Mark a goal reached.", (GOAL,)),
    Command("abandon-goal", "abandon_goal", "Give a goal up.", (GOAL, REASON)),
    # business units and white space
    Command(
        "add-business-unit",
        "add_business_unit",
        "Record a business unit of the customer; the entity id is the unit's.",
        (_f("name", TEXT, "The unit's name.", required=True), _new_id("unit_id", "unit")),
        entity="unit",
    ),
    Command(
        "rename-business-unit",
        "rename_business_unit",
        "Give a business unit a new name.",
        (UNIT, _f("name", TEXT, "The unit's new name.", required=True)),
    ),
    Command(
        "remove-business-unit",
        "remove_business_unit",
        "Record that a business unit was closed, sold or merged.",
        (UNIT, REASON),
    ),
    Command(
        "adopt-product",
        "adopt_product",
        "Record that a business unit uses one of the account's product lines.",
        (UNIT, PRODUCT),
    ),
    Command(
        "end-product-adoption",
        "end_product_adoption",
        "Record that a business unit stopped using a product.",
        (UNIT, PRODUCT, REASON),
    ),
    Command(
        "mark-product-ineligible",
        "mark_product_ineligible",
        "Record that a business unit cannot use a product, and why.",
        (UNIT, PRODUCT, _f("reason", TEXT, "Why not.", required=True)),
    ),
    Command(
        "restore-product-eligibility",
        "restore_product_eligibility",
        "Make a product marked ineligible for a business unit possible again.",
        (UNIT, PRODUCT),
    ),
    Command(
        "target-opportunity",
        "target_opportunity",
        "Aim an open opportunity at a business unit (replacing an earlier target).",
        (OPPORTUNITY, UNIT),
    ),
    # personal data
    Command(
        "erase-subject",
        "erase_subject",
        "Erase a data subject's personal data (a stakeholder id, see docs/domain.md); "
        "the reason must not name the person.",
        (_f("subject_id", ID, "The data subject's id.", required=True, flag="--subject"), REASON),
    ),
)


# --- accounts by id, external key or name ------------------------------------------------------


def _has_events(service: AccountService, account_id: UUID) -> bool:
    return bool(service.recorder.select_events(account_id, limit=1))


def accounts_named(service: AccountService, name: str, *, page: int = 500) -> list[UUID]:
    """The ids of the accounts opened under exactly ``name`` (names never change), read from
    the store's ``AccountOpened`` events (no read model needed)."""
    topic = get_topic(ev.AccountOpened)
    found: list[UUID] = []
    start = 1
    while True:
        notifications = service.recorder.select_notifications(start, page, topics=[topic])
        for notification in notifications:
            event = service.mapper.to_domain_event(notification)
            if isinstance(event, ev.AccountOpened) and event.name == name:
                found.append(event.originator_id)
        if len(notifications) < page:
            return found
        start = notifications[-1].id + 1


def resolve_account(service: AccountService, text: str, option: str = "--account") -> UUID:
    """The account ``text`` names: its id, the external key it was opened with (``crm:1``),
    or its exact name (one account only); else one ``error:`` line and exit code 2."""
    if not text.strip():
        _fail(f"{option}: expected an account's id, external key or name, got {text!r}")
    try:
        account_id = UUID(text)
    except ValueError:
        pass
    else:
        if not _has_events(service, account_id):
            _fail(f"{option} {text}: the store has no such account")
        return account_id
    keyed = account_id_for(text)
    if _has_events(service, keyed):
        return keyed
    named = accounts_named(service, text)
    if not named:
        _fail(f"{option} {text!r}: no account has this id, external key or name")
    if len(named) > 1:
        ids = ", ".join(sorted(str(found) for found in named))
        _fail(
            f"{option} {text!r}: {len(named)} accounts have this name ({ids}); "
            "give the id or the external key"
        )
    return named[0]


# --- the subcommands ---------------------------------------------------------------------------

Account = Annotated[
    str | None,
    typer.Option(
        "--account",
        metavar="ACCOUNT",
        help="The account: its id, the external key it was opened with (crm:1), or its exact "
        "name. Required.",
        show_default=False,
    ),
]
Actor = Annotated[
    str | None,
    typer.Option(
        "--actor",
        envvar=ACTOR_VARIABLE,
        metavar="NAME",
        help=f"Who records it (default: ${ACTOR_VARIABLE}).",
        show_default=False,
        show_envvar=False,
    ),
]
At = Annotated[
    str | None,
    typer.Option(
        "--at",
        metavar="WHEN",
        help="When it happened in the business: a time with its offset "
        "(2026-03-02T10:00+01:00) or a date (midnight UTC). Default: now.",
        show_default=False,
    ),
]
IdempotencyKey = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        metavar="KEY",
        help="Repeating the command with this key records nothing more and prints the first "
        "result; an item it creates gets an id derived from the key.",
        show_default=False,
    ),
]
ExpectedVersion = Annotated[
    str | None,
    typer.Option(
        "--expected-version",
        metavar="N",
        help="Refuse unless the account is at this version.",
        show_default=False,
    ),
]

_COMMON: tuple[tuple[str, Any], ...] = (
    ("actor", Actor),
    ("at", At),
    ("idempotency_key", IdempotencyKey),
    ("expected_version", ExpectedVersion),
    ("db", Db),
    ("as_json", AsJson),
)


def record_app(host: PluginHost | None = None) -> typer.Typer:
    """The ``record`` command group: a subcommand per entry of :data:`COMMANDS`, on the store
    named by ``--db`` with ``host``'s plugins (default: a ``PluginHost()`` made on use)."""
    group = typer.Typer(
        name=GROUP,
        help="Record what happened: a subcommand per command of the service.",
        no_args_is_help=True,
        context_settings={"obj": _Plugins(host)},
    )
    for command in COMMANDS:
        group.command(command.name, help=command.help)(_callback(command))
    return group


def _callback(command: Command) -> Callable[..., None]:
    """A function whose signature typer reads: ``ctx``, ``--account``, the command's fields,
    then the common options; every value arrives as text and is parsed by :func:`_record`."""

    def run(ctx: typer.Context, **given: Any) -> None:
        _record(ctx, command, given)

    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    ]
    if command.addressed:
        parameters.append(inspect.Parameter("account", keyword, default=None, annotation=Account))
    for field in command.fields:
        text: Any = list[str] | None if field.repeat else str | None
        option = typer.Option(
            field.option, metavar=field.metavar, help=field.help_text(), show_default=False
        )
        annotation = Annotated[text, option]
        parameters.append(
            inspect.Parameter(field.name, keyword, default=None, annotation=annotation)
        )
    for name, annotation in _COMMON:
        default = False if name == "as_json" else None
        parameters.append(inspect.Parameter(name, keyword, default=default, annotation=annotation))
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {}
    run.__name__ = run.__qualname__ = command.method
    run.__doc__ = command.help
    return run


def _at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = parse_moment(text)
    except NaiveTime:
        _fail(f"--at: a time needs its offset (2026-03-02T10:00+00:00), got {text!r}")
    except ValueError:
        _fail(f"--at: expected a date (2026-03-02) or a time with its offset, got {text!r}")
    return moment_of("at", moment, end=False)


def _options(given: dict[str, Any]) -> dict[str, Any]:
    """The command options (who, when, key, version) of the common options given."""
    actor = given.pop("actor")
    if actor is None or not actor.strip():
        _fail(f"--actor: who records the command is required (or set ${ACTOR_VARIABLE})")
    options: dict[str, Any] = {"actor": actor}
    at = _at(given.pop("at"))
    if at is not None:
        options["effective_at"] = at
    key = given.pop("idempotency_key")
    if key is not None:
        if not key.strip():
            _fail("--idempotency-key: expected a non-empty key")
        options["idempotency_key"] = key
    version = given.pop("expected_version")
    if version is not None:
        number = _integer("--expected-version", version)
        if number < 1:
            _fail(f"--expected-version: expected a version >= 1, got {version!r}")
        options["expected_version"] = number
    return options


def _arguments(command: Command, given: Mapping[str, Any]) -> dict[str, Any]:
    """The method's keywords: each field's text parsed; a required one missing is an error."""
    values: dict[str, Any] = {}
    for field in command.fields:
        text = given[field.name]
        if text is None or (field.repeat and not text):
            if field.required:
                _fail(f"{field.option} is required ({field.help.rstrip('.')})")
            continue
        if field.repeat:
            values[field.name] = [field.kind.parse(field.option, item) for item in text]
        else:
            values[field.name] = field.kind.parse(field.option, text)
    return command.finish(values) if command.finish else values


def _needs_currency(value: Any) -> bool:
    if isinstance(value, list):
        return any(_needs_currency(item) for item in value)
    if isinstance(value, Line):
        return value.amount.currency is None
    return isinstance(value, Amount) and value.currency is None


def _in_currency(value: Any, currency: str | None) -> Any:
    """``value`` with what was typed as amounts or lines as Money or ProductLine (an
    amount without its currency in ``currency``)."""
    if isinstance(value, list):
        return [_in_currency(item, currency) for item in value]
    if isinstance(value, Line):
        return value.product_line(currency)
    if isinstance(value, Amount):
        return value.money(currency)
    return value


def _run(
    service: AccountService, command: Command, account: str | None, arguments: dict[str, Any]
) -> Any:
    method = getattr(service, command.method)
    if not command.addressed:
        return method(**arguments)
    assert account is not None
    account_id = resolve_account(service, account)
    currency = None
    if any(_needs_currency(value) for value in arguments.values()):
        currency = service.get_account(account_id).currency
    arguments = {name: _in_currency(value, currency) for name, value in arguments.items()}
    return method(account_id, **arguments)


def result_report(command: str, where: str, result: Any) -> dict[str, Any]:
    """What ``acctdomain record COMMAND --json`` prints; every key is always present."""
    return {
        "db": where,
        "command": command,
        "account_id": str(result.account_id),
        "version": result.version,
        "entity_id": None if result.entity_id is None else str(result.entity_id),
    }


def _record(ctx: typer.Context, command: Command, given: dict[str, Any]) -> None:
    as_json: bool = given.pop("as_json")
    db: str | None = given.pop("db")
    account: str | None = given.pop("account", None)
    options = _options(given)
    arguments = _arguments(command, given)
    if command.addressed and account is None:
        _fail("--account is required (the account's id, external key or name)")
    with _session(ctx, db) as (service, where):
        try:
            result = _run(service, command, account, {**arguments, **options})
        except REFUSALS as error:
            _fail(f"{command.name} refused: {' '.join(str(error).split())}")
    report = result_report(command.name, where, result)
    if as_json:
        _echo_json(report)
        return
    made = f"; {command.entity} {report['entity_id']}" if report["entity_id"] else ""
    _stdout().print(
        f"recorded {command.name} on account {report['account_id']} "
        f"(version {report['version']}){made}",
        markup=False,
    )
