"""A seeded, realistic book of business, written only through the public AccountService API.

:func:`generate_book` simulates each account on its own timeline: a small discrete-event
simulation that keeps a shadow of the account's state, so every command it issues is valid.
Each account has a hidden *health* that drifts over time and drives what an account manager
can observe: how often the customer talks to us, how many issues it raises and how fast they
are fixed, survey scores, stakeholder sentiment, champions leaving. At each renewal the churn
probability is computed from those observable signals only (not from the hidden health), so
that a risk model fed with the events has something real to find.

Most mid-market and enterprise customers (and a few small ones) have business units, their
regions or divisions: each uses some of the account's product lines, some products are ruled
out for a unit (with the reason; now and then restored), most offers are aimed at a unit, a
won offer is adopted by its unit, and a unit stops using a line that is downgraded or dropped;
units are now and then renamed, merged away or added. That is the white space (issue 6).
Units draw from a random stream of their own (seeded from the account's key), so the rest of
the book is what it was without them.

Everything random comes from ``random.Random(seed)``: the same seed gives the same commands
with the same effective times and the same ids.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

import attrs

from acctdomain.application import AccountService, CommandResult, KpiSettings
from acctdomain.domain import (
    AccountStatus,
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
    account_id_for,
)
from acctdomain.domain.values import require_aware
from acctdomain.errors import AccountAlreadyExists, CommandRejected, InvalidValue

__all__ = [
    "DEMO_KPI_SETTINGS",
    "BookSummary",
    "ProgressCallback",
    "eur_at_demo_rate",
    "generate_book",
]

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each account is written."""

_DEMO_RATES: dict[str, Decimal] = {
    "EUR": Decimal("1"),
    "USD": Decimal("0.92"),
    "GBP": Decimal("1.16"),
    "CHF": Decimal("1.04"),
}


DEMO_KPI_SETTINGS = KpiSettings(
    reporting_currency="EUR",
    rates={f"{currency}/EUR": rate for currency, rate in _DEMO_RATES.items() if currency != "EUR"},
    gross_margin="0.75",
)
"""The scorecard settings of the demo: the book's currencies reported in EUR at the demo's fixed
rates, and a gross margin for the predictive lifetime value."""


def eur_at_demo_rate(amount: Money) -> Decimal:
    """``amount`` in EUR at fixed demo rates, for ranking and rough totals only (the book
    itself never converts). Raises InvalidValue for a currency the demo does not use."""
    try:
        return amount.amount * _DEMO_RATES[amount.currency]
    except KeyError:
        raise InvalidValue("currency", f"no demo rate for {amount.currency}") from None


T = TypeVar("T")


@attrs.frozen(kw_only=True)
class BookSummary:
    """What :func:`generate_book` wrote.

    ``churns`` counts churn events, ``churned_accounts`` the accounts that churned at least
    once; ``renewals`` counts renewals (of any kind: flat, expanded or contracted).
    """

    seed: int
    start: date
    end: date
    account_ids: tuple[UUID, ...]
    commands: int
    events: int
    commands_by_name: tuple[tuple[str, int], ...]
    renewals: int
    churns: int
    churned_accounts: int
    reactivated_accounts: int

    @property
    def accounts(self) -> int:
        """Number of accounts written."""
        return len(self.account_ids)

    @property
    def events_per_account(self) -> float:
        """Mean number of events per account."""
        return self.events / len(self.account_ids) if self.account_ids else 0.0


# --- the market -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Profile:
    """How accounts of one segment behave (rates are per 30 days)."""

    share: float
    arr: tuple[int, int]
    rounding: int
    products: tuple[int, int]
    stakeholders: tuple[int, int]
    contacts: float
    requests: float
    issues: float
    opportunities: float
    qbr: float
    plan: float
    base_risk: float
    term_years: tuple[int, ...]
    unit_share: float  # accounts whose business units are mapped
    units: tuple[int, int]  # how many units such an account has at first
    channels: tuple[tuple[Channel, float], ...]
    managers: tuple[tuple[str, ManagerType], ...]


_PROFILES: dict[Segment, _Profile] = {
    Segment.SMB: _Profile(
        share=0.55,
        arr=(4_000, 30_000),
        rounding=100,
        products=(1, 2),
        stakeholders=(2, 3),
        contacts=0.6,
        requests=0.15,
        issues=0.2,
        opportunities=0.15,
        qbr=0.0,
        plan=0.2,
        base_risk=-2.7,
        term_years=(1,),
        unit_share=0.08,
        units=(2, 2),
        channels=(
            (Channel.EMAIL, 0.5),
            (Channel.PHONE, 0.25),
            (Channel.VIDEO_CALL, 0.2),
            (Channel.CHAT, 0.05),
        ),
        managers=(
            ("Lena Fischer", ManagerType.SALES),
            ("Tom Becker", ManagerType.SALES),
            ("Aisha Khan", ManagerType.SALES),
        ),
    ),
    Segment.MID_MARKET: _Profile(
        share=0.32,
        arr=(30_000, 150_000),
        rounding=500,
        products=(1, 3),
        stakeholders=(3, 5),
        contacts=1.0,
        requests=0.25,
        issues=0.3,
        opportunities=0.25,
        qbr=0.5,
        plan=0.7,
        base_risk=-3.0,
        term_years=(1, 1, 1, 2),
        unit_share=0.6,
        units=(2, 4),
        channels=(
            (Channel.EMAIL, 0.4),
            (Channel.PHONE, 0.2),
            (Channel.VIDEO_CALL, 0.3),
            (Channel.MEETING, 0.07),
            (Channel.CHAT, 0.03),
        ),
        managers=(
            ("Marco Rossi", ManagerType.SALES),
            ("Priya Raman", ManagerType.TECHNICAL),
            ("Jonas Weber", ManagerType.TECHNICAL),
        ),
    ),
    Segment.ENTERPRISE: _Profile(
        share=0.13,
        arr=(150_000, 1_200_000),
        rounding=1_000,
        products=(2, 4),
        stakeholders=(5, 8),
        contacts=2.0,
        requests=0.45,
        issues=0.45,
        opportunities=0.35,
        qbr=1.0,
        plan=1.0,
        base_risk=-3.4,
        term_years=(1, 1, 2, 3),
        unit_share=0.9,
        units=(3, 5),
        channels=(
            (Channel.EMAIL, 0.35),
            (Channel.PHONE, 0.15),
            (Channel.VIDEO_CALL, 0.3),
            (Channel.MEETING, 0.15),
            (Channel.SITE_VISIT, 0.03),
            (Channel.EVENT, 0.02),
        ),
        managers=(
            ("Claire Dubois", ManagerType.STRATEGIC),
            ("James Okafor", ManagerType.STRATEGIC),
            ("Sofia Lindqvist", ManagerType.TECHNICAL),
        ),
    ),
}

_CURRENCIES = (("EUR", 0.5), ("USD", 0.35), ("GBP", 0.1), ("CHF", 0.05))
_LEGAL_FORMS = {
    "EUR": ("GmbH", "SE", "B.V.", "S.A.S.", "S.p.A."),
    "USD": ("Inc.", "LLC", "Corp."),
    "GBP": ("Ltd", "plc"),
    "CHF": ("AG", "GmbH"),
}
_INDUSTRIES = {
    "Software": ("Labs", "Systems", "Cloud"),
    "Manufacturing": ("Industries", "Components", "Manufacturing"),
    "Retail": ("Retail", "Stores", "Markets"),
    "Healthcare": ("Health", "Medical", "Care"),
    "Financial Services": ("Capital", "Finance", "Partners"),
    "Logistics": ("Logistics", "Freight", "Transport"),
    "Education": ("Learning", "Academy", "Education"),
    "Media": ("Media", "Studios", "Publishing"),
    "Energy": ("Energy", "Power", "Renewables"),
    "Public Sector": ("Services", "Agency", "Works"),
}
_NAME_ROOTS = (
    "Alpenglow", "Atlas", "Bluefin", "Brightpath", "Cobalt", "Crescent", "Evergreen", "Falcon",
    "Granite", "Greenfield", "Harbor", "Helix", "Horizon", "Ironclad", "Juniper", "Kestrel",
    "Keystone", "Larkspur", "Lumen", "Maple", "Meridian", "Nimbus", "Nordwind", "Northstar",
    "Oakridge", "Orion", "Pinnacle", "Polaris", "Quantix", "Quarry", "Redwood", "Riverbend",
    "Sable", "Sequoia", "Silverline", "Summit", "Tidewater", "Umbra", "Vantage", "Vertex",
    "Willow", "Zephyr",
)  # fmt: skip
_FIRST_NAMES = (
    "Anna", "Ben", "Carla", "David", "Elif", "Felix", "Grace", "Hugo", "Ines", "Jan", "Kira",
    "Luca", "Maya", "Nils", "Olivia", "Pedro", "Qiu", "Rosa", "Sam", "Tara", "Umar", "Vera",
    "Wim", "Xenia", "Yusuf", "Zoe", "Mateo", "Hannah", "Ravi", "Chloe",
)  # fmt: skip
_LAST_NAMES = (
    "Adams", "Bauer", "Costa", "Dimitrov", "Eriksen", "Fontaine", "Garcia", "Hansen", "Ito",
    "Jansen", "Kowalski", "Lopez", "Meyer", "Novak", "O'Brien", "Petrov", "Quinn", "Rossi",
    "Schmidt", "Tanaka", "Ueda", "Varga", "Walsh", "Yilmaz", "Zimmermann", "Nguyen", "Moreau",
    "Silva", "Berg", "Keller",
)  # fmt: skip
_TITLES = {
    StakeholderRole.CHAMPION: (
        "Head of Operations",
        "IT Manager",
        "Director of Process Excellence",
    ),
    StakeholderRole.ECONOMIC_BUYER: ("CFO", "VP Finance", "Head of Procurement"),
    StakeholderRole.DECISION_MAKER: ("COO", "CIO", "VP Operations"),
    StakeholderRole.EXECUTIVE_SPONSOR: ("CEO", "Chief Digital Officer", "Managing Director"),
    StakeholderRole.INFLUENCER: ("Team Lead", "Senior Analyst", "Project Manager"),
    StakeholderRole.TECHNICAL_BUYER: ("Head of IT", "Enterprise Architect", "IT Security Lead"),
    StakeholderRole.USER: ("Operations Specialist", "Analyst", "Coordinator"),
    StakeholderRole.DETRACTOR: ("Procurement Manager", "Owner of the legacy system"),
}
_CORE = "Core Platform"
_PRODUCTS = (
    _CORE,
    "Analytics",
    "Integrations Hub",
    "Premium Support",
    "Security Suite",
    "Data Connectors",
    "Mobile Workforce",
    "AI Assistant",
)
_KEY_ROLES = frozenset(
    {
        StakeholderRole.CHAMPION,
        StakeholderRole.ECONOMIC_BUYER,
        StakeholderRole.DECISION_MAKER,
        StakeholderRole.EXECUTIVE_SPONSOR,
    }
)
_CONTACT_SUMMARIES = {
    Channel.EMAIL: ("Follow-up on open questions", "Sent release notes", "Shared usage report"),
    Channel.PHONE: ("Check-in call", "Discussed a support case", "Quick sync on priorities"),
    Channel.VIDEO_CALL: ("Roadmap walkthrough", "Adoption review", "Training session"),
    Channel.MEETING: ("On-site workshop", "Planning meeting", "Executive alignment"),
    Channel.CHAT: ("Quick question answered", "Pointer to documentation"),
    Channel.SITE_VISIT: ("Site visit with the operations team",),
    Channel.EVENT: ("Met at the user conference", "Customer advisory board"),
    Channel.QBR: ("Quarterly business review",),
}
_REQUEST_SUBJECTS = (
    "Add five more user licences",
    "Export of last year's data",
    "Invoice address change",
    "SSO configuration help",
    "Training for new team members",
    "Custom report template",
    "API rate limit increase",
    "Copy of the security whitepaper",
    "Sandbox environment",
    "Renewal quote",
)
_ISSUE_CATEGORIES = {
    "bug": ("Report export fails", "Wrong totals in dashboard", "Mobile app crashes on login"),
    "performance": ("Dashboards load slowly", "Nightly sync takes hours"),
    "integration": ("ERP sync stopped", "Webhook deliveries failing"),
    "billing": ("Invoice shows wrong seat count", "Double charge on last invoice"),
    "access": ("Users locked out after SSO change", "Permission errors for managers"),
    "data quality": ("Duplicate records after import", "Missing history for some records"),
    "outage": ("Platform unavailable", "API returns errors for all requests"),
}
_CRITICAL_CATEGORIES = ("outage", "data quality", "integration")
_TEAMS = ("Engineering", "Product", "Support Tier 2", "Security", "Finance")
_VALUE_DESCRIPTIONS = (
    "Hours saved by automated reporting",
    "Reduced licence costs of replaced tools",
    "Fewer stock-outs after forecasting rollout",
    "Faster month-end close",
    "Lower support costs through self-service",
)
_GOALS = (
    ("Expand adoption to a second business unit", "active users"),
    ("Reach 90% weekly active usage", "weekly active users / licences"),
    ("Executive sponsorship secured", "QBR attendance by an executive"),
    ("Consolidate tooling on our platform", "tools retired"),
    ("Prove ROI before renewal", "documented savings"),
)
_STRATEGIES = (
    "Run enablement sessions for team leads",
    "Build a business case with the economic buyer",
    "Pilot the analytics module with one team",
    "Map the stakeholders of the new business unit",
    "Set up a joint success plan",
)
_TACTICS = (
    "Schedule training",
    "Share customer story from the same industry",
    "Prepare ROI summary",
    "Introduce solutions engineer",
    "Invite to user conference",
    "Send adoption report",
)
_LOSS_REASONS = ("no budget this year", "timing", "chose to build in-house", "priority shifted")
_DOWNGRADE_REASONS = ("fewer users", "budget cut", "team reorganised", "project ended")
_REASSIGN_REASONS = (
    "territory rebalancing",
    "previous account manager left the company",
    "customer asked for a different contact",
)
_REACTIVATION_CHANCE = {
    ChurnReason.PRICE: 0.4,
    ChurnReason.BUDGET_CUT: 0.45,
    ChurnReason.COMPETITOR: 0.3,
    ChurnReason.PRODUCT_FIT: 0.2,
    ChurnReason.POOR_SERVICE: 0.25,
    ChurnReason.ACQUIRED: 0.1,
    ChurnReason.OUT_OF_BUSINESS: 0.0,
    ChurnReason.OTHER: 0.3,
}
_CHURN_DETAILS = {
    ChurnReason.PRICE: "price increase not accepted",
    ChurnReason.BUDGET_CUT: "budget cut after reorganisation",
    ChurnReason.COMPETITOR: "moved to a competitor",
    ChurnReason.PRODUCT_FIT: "product did not meet their needs",
    ChurnReason.POOR_SERVICE: "unhappy with how issues were handled",
    ChurnReason.ACQUIRED: "acquired; the parent company has its own tools",
    ChurnReason.OUT_OF_BUSINESS: "the company closed",
    ChurnReason.OTHER: "did not renew",
}
# A customer's business units are its regions or its divisions.
_REGIONS = (
    "EMEA", "North America", "APAC", "DACH", "Nordics", "UK & Ireland", "LATAM", "Benelux",
    "France", "Iberia",
)  # fmt: skip
_DIVISIONS = (
    "Finance", "Operations", "Sales", "Marketing", "Human Resources", "IT", "Supply Chain",
    "Customer Service", "Research & Development", "Procurement",
)  # fmt: skip
_UNIT_RENAMES = {
    "APAC": "Asia Pacific",
    "LATAM": "Latin America",
    "Nordics": "Northern Europe",
    "Benelux": "Low Countries",
    "Operations": "Operations & Logistics",
    "Sales": "Commercial",
    "Human Resources": "People & Culture",
    "IT": "Digital & Technology",
    "Supply Chain": "Supply Chain & Logistics",
    "Customer Service": "Customer Experience",
}
_UNIT_REMOVAL_REASONS = (
    "merged into {other}",
    "sold to another company",
    "closed in a restructuring",
)
_INELIGIBLE_REASONS = {
    _CORE: "runs a legacy system until its migration is done",
    "Analytics": "reports on the group's own BI platform",
    "Integrations Hub": "its integrations are run by the group's IT",
    "Premium Support": "has support included in a group contract",
    "Security Suite": "must use the group's security tooling",
    "Data Connectors": "data residency rules keep its data in-country",
    "Mobile Workforce": "has no field staff",
    "AI Assistant": "AI tools not yet approved by the works council",
}


# --- helpers ----------------------------------------------------------------------------------


def _pick(rng: random.Random, weighted: Sequence[tuple[T, float]]) -> T:
    """One item of ``weighted`` (item, weight) pairs."""
    items = [item for item, _ in weighted]
    weights = [weight for _, weight in weighted]
    return rng.choices(items, weights)[0]


def _uuid(rng: random.Random) -> UUID:
    """A random (version 4) UUID drawn from ``rng``, so ids repeat with the seed."""
    return UUID(int=rng.getrandbits(128), version=4)


def _add_years(day: date, years: int) -> date:
    """The same day ``years`` later (28 February for a 29 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year + years, day=28)


def _round(value: float, step: int) -> Decimal:
    """A positive whole amount, rounded to ``step``."""
    return Decimal(max(step, round(value / step) * step))


def _clamp(value: float, low: float = 0.02, high: float = 0.98) -> float:
    """``value`` kept within [low, high]."""
    return min(high, max(low, value))


def _office(moment: datetime) -> datetime:
    """The first office-hours moment (Mon-Fri 08:00-18:00 UTC) at or after ``moment``.

    Monotone (a later input never gives an earlier output) and never earlier than the input,
    so a follow-up computed from its cause stays after it.
    """
    result = moment
    if result.hour >= 18:
        result = (result + timedelta(days=1)).replace(hour=8, minute=0)
    elif result.hour < 8:
        result = result.replace(hour=8, minute=0)
    while result.weekday() >= 5:
        result = (result + timedelta(days=1)).replace(hour=8, minute=0)
    return result


def _sentiment(rng: random.Random, health: float) -> Sentiment:
    """How a stakeholder feels, given the account's health and some noise."""
    felt = health + rng.gauss(0, 0.15)
    if felt > 0.62:
        return Sentiment.POSITIVE
    if felt > 0.38:
        return Sentiment.NEUTRAL
    return Sentiment.NEGATIVE


# --- the simulation of one account ------------------------------------------------------------


@attrs.frozen
class _Command:
    """One service call of the timeline."""

    at: datetime
    name: str
    arguments: dict[str, Any]
    correlation_id: UUID


@attrs.define
class _Person:
    """The simulation's view of a stakeholder."""

    stakeholder_id: UUID
    name: str
    role: StakeholderRole
    sentiment: Sentiment
    title: str
    active: bool = True


@attrs.frozen
class _OpenIssue:
    """An issue not resolved yet; ``chain`` is the correlation id of its commands."""

    severity: IssueSeverity
    chain: UUID


@attrs.frozen
class _OpenOpportunity:
    """An offer not decided yet; ``chain`` is the correlation id of its commands."""

    kind: OpportunityKind
    product: str
    estimated: Decimal
    chain: UUID


@attrs.define
class _Unit:
    """The simulation's view of a business unit: what it uses and what it cannot use."""

    name: str
    products: set[str] = attrs.Factory(set)
    ineligible: set[str] = attrs.Factory(set)
    active: bool = True


@attrs.define
class _AccountSim:
    """Simulates one account from its opening to ``cutoff`` and returns its timeline.

    Handlers run in effective-time order from a queue; each checks the shadow state before it
    appends a command, so the timeline is valid when issued in order.
    """

    rng: random.Random
    segment: Segment
    profile: _Profile
    opened_at: datetime
    cutoff: datetime
    inherited: bool
    name: str
    industry: str
    currency: str
    manager: str
    manager_type: ManagerType
    external_key: str
    # Business units draw from a stream of their own, so that modelling them left the rest of
    # the book (every other draw of ``rng``) as it was.
    unit_rng: random.Random
    commands: list[_Command] = attrs.Factory(list)
    queue: list[tuple[datetime, int, Callable[[], None]]] = attrs.Factory(list)
    sequence: int = 0
    now: datetime = attrs.field(init=False)
    # Hidden health in [0, 1] and the level it drifts back to.
    health: float = 0.7
    baseline: float = 0.7
    status: AccountStatus = AccountStatus.ONBOARDING
    lines: dict[str, Decimal] = attrs.Factory(dict)
    term_end: date | None = None
    term: int = 0
    arr_before_churn: Decimal = Decimal(0)
    people: dict[UUID, _Person] = attrs.Factory(dict)
    champion_left_at: datetime | None = None
    contacts: list[datetime] = attrs.Factory(list)
    escalations: list[datetime] = attrs.Factory(list)
    severe_issues: list[datetime] = attrs.Factory(list)  # high and critical, when raised
    value_delivered: list[datetime] = attrs.Factory(list)
    latest_nps: tuple[datetime, int] | None = None
    issues: dict[UUID, _OpenIssue] = attrs.Factory(dict)
    requests: set[UUID] = attrs.Factory(set)
    opportunities: dict[UUID, _OpenOpportunity] = attrs.Factory(dict)
    goal: UUID | None = None
    goal_closed_at: datetime | None = None
    tactics: dict[UUID, UUID] = attrs.Factory(dict)  # open tactic -> its goal
    has_plan: bool = False
    has_qbr: bool = False
    has_units: bool = False
    units: dict[UUID, _Unit] = attrs.Factory(dict)
    targets: dict[UUID, UUID] = attrs.Factory(dict)  # open opportunity -> the unit it aims at
    unit_names: tuple[str, ...] = ()  # the names its units come from (regions or divisions)
    renewals: int = 0
    churns: int = 0
    reactivations: int = 0

    def __attrs_post_init__(self) -> None:
        """Start the clock at the opening."""
        self.now = self.opened_at

    # --- machinery ----------------------------------------------------------------------------

    def run(self) -> list[_Command]:
        """Simulate up to the cutoff; the commands come out in effective-time order."""
        self.health = self.baseline = _clamp(self.rng.betavariate(3, 1.6))
        self.has_plan = self.rng.random() < self.profile.plan
        self.has_qbr = self.rng.random() < self.profile.qbr
        self.has_units = self.unit_rng.random() < self.profile.unit_share
        self._at(self.opened_at, self._open)
        while self.queue:
            when, _, action = heapq.heappop(self.queue)
            if when > self.cutoff:
                break
            self.now = when
            action()
        return self.commands

    def _at(self, when: datetime, action: Callable[[], None]) -> None:
        """Schedule ``action`` at ``when`` (never before now)."""
        # Whole minutes keep times readable; never before now, so causes precede effects.
        when = max(when.replace(second=0, microsecond=0), self.now)
        self.sequence += 1
        heapq.heappush(self.queue, (when, self.sequence, action))

    def _after(self, days: float, action: Callable[[], None], *, office: bool = True) -> None:
        """Schedule ``action`` ``days`` from now, in office hours unless ``office`` is False."""
        when = self.now + timedelta(minutes=max(1, round(days * 1440)))
        self._at(_office(when) if office else when, action)

    def _emit(self, command: str, chain: UUID | None = None, /, **arguments: Any) -> None:
        """Append a command at the current time to the timeline."""
        self.commands.append(_Command(self.now, command, arguments, chain or _uuid(self.rng)))

    def _money(self, amount: Decimal) -> Money:
        """``amount`` in the account's currency."""
        return Money(amount, self.currency)

    def _lines(self) -> tuple[ProductLine, ...]:
        """The current product lines as ProductLine values."""
        return tuple(ProductLine(p, self._money(a)) for p, a in self.lines.items())

    def _arr(self) -> Decimal:
        """Current ARR."""
        return sum(self.lines.values(), Decimal(0))

    def _active_people(self, roles: frozenset[StakeholderRole] | None = None) -> list[_Person]:
        """Stakeholders still at the customer, optionally only those with ``roles``."""
        return [p for p in self.people.values() if p.active and (roles is None or p.role in roles)]

    def _champion(self) -> _Person | None:
        """The active champion, if there is one."""
        found = self._active_people(frozenset({StakeholderRole.CHAMPION}))
        return found[0] if found else None

    def _recent(self, times: list[datetime], days: int) -> int:
        """How many of the sorted ``times`` fall in the last ``days`` days."""
        return len(times) - bisect_left(times, self.now - timedelta(days=days))

    def _shock(self, delta: float) -> None:
        """Move the hidden health by ``delta``."""
        self.health = _clamp(self.health + delta)

    def _person_name(self) -> str:
        """A made-up person's name."""
        return f"{self.rng.choice(_FIRST_NAMES)} {self.rng.choice(_LAST_NAMES)}"

    # --- opening and contract -----------------------------------------------------------------

    def _open(self) -> None:
        """Open the account, map its first stakeholders and start the recurring processes."""
        self._emit(
            "open_account",
            name=self.name,
            segment=self.segment,
            industry=self.industry,
            currency=self.currency,
            manager=self.manager,
            manager_type=self.manager_type,
            external_key=self.external_key,
        )
        count = self.rng.randint(*self.profile.stakeholders)
        roles = [
            StakeholderRole.CHAMPION,
            StakeholderRole.ECONOMIC_BUYER,
            StakeholderRole.DECISION_MAKER,
            StakeholderRole.TECHNICAL_BUYER,
            StakeholderRole.USER,
            StakeholderRole.INFLUENCER,
            StakeholderRole.EXECUTIVE_SPONSOR,
            StakeholderRole.USER,
        ][:count]
        if count >= 5 and self.rng.random() < 0.3:
            roles[-1] = StakeholderRole.DETRACTOR
        for role in roles:
            self._after(self.rng.uniform(0.01, 10), partial(self._add_person, role))
        if self.inherited:
            # An existing customer handed over: its contract runs already, renewal is near.
            self._after(self.rng.uniform(0.002, 0.05), self._start_contract, office=False)
        else:
            self._after(self.rng.uniform(0.05, 10), self._start_contract)
        for tick, mean_days in (
            (self._contact_tick, 30 / self.profile.contacts),
            (self._request_tick, 30 / self.profile.requests),
            (self._issue_tick, 30 / self.profile.issues),
            (self._drift_tick, 30),
            (self._people_tick, 30),
            (self._survey_tick, 150),
            (self._value_tick, 120),
            (self._opportunity_tick, 90),
            (self._expansion_tick, 120),
            (self._downgrade_tick, 60),
            (self._plan_tick, 30),
            (self._qbr_tick, 91),
            (self._reassign_tick, 180),
        ):
            self._after(self.rng.uniform(1, mean_days), tick)

    def _add_person(self, role: StakeholderRole, sentiment: Sentiment | None = None) -> None:
        """Add a stakeholder; the sentiment follows the role and the account's health."""
        if sentiment is None:
            if role is StakeholderRole.CHAMPION:
                sentiment = Sentiment.POSITIVE
            elif role is StakeholderRole.DETRACTOR:
                sentiment = Sentiment.NEGATIVE
            elif self.rng.random() < 0.2:
                sentiment = Sentiment.UNKNOWN
            else:
                sentiment = _sentiment(self.rng, self.health)
        person = _Person(
            _uuid(self.rng), self._person_name(), role, sentiment, self.rng.choice(_TITLES[role])
        )
        self.people[person.stakeholder_id] = person
        self._emit(
            "add_stakeholder",
            name=person.name,
            role=role,
            sentiment=sentiment,
            title=person.title,
            stakeholder_id=person.stakeholder_id,
        )

    def _start_contract(self) -> None:
        """Start the first contract: ARR by segment, core product plus add-ons."""
        count = self.rng.randint(*self.profile.products)
        low, high = self.profile.arr
        total = math.exp(self.rng.uniform(math.log(low), math.log(high)))
        products = [_CORE, *self.rng.sample(_PRODUCTS[1:], count - 1)]
        shares = [1.0]
        if count > 1:
            core = self.rng.uniform(0.55, 0.8)
            shares = [core] + [(1 - core) / (count - 1)] * (count - 1)
        self.lines = {
            product: _round(total * share, self.profile.rounding)
            for product, share in zip(products, shares, strict=True)
        }
        if self.inherited:
            self.term_end = self.now.date() + timedelta(days=self.rng.randint(30, 365))
        else:
            years = self.rng.choice(self.profile.term_years)
            self.term_end = _add_years(self.now.date(), years)
        self._emit("start_contract", term_end=self.term_end, lines=self._lines())
        self.status = AccountStatus.ACTIVE
        self._schedule_renewal()
        if self.has_units:
            self._after(self.unit_rng.uniform(1, 30), self._map_units)

    # --- renewal, churn, reactivation ---------------------------------------------------------

    def _schedule_renewal(self) -> None:
        """Plan the next renewal (about 90 days before the term ends)."""
        assert self.term_end is not None
        self.term += 1
        end = datetime.combine(self.term_end, datetime.min.time(), UTC)
        due = end - timedelta(days=self.rng.uniform(80, 100))
        self._at(max(_office(due), self.now + timedelta(days=1)), partial(self._due, self.term))

    def _due(self, term: int) -> None:
        """Put the renewal in the pipeline and plan the renewal call and decision."""
        if term != self.term or self.status is not AccountStatus.ACTIVE:
            return
        assert self.term_end is not None
        chain = _uuid(self.rng)
        self._emit("mark_renewal_due", chain, due_on=self.term_end)
        end = datetime.combine(self.term_end, datetime.min.time(), UTC)
        decide = max(
            _office(end - timedelta(days=self.rng.uniform(1, 40))),
            self.now + timedelta(days=self.rng.uniform(3, 20)),
        )
        if self.rng.random() < 0.3 + 0.6 * self.health:
            # The renewal conversation; unhappy customers are harder to get on the phone.
            self._after(self.rng.uniform(3, 25), partial(self._renewal_call, chain))
        self._at(decide, partial(self._decide, term, chain))

    def _renewal_call(self, chain: UUID) -> None:
        """Talk to the buyers about the renewal."""
        if self.status is not AccountStatus.ACTIVE:
            return
        buyers = self._active_people(
            frozenset({StakeholderRole.ECONOMIC_BUYER, StakeholderRole.DECISION_MAKER})
        )
        self._contact(Channel.VIDEO_CALL, Direction.OUTBOUND, "Renewal discussion", buyers, chain)

    def risk(self) -> tuple[float, dict[str, float]]:
        """The churn probability now, from the signals an account manager can see, and how
        much each signal added to the log-odds."""
        parts: dict[str, float] = {}
        # Engagement over the last 180 days, or since opening for a young account.
        known_days = min(180, (self.now - self.opened_at).days)
        if known_days >= 30:
            expected = self.profile.contacts * known_days / 30
            engagement = self._recent(self.contacts, known_days) / expected
            parts["engagement"] = 2.2 * max(0.0, 0.7 - engagement) / 0.7
        else:
            parts["engagement"] = 0.0
        open_by = Counter(issue.severity for issue in self.issues.values())
        parts["issues"] = (
            min(2.0, 1.0 * open_by[IssueSeverity.CRITICAL])
            + min(1.5, 0.5 * open_by[IssueSeverity.HIGH])
            + min(0.5, 0.1 * (open_by[IssueSeverity.MEDIUM] + open_by[IssueSeverity.LOW]))
            + min(1.5, 0.4 * self._recent(self.severe_issues, 180))
            + (0.4 if self._recent(self.escalations, 180) >= 2 else 0.0)
        )
        nps = self.latest_nps
        if nps is None or nps[0] < self.now - timedelta(days=365):
            parts["nps"] = 0.3
        elif nps[1] <= 6:
            parts["nps"] = 0.35 * (7 - nps[1])
        else:
            parts["nps"] = -0.5 if nps[1] >= 9 else 0.0
        recently_left = self.champion_left_at is not None and (
            self.champion_left_at > self.now - timedelta(days=365)
        )
        parts["champion"] = (1.3 if self._champion() is None else 0.0) + (
            0.4 if recently_left else 0.0
        )
        key_people = self._active_people(_KEY_ROLES)
        negative = sum(p.sentiment is Sentiment.NEGATIVE for p in key_people)
        positive = sum(p.sentiment is Sentiment.POSITIVE for p in key_people)
        parts["sentiment"] = min(1.8, 0.6 * negative) - 0.15 * positive
        parts["value"] = -0.3 if self._recent(self.value_delivered, 365) else 0.4
        score = self.profile.base_risk + sum(parts.values())
        return 1 / (1 + math.exp(-score)), parts

    def _decide(self, term: int, chain: UUID) -> None:
        """Renew or churn, with the churn probability the signals give."""
        if term != self.term or self.status is not AccountStatus.ACTIVE:
            return
        probability, parts = self.risk()
        if self.rng.random() < probability:
            self._churn(parts, chain)
        else:
            self._renew(probability, chain)

    def _renew(self, probability: float, chain: UUID) -> None:
        """Renew: price uplift, or contraction when at risk, or expansion when healthy."""
        assert self.term_end is not None
        step = Decimal(self.profile.rounding) / 10
        lines = {
            product: _round(float(amount) * (1 + self.rng.uniform(0.0, 0.07)), int(step))
            if self.rng.random() < 0.7
            else amount
            for product, amount in self.lines.items()
        }
        if probability > 0.2 and self.rng.random() < 0.45:
            # A shaky customer negotiates: one product goes, or fewer seats.
            extras = [p for p in lines if p != _CORE]
            if extras and self.rng.random() < 0.5:
                del lines[self.rng.choice(extras)]
            else:
                product = self.rng.choice(list(lines))
                lines[product] = _round(
                    float(lines[product]) * self.rng.uniform(0.65, 0.9), int(step)
                )
        elif self.health > 0.65 and self.rng.random() < 0.2:
            lines[_CORE] = _round(
                float(lines.get(_CORE, step)) * self.rng.uniform(1.05, 1.3), int(step)
            )
        dropped = set(self.lines) - set(lines)
        self.lines = lines
        self.term_end = _add_years(self.term_end, self.rng.choice(self.profile.term_years))
        self._emit("renew", chain, term_end=self.term_end, lines=self._lines())
        self._line_ended(dropped, "dropped at the renewal", chain)
        self.renewals += 1
        self._schedule_renewal()

    def _churn(self, parts: dict[str, float], chain: UUID) -> None:
        # The strongest warning sign usually names the reason; sometimes it is outside our
        # control (acquired, out of business).
        """The customer leaves; the reason follows the strongest warning sign."""
        by_signal = {
            "issues": ChurnReason.POOR_SERVICE,
            "nps": ChurnReason.PRODUCT_FIT,
            "champion": ChurnReason.COMPETITOR,
            "engagement": ChurnReason.BUDGET_CUT,
            "sentiment": ChurnReason.PRICE,
            "value": ChurnReason.PRICE,
        }
        strongest = max(parts, key=lambda name: parts[name])
        if parts[strongest] < 0.5 or self.rng.random() < 0.2:
            reason = _pick(
                self.rng,
                (
                    (ChurnReason.PRICE, 3),
                    (ChurnReason.COMPETITOR, 3),
                    (ChurnReason.BUDGET_CUT, 2),
                    (ChurnReason.ACQUIRED, 1),
                    (ChurnReason.OUT_OF_BUSINESS, 1),
                    (ChurnReason.OTHER, 1),
                ),
            )
        else:
            reason = by_signal[strongest]
        self._emit("churn", chain, reason=reason, detail=_CHURN_DETAILS[reason])
        self.arr_before_churn = self._arr()
        self.status = AccountStatus.CHURNED
        self.lines = {}
        self.term += 1
        self.churns += 1
        self._after(self.rng.uniform(0.05, 3), partial(self._wind_down, chain))
        if self.rng.random() < _REACTIVATION_CHANCE[reason]:
            self._after(self.rng.uniform(60, 330), self._win_back)

    def _wind_down(self, chain: UUID) -> None:
        """Close what a churned customer leaves open."""
        if self.status is not AccountStatus.CHURNED:
            return
        for opportunity_id in list(self.opportunities):
            self._emit(
                "lose_opportunity",
                chain,
                opportunity_id=opportunity_id,
                reason="customer churned",
            )
        self.opportunities.clear()
        self.targets.clear()
        self._close_goal(achieved=False, reason="customer churned", chain=chain)
        for issue_id in list(self.issues):
            self._emit(
                "resolve_issue", chain, issue_id=issue_id, resolution="closed: customer left"
            )
        self.issues.clear()

    def _win_back(self) -> None:
        """A win-back meeting, then maybe a new contract."""
        if self.status is not AccountStatus.CHURNED:
            return
        present = self._active_people(_KEY_ROLES)[:2]
        self._contact(Channel.MEETING, Direction.OUTBOUND, "Win-back conversation", present)
        self._after(self.rng.uniform(3, 21), self._reactivate)

    def _reactivate(self) -> None:
        """Win the churned customer back with a smaller contract."""
        if self.status is not AccountStatus.CHURNED:
            return
        arr = float(self.arr_before_churn) * self.rng.uniform(0.5, 0.9)
        self.lines = {_CORE: _round(arr, self.profile.rounding)}
        self.term_end = _add_years(self.now.date(), 1)
        self._emit("reactivate", term_end=self.term_end, lines=self._lines())
        self.status = AccountStatus.ACTIVE
        self.reactivations += 1
        self.health = _clamp(self.rng.uniform(0.55, 0.8))
        self.baseline = max(self.baseline, self.health)
        self._schedule_renewal()
        if self._champion() is None:
            self._after(self.rng.uniform(2, 20), self._new_champion)

    # --- relationship -------------------------------------------------------------------------

    def _contact(
        self,
        channel: Channel,
        direction: Direction,
        summary: str,
        present: Sequence[_Person],
        chain: UUID | None = None,
    ) -> None:
        """Log a contact with the stakeholders present."""
        durations = {
            Channel.PHONE: (10, 40),
            Channel.VIDEO_CALL: (20, 60),
            Channel.MEETING: (45, 120),
            Channel.QBR: (60, 120),
            Channel.SITE_VISIT: (120, 300),
            Channel.EVENT: (60, 240),
        }
        span = durations.get(channel)
        self._emit(
            "log_contact",
            chain,
            channel=channel,
            direction=direction,
            summary=summary,
            stakeholder_ids=tuple(p.stakeholder_id for p in present),
            duration_minutes=None if span is None else self.rng.randint(*span),
        )
        self.contacts.append(self.now)

    def _contact_tick(self) -> None:
        """A regular contact; their rate follows the account's health."""
        if self.status is not AccountStatus.CHURNED:
            channel = _pick(self.rng, self.profile.channels)
            inbound = 0.3 + (0.2 if self.issues else 0.0)
            direction = Direction.INBOUND if self.rng.random() < inbound else Direction.OUTBOUND
            people = self._active_people()
            size = {
                Channel.MEETING: self.rng.randint(2, 4),
                Channel.SITE_VISIT: self.rng.randint(2, 5),
                Channel.VIDEO_CALL: self.rng.randint(1, 3),
            }.get(channel, 1)
            present = self.rng.sample(people, min(size, len(people)))
            summary = self.rng.choice(_CONTACT_SUMMARIES[channel])
            self._contact(channel, direction, summary, present)
        # Engagement follows health: customers who drift away stop taking calls.
        rate = self.profile.contacts * (0.25 + 1.1 * self.health) / 30
        self._after(self.rng.expovariate(rate), self._contact_tick)

    def _qbr_tick(self) -> None:
        """A quarterly business review, for accounts that have them (unhappy ones skip some)."""
        if (
            self.has_qbr
            and self.status is AccountStatus.ACTIVE
            and self.rng.random() < 0.4 + 0.6 * self.health
        ):
            present = self._active_people(_KEY_ROLES) or self._active_people()[:2]
            self._contact(Channel.QBR, Direction.OUTBOUND, "Quarterly business review", present)
            self._shock(0.02)
        self._after(self.rng.uniform(84, 98), self._qbr_tick)

    def _request_tick(self) -> None:
        """A customer request, answered after a delay that grows when health is low."""
        if self.status is AccountStatus.ACTIVE:
            request_id = _uuid(self.rng)
            chain = _uuid(self.rng)
            channel = _pick(
                self.rng, ((Channel.EMAIL, 0.6), (Channel.CHAT, 0.2), (Channel.PHONE, 0.2))
            )
            self._emit(
                "receive_request",
                chain,
                subject=self.rng.choice(_REQUEST_SUBJECTS),
                channel=channel,
                request_id=request_id,
            )
            self.requests.add(request_id)
            if self.rng.random() > 0.03:  # a few fall through the cracks
                hours = self.rng.lognormvariate(math.log(4), 0.9) * (1 + 1.5 * (1 - self.health))
                self._after(hours / 24, partial(self._answer, request_id, chain))
        self._after(self.rng.expovariate(self.profile.requests / 30), self._request_tick)

    def _answer(self, request_id: UUID, chain: UUID) -> None:
        """Answer a request; sometimes ask for a customer-effort score."""
        self.requests.discard(request_id)
        self._emit("answer_request", chain, request_id=request_id, response="Answered")
        if self.rng.random() < 0.25:
            effort = round(2 + 5 * self.health + self.rng.gauss(0, 0.8))
            self._after(
                self.rng.uniform(0.05, 2), partial(self._survey, CesScore(min(7, max(1, effort))))
            )

    def _survey(self, score: NpsScore | CsatScore | CesScore, comment: str = "") -> None:
        """Record a survey answer (not from customers who left)."""
        if self.status is AccountStatus.CHURNED:
            return
        people = self._active_people()
        respondent = self.rng.choice(people).name if people else ""
        self._emit("record_feedback", score=score, respondent=respondent, comment=comment)
        if isinstance(score, NpsScore):
            self.latest_nps = (self.now, score.value)

    def _survey_tick(self) -> None:
        """A periodic NPS survey (some customers do not answer)."""
        if self.status is AccountStatus.ACTIVE and self.rng.random() < 0.7:
            value = min(10, max(0, round(1.5 + 9 * self.health + self.rng.gauss(0, 1.3))))
            comment = (
                "Great partner"
                if value >= 9
                else ("Works, but could be better" if value >= 7 else "Too many problems")
            )
            self._survey(NpsScore(value), comment)
        days = 120 if self.segment is Segment.ENTERPRISE else 182
        self._after(self.rng.uniform(days - 20, days + 20), self._survey_tick)

    def _value_tick(self) -> None:
        """Show the customer the value (money saved) it got, more often when healthy."""
        if self.status is AccountStatus.ACTIVE and self.rng.random() < 0.15 + 0.55 * self.health:
            saved = float(self._arr()) * self.rng.uniform(0.1, 0.8)
            self._emit(
                "record_value_delivered",
                amount=self._money(_round(saved, self.profile.rounding)),
                description=self.rng.choice(_VALUE_DESCRIPTIONS),
            )
            self.value_delivered.append(self.now)
            self._shock(0.03)
        self._after(self.rng.uniform(100, 140), self._value_tick)

    def _drift_tick(self) -> None:
        """Health drifts monthly, pulled back towards the account's baseline."""
        self.health = _clamp(
            self.health + self.rng.gauss(0, 0.05) + 0.08 * (self.baseline - self.health)
        )
        self._after(30, self._drift_tick, office=False)

    def _people_tick(self) -> None:
        """Monthly changes of the stakeholder map."""
        if self.status is AccountStatus.ACTIVE:
            self._people_change()
        self._after(self.rng.uniform(25, 35), self._people_tick)

    def _people_change(self) -> None:
        """A champion or another stakeholder leaves, someone joins, or sentiment moves."""
        champion = self._champion()
        others = [p for p in self._active_people() if p.role is not StakeholderRole.CHAMPION]
        if champion is not None and self.rng.random() < 0.006 + 0.035 * (1 - self.health) ** 2:
            self._remove(champion, "left the company")
            self.champion_left_at = self.now
            self._shock(-0.12)
            if self.rng.random() < 0.35 + 0.55 * self.health:
                self._after(self.rng.uniform(30, 150), self._new_champion)
        elif len(others) >= 3 and self.rng.random() < 0.03:
            self._remove(self.rng.choice(others), "moved to another role")
        elif self.rng.random() < (0.06 if self.segment is Segment.ENTERPRISE else 0.03):
            role = _pick(
                self.rng,
                (
                    (StakeholderRole.USER, 4),
                    (StakeholderRole.INFLUENCER, 3),
                    (StakeholderRole.TECHNICAL_BUYER, 1),
                    (StakeholderRole.DECISION_MAKER, 1),
                    (StakeholderRole.DETRACTOR, 0.5),
                ),
            )
            self._add_person(role)
        elif champion is None and self.rng.random() < 0.08:
            self._new_champion()
        if self.rng.random() < 0.3:
            self._sentiment_review()

    def _sentiment_review(self) -> None:
        """Update one stakeholder's sentiment if it changed."""
        people = [p for p in self._active_people() if p.role is not StakeholderRole.DETRACTOR]
        if not people:
            return
        person = self.rng.choice(people)
        felt = _sentiment(self.rng, self.health)
        if felt is person.sentiment:
            return
        person.sentiment = felt
        self._emit("update_stakeholder", stakeholder_id=person.stakeholder_id, sentiment=felt)

    def _remove(self, person: _Person, reason: str) -> None:
        """A stakeholder leaves."""
        person.active = False
        self._emit("remove_stakeholder", stakeholder_id=person.stakeholder_id, reason=reason)

    def _new_champion(self) -> None:
        """Find a new champion: promote a friendly stakeholder or meet a new one."""
        if self.status is AccountStatus.CHURNED or self._champion() is not None:
            return
        candidates = [
            p
            for p in self._active_people(
                frozenset({StakeholderRole.INFLUENCER, StakeholderRole.USER})
            )
            if p.sentiment is not Sentiment.NEGATIVE
        ]
        if candidates and self.rng.random() < 0.6:
            person = self.rng.choice(candidates)
            person.role, person.sentiment = StakeholderRole.CHAMPION, Sentiment.POSITIVE
            self._emit(
                "update_stakeholder",
                stakeholder_id=person.stakeholder_id,
                role=StakeholderRole.CHAMPION,
                sentiment=Sentiment.POSITIVE,
            )
        else:
            self._add_person(StakeholderRole.CHAMPION)
        self._shock(0.05)

    def _reassign_tick(self) -> None:
        """Now and then the account moves to another account manager."""
        if self.status is not AccountStatus.CHURNED and self.rng.random() < 0.035:
            choices = [m for m in self.profile.managers if m[0] != self.manager]
            self.manager, self.manager_type = self.rng.choice(choices)
            self._emit(
                "reassign_manager",
                manager=self.manager,
                manager_type=self.manager_type,
                reason=self.rng.choice(_REASSIGN_REASONS),
            )
            self._shock(-0.03)
        self._after(self.rng.uniform(160, 200), self._reassign_tick)

    # --- issues -------------------------------------------------------------------------------

    def _issue_tick(self) -> None:
        """A new issue; unhealthy accounts have more of them."""
        if self.status is AccountStatus.ACTIVE:
            self._raise_issue()
        rate = self.profile.issues * (0.5 + 1.2 * (1 - self.health)) / 30
        self._after(self.rng.expovariate(rate), self._issue_tick)

    def _raise_issue(self) -> None:
        """Raise an issue and plan its first response (critical ones 24/7)."""
        severity = _pick(
            self.rng,
            (
                (IssueSeverity.LOW, 0.3),
                (IssueSeverity.MEDIUM, 0.45),
                (IssueSeverity.HIGH, 0.19),
                (IssueSeverity.CRITICAL, 0.06),
            ),
        )
        if severity is IssueSeverity.CRITICAL:
            category = self.rng.choice(_CRITICAL_CATEGORIES)
        else:
            category = self.rng.choice([c for c in _ISSUE_CATEGORIES if c != "outage"])
        issue_id, chain = _uuid(self.rng), _uuid(self.rng)
        self._emit(
            "raise_issue",
            chain,
            title=self.rng.choice(_ISSUE_CATEGORIES[category]),
            severity=severity,
            category=category,
            issue_id=issue_id,
        )
        self.issues[issue_id] = _OpenIssue(severity, chain)
        if severity in (IssueSeverity.HIGH, IssueSeverity.CRITICAL):
            self.severe_issues.append(self.now)
        self._shock({IssueSeverity.CRITICAL: -0.07, IssueSeverity.HIGH: -0.03}.get(severity, 0))
        # Support answers critical issues around the clock, the rest in office hours.
        office = severity is not IssueSeverity.CRITICAL
        slow = 1 + (1 - self.health)
        respond_hours = {
            IssueSeverity.CRITICAL: (0.15, 1.5),
            IssueSeverity.HIGH: (0.5, 4),
            IssueSeverity.MEDIUM: (1, 10),
            IssueSeverity.LOW: (2, 24),
        }[severity]
        self._after(
            self.rng.uniform(*respond_hours) * slow / 24,
            partial(self._respond, issue_id),
            office=office,
        )

    def _respond(self, issue_id: UUID) -> None:
        """First response; maybe escalate, else plan the resolution."""
        issue = self.issues.get(issue_id)
        if issue is None:
            return
        self._emit("respond_to_issue", issue.chain, issue_id=issue_id)
        escalate = {
            IssueSeverity.CRITICAL: 0.6,
            IssueSeverity.HIGH: 0.3,
            IssueSeverity.MEDIUM: 0.06,
            IssueSeverity.LOW: 0.01,
        }[issue.severity]
        if self.rng.random() < escalate:
            self._after(self.rng.uniform(0.02, 2), partial(self._escalate, issue_id))
        else:
            self._schedule_resolution(issue_id)

    def _escalate(self, issue_id: UUID) -> None:
        """Escalate to an internal team, then plan the resolution."""
        issue = self.issues.get(issue_id)
        if issue is None:
            return
        self._emit(
            "escalate_issue",
            issue.chain,
            issue_id=issue_id,
            to_team=self.rng.choice(_TEAMS),
            reason="needs a fix from another team",
        )
        self.escalations.append(self.now)
        self._schedule_resolution(issue_id)

    def _schedule_resolution(self, issue_id: UUID) -> None:
        """Plan the fix: days by severity, slower for unhealthy accounts."""
        severity = self.issues[issue_id].severity
        days = {
            IssueSeverity.CRITICAL: (0.1, 2),
            IssueSeverity.HIGH: (1, 6),
            IssueSeverity.MEDIUM: (2, 14),
            IssueSeverity.LOW: (3, 30),
        }[severity]
        slow = 1 + 2 * (1 - self.health) ** 2
        if self.rng.random() < 0.04:
            slow *= 12  # stuck: waits for a release
        self._after(
            self.rng.uniform(*days) * slow,
            partial(self._resolve, issue_id),
            office=severity is not IssueSeverity.CRITICAL,
        )

    def _resolve(self, issue_id: UUID) -> None:
        """Resolve an issue; sometimes ask for a CSAT score."""
        issue = self.issues.pop(issue_id, None)
        if issue is None:
            return
        self._emit("resolve_issue", issue.chain, issue_id=issue_id, resolution="fixed")
        self._shock(0.015)
        if self.rng.random() < 0.35:
            value = min(5, max(1, round(1 + 4 * self.health + self.rng.gauss(0, 0.7))))
            self._after(self.rng.uniform(0.05, 3), partial(self._survey, CsatScore(value)))

    # --- revenue ------------------------------------------------------------------------------

    def _opportunity_tick(self) -> None:
        """Now and then offer an upsell or cross-sell, more often when healthy."""
        chance = self.profile.opportunities * (0.4 + self.health)
        if self.status is AccountStatus.ACTIVE and self.health > 0.3 and self.rng.random() < chance:
            self._offer()
        self._after(self.rng.uniform(75, 105), self._opportunity_tick)

    def _offer(self) -> None:
        """Offer a cross-sell from the white space or an upsell of an owned product."""
        pending = {o.product for o in self.opportunities.values()}
        white_space = [p for p in _PRODUCTS if p not in self.lines and p not in pending]
        owned = [p for p in self.lines if p not in pending]
        if white_space and (not owned or self.rng.random() < 0.5):
            kind, product = OpportunityKind.CROSS_SELL, self.rng.choice(white_space)
            estimate = float(self._arr()) * self.rng.uniform(0.08, 0.3)
        elif owned:
            kind, product = OpportunityKind.UPSELL, self.rng.choice(owned)
            estimate = float(self.lines[product]) * self.rng.uniform(0.1, 0.3)
        else:
            return
        opportunity_id, chain = _uuid(self.rng), _uuid(self.rng)
        estimated = _round(estimate, self.profile.rounding)
        self._emit(
            "offer_opportunity",
            chain,
            kind=kind,
            product=product,
            estimated_arr=self._money(estimated),
            opportunity_id=opportunity_id,
        )
        self.opportunities[opportunity_id] = _OpenOpportunity(kind, product, estimated, chain)
        self._aim(opportunity_id)
        self._after(self.rng.uniform(14, 100), partial(self._close_opportunity, opportunity_id))

    def _close_opportunity(self, opportunity_id: UUID) -> None:
        """Win or lose an offer; it is lost if it no longer fits the contract."""
        opportunity = self.opportunities.pop(opportunity_id, None)
        if opportunity is None:
            return
        unit_id = self.targets.pop(opportunity_id, None)
        owned = opportunity.product in self.lines
        still_fits = owned if opportunity.kind is OpportunityKind.UPSELL else not owned
        if (
            self.status is AccountStatus.ACTIVE
            and still_fits
            and self.rng.random() < 0.2 + 0.55 * self.health
        ):
            won = _round(
                float(opportunity.estimated) * self.rng.uniform(0.75, 1.1), self.profile.rounding
            )
            self._emit(
                "win_opportunity",
                opportunity.chain,
                opportunity_id=opportunity_id,
                arr=self._money(won),
            )
            self.lines[opportunity.product] = self.lines.get(opportunity.product, Decimal(0)) + won
            self._shock(0.02)
            self._line_grew(opportunity.product, unit_id, opportunity.chain)
        else:
            self._emit(
                "lose_opportunity",
                opportunity.chain,
                opportunity_id=opportunity_id,
                reason=self.rng.choice(_LOSS_REASONS),
            )

    def _expansion_tick(self) -> None:
        """Direct expansion without a sales cycle: a seat true-up or an add-on."""
        if self.status is AccountStatus.ACTIVE and self.rng.random() < 0.12 * (0.5 + self.health):
            # Direct expansion without a sales cycle: a seat true-up or a self-serve add-on.
            pending = {o.product for o in self.opportunities.values()}
            white_space = [p for p in _PRODUCTS if p not in self.lines and p not in pending]
            if white_space and self.rng.random() < 0.15:
                product = self.rng.choice(white_space)
                arr = _round(
                    float(self._arr()) * self.rng.uniform(0.03, 0.1), self.profile.rounding
                )
                self._emit("cross_sell", product=product, arr=self._money(arr))
                self.lines[product] = arr
                self._line_grew(product)
            else:
                product = self.rng.choice(list(self.lines))
                added = _round(
                    float(self.lines[product]) * self.rng.uniform(0.05, 0.2), self.profile.rounding
                )
                self._emit("upsell", product=product, added_arr=self._money(added))
                self.lines[product] += added
        self._after(self.rng.uniform(100, 140), self._expansion_tick)

    def _downgrade_tick(self) -> None:
        """Contraction during the term, likelier when health is low."""
        if self.status is AccountStatus.ACTIVE and self.rng.random() < 0.03 * (1.6 - self.health):
            extras = [p for p in self.lines if p != _CORE]
            if extras and self.rng.random() < 0.3:
                product = self.rng.choice(extras)
                reduced = self.lines[product]
            else:
                product = self.rng.choice(list(self.lines))
                # Rounded down to whole steps, so that it stays below the line's amount.
                step = self.profile.rounding // 10
                share = float(self.lines[product]) * self.rng.uniform(0.1, 0.35)
                reduced = Decimal(math.floor(share / step) * step)
            if reduced > 0 and (reduced < self.lines[product] or len(self.lines) > 1):
                reason = self.rng.choice(_DOWNGRADE_REASONS)
                self._emit(
                    "downgrade", product=product, reduced_by=self._money(reduced), reason=reason
                )
                remaining = self.lines[product] - reduced
                if remaining > 0:
                    self.lines[product] = remaining
                    self._fewer_users(product, reason)
                else:
                    del self.lines[product]
                    self._line_ended({product}, reason)
        self._after(self.rng.uniform(50, 70), self._downgrade_tick)

    # --- business units and white space ------------------------------------------------------

    def _unit_emit(self, command: str, chain: UUID | None = None, /, **arguments: Any) -> None:
        """Append a business-unit command (its ids drawn from the units' own stream)."""
        self._emit(command, chain or _uuid(self.unit_rng), **arguments)

    def _active_units(self) -> list[tuple[UUID, _Unit]]:
        """The units not removed, in the order they were added."""
        return [(unit_id, unit) for unit_id, unit in self.units.items() if unit.active]

    def _name_taken(self, name: str) -> bool:
        """Whether an active unit has this name (names are unique among them)."""
        wanted = name.casefold()
        return any(unit.name.casefold() == wanted for _, unit in self._active_units())

    def _map_units(self) -> None:
        """Map the customer's business units (its regions or its divisions); the first one,
        where the contract was signed, uses every line, the others some of them."""
        if self.status is not AccountStatus.ACTIVE:
            return
        self.unit_names = _REGIONS if self.unit_rng.random() < 0.5 else _DIVISIONS
        names = self.unit_rng.sample(self.unit_names, self.unit_rng.randint(*self.profile.units))
        for number, name in enumerate(names):
            self._add_unit(name, lead=number == 0)
        self._after(self.unit_rng.uniform(60, 120), self._unit_tick)

    def _add_unit(self, name: str, *, lead: bool = False) -> None:
        """Record a unit, and soon after what it uses."""
        unit_id = _uuid(self.unit_rng)
        self._unit_emit("add_business_unit", unit_id=unit_id, name=name)
        self.units[unit_id] = _Unit(name)
        self._after(self.unit_rng.uniform(0.05, 10), partial(self._set_up_unit, unit_id, lead))

    def _set_up_unit(self, unit_id: UUID, lead: bool) -> None:
        """A new unit adopts some of the account's lines; now and then a product does not fit
        it."""
        if self.status is AccountStatus.CHURNED:
            return
        for product in list(self.lines):
            if lead or self.unit_rng.random() < (0.85 if product == _CORE else 0.45):
                self._adopt(unit_id, product)
        if self.unit_rng.random() < 0.3:
            self._mark_ineligible(unit_id)

    def _adopt(self, unit_id: UUID, product: str, chain: UUID | None = None) -> None:
        """The unit takes up one of the account's lines, if it can and does not use it yet."""
        unit = self.units[unit_id]
        if (
            unit.active
            and product in self.lines
            and product not in unit.products
            and product not in unit.ineligible
        ):
            self._unit_emit("adopt_product", chain, unit_id=unit_id, product=product)
            unit.products.add(product)

    def _mark_ineligible(self, unit_id: UUID) -> None:
        """Rule out a product the unit does not use (and is not offered); sometimes the reason
        goes away later."""
        unit = self.units[unit_id]
        offered = {self.opportunities[o].product for o, u in self.targets.items() if u == unit_id}
        candidates = [
            product
            for product in _PRODUCTS
            if product not in unit.products
            and product not in unit.ineligible
            and product not in offered
        ]
        if not unit.active or not candidates:
            return
        product = self.unit_rng.choice(candidates)
        self._unit_emit(
            "mark_product_ineligible",
            unit_id=unit_id,
            product=product,
            reason=_INELIGIBLE_REASONS[product],
        )
        unit.ineligible.add(product)
        if self.unit_rng.random() < 0.35:
            self._after(self.unit_rng.uniform(90, 400), partial(self._restore, unit_id, product))

    def _restore(self, unit_id: UUID, product: str) -> None:
        """The reason a product was ruled out for a unit went away."""
        unit = self.units[unit_id]
        if unit.active and product in unit.ineligible and self.status is AccountStatus.ACTIVE:
            self._unit_emit("restore_product_eligibility", unit_id=unit_id, product=product)
            unit.ineligible.discard(product)

    def _aim(self, opportunity_id: UUID) -> None:
        """Aim most offers at a unit: an upsell at one that uses the product, a cross-sell at
        one that does not."""
        opportunity = self.opportunities[opportunity_id]
        upsell = opportunity.kind is OpportunityKind.UPSELL
        candidates = [
            unit_id
            for unit_id, unit in self._active_units()
            if opportunity.product not in unit.ineligible
            and (opportunity.product in unit.products) == upsell
        ]
        if candidates and self.unit_rng.random() < 0.65:
            unit_id = self.unit_rng.choice(candidates)
            self._after(
                self.unit_rng.uniform(0.02, 7), partial(self._target, opportunity_id, unit_id)
            )

    def _target(self, opportunity_id: UUID, unit_id: UUID) -> None:
        """Aim an open offer at a unit that can use its product."""
        opportunity = self.opportunities.get(opportunity_id)
        unit = self.units[unit_id]
        if (
            opportunity is None
            or not unit.active
            or opportunity.product in unit.ineligible
            or self.targets.get(opportunity_id) == unit_id
        ):
            return
        self._unit_emit(
            "target_opportunity", opportunity.chain, opportunity_id=opportunity_id, unit_id=unit_id
        )
        self.targets[opportunity_id] = unit_id

    def _line_grew(
        self, product: str, unit_id: UUID | None = None, chain: UUID | None = None
    ) -> None:
        """After a win or an expansion: the unit the offer aimed at adopts the product;
        without one, a new line is usually taken up by some unit that can use it."""
        if unit_id is None or not self.units[unit_id].active:
            active = self._active_units()
            if not active or any(product in unit.products for _, unit in active):
                return
            eligible = [u for u, unit in active if product not in unit.ineligible]
            if not eligible or self.unit_rng.random() >= 0.8:
                return
            unit_id = self.unit_rng.choice(eligible)
        self._adopt(unit_id, product, chain)

    def _line_ended(self, products: set[str], reason: str, chain: UUID | None = None) -> None:
        """A line is gone (downgraded to zero, dropped at a renewal): its units stop using it."""
        for product in sorted(products):
            for unit_id, unit in self._active_units():
                if product in unit.products:
                    self._end_adoption(unit_id, product, reason, chain)

    def _end_adoption(
        self, unit_id: UUID, product: str, reason: str, chain: UUID | None = None
    ) -> None:
        self._unit_emit(
            "end_product_adoption", chain, unit_id=unit_id, product=product, reason=reason
        )
        self.units[unit_id].products.discard(product)

    def _fewer_users(self, product: str, reason: str) -> None:
        """A smaller line: sometimes one of the units that use it stops."""
        users = [u for u, unit in self._active_units() if product in unit.products]
        if len(users) >= 2 and reason != "budget cut" and self.unit_rng.random() < 0.5:
            self._end_adoption(self.unit_rng.choice(users), product, reason)

    def _unit_tick(self) -> None:
        """Now and then the customer's organisation changes: a unit takes up a product another
        one uses, a product is ruled out for a unit, a unit is renamed, merged away or added."""
        active = self._active_units()
        if self.status is AccountStatus.ACTIVE and active:
            roll = self.unit_rng.random()
            if roll < 0.35:
                self._spread()
            elif roll < 0.45:
                self._mark_ineligible(self.unit_rng.choice(active)[0])
            elif roll < 0.51:
                self._rename_unit()
            elif roll < 0.56:
                self._remove_unit()
            elif roll < 0.6:
                names = [name for name in self.unit_names if not self._name_taken(name)]
                if names:
                    self._add_unit(self.unit_rng.choice(names))
        self._after(self.unit_rng.uniform(80, 140), self._unit_tick)

    def _spread(self) -> None:
        """One more unit takes up one of the account's lines."""
        open_cells = [
            (unit_id, product)
            for unit_id, unit in self._active_units()
            for product in self.lines
            if product not in unit.products and product not in unit.ineligible
        ]
        if open_cells:
            self._adopt(*self.unit_rng.choice(open_cells))

    def _rename_unit(self) -> None:
        """A unit gets a new name (a reorganisation)."""
        candidates = [
            (unit_id, _UNIT_RENAMES[unit.name])
            for unit_id, unit in self._active_units()
            if unit.name in _UNIT_RENAMES and not self._name_taken(_UNIT_RENAMES[unit.name])
        ]
        if candidates:
            unit_id, name = self.unit_rng.choice(candidates)
            self._unit_emit("rename_business_unit", unit_id=unit_id, name=name)
            self.units[unit_id].name = name

    def _remove_unit(self) -> None:
        """A unit is merged into another, sold or closed (not below two units)."""
        active = self._active_units()
        if len(active) < 3:
            return
        unit_id, unit = self.unit_rng.choice(active)
        others = [other.name for u, other in active if u != unit_id]
        reason = self.unit_rng.choice(_UNIT_REMOVAL_REASONS)
        self._unit_emit(
            "remove_business_unit",
            unit_id=unit_id,
            reason=reason.format(other=self.unit_rng.choice(others)),
        )
        unit.active = False

    # --- account plan -------------------------------------------------------------------------

    def _plan_tick(self) -> None:
        """Set a new account-plan goal when the previous one is closed."""
        rested = self.goal_closed_at is None or self.now - self.goal_closed_at > timedelta(days=30)
        if self.has_plan and self.status is AccountStatus.ACTIVE and self.goal is None and rested:
            self._set_goal()
        self._after(self.rng.uniform(25, 45), self._plan_tick)

    def _set_goal(self) -> None:
        """Set a goal with a target date and plan its strategies."""
        goal_id = _uuid(self.rng)
        title, measure = self.rng.choice(_GOALS)
        target = self.now + timedelta(days=self.rng.uniform(120, 300))
        self._emit(
            "set_goal",
            title=title,
            measure=measure,
            target_date=target.date(),
            goal_id=goal_id,
        )
        self.goal = goal_id
        for _ in range(self.rng.randint(1, 2)):
            self._after(self.rng.uniform(0.05, 5), partial(self._add_strategy, goal_id, target))
        self._at(_office(target), partial(self._goal_due, goal_id))

    def _add_strategy(self, goal_id: UUID, target: datetime) -> None:
        """Add a strategy to the open goal and plan its tactics."""
        if self.goal != goal_id:
            return
        strategy_id = _uuid(self.rng)
        self._emit(
            "add_strategy",
            goal_id=goal_id,
            description=self.rng.choice(_STRATEGIES),
            strategy_id=strategy_id,
        )
        for _ in range(self.rng.randint(1, 3)):
            self._after(
                self.rng.uniform(0.05, 10), partial(self._add_tactic, goal_id, strategy_id, target)
            )

    def _add_tactic(self, goal_id: UUID, strategy_id: UUID, target: datetime) -> None:
        """Add a tactic with an owner and a due date."""
        if self.goal != goal_id:
            return
        tactic_id = _uuid(self.rng)
        due = min(self.now + timedelta(days=self.rng.uniform(20, 120)), target)
        owner = self.manager if self.rng.random() < 0.6 else self.rng.choice(_TEAMS)
        self._emit(
            "add_tactic",
            strategy_id=strategy_id,
            description=self.rng.choice(_TACTICS),
            owner=owner,
            due_on=due.date(),
            tactic_id=tactic_id,
        )
        self.tactics[tactic_id] = goal_id
        finish = due + timedelta(days=self.rng.uniform(-10, 20))
        self._at(_office(finish), partial(self._finish_tactic, tactic_id))

    def _finish_tactic(self, tactic_id: UUID) -> None:
        """Complete or drop a tactic around its due date."""
        if self.tactics.pop(tactic_id, None) is None:
            return
        if self.rng.random() < 0.45 + 0.45 * self.health:
            self._emit("complete_tactic", tactic_id=tactic_id)
        else:
            self._emit("drop_tactic", tactic_id=tactic_id, reason="deprioritised by the customer")

    def _goal_due(self, goal_id: UUID) -> None:
        """At the target date the goal is achieved or abandoned."""
        if self.goal != goal_id:
            return
        achieved = self.rng.random() < 0.2 + 0.65 * self.health
        self._close_goal(
            achieved=achieved, reason="" if achieved else "customer priorities changed"
        )

    def _close_goal(self, *, achieved: bool, reason: str, chain: UUID | None = None) -> None:
        """Drop the goal's open tactics, then achieve or abandon it."""
        if self.goal is None:
            return
        for tactic_id in [t for t, g in self.tactics.items() if g == self.goal]:
            del self.tactics[tactic_id]
            self._emit("drop_tactic", chain, tactic_id=tactic_id, reason="goal closed")
        if achieved:
            self._emit("achieve_goal", chain, goal_id=self.goal)
        else:
            self._emit("abandon_goal", chain, goal_id=self.goal, reason=reason)
        self.goal = None
        self.goal_closed_at = self.now


# --- the book ---------------------------------------------------------------------------------


def _company_name(rng: random.Random, industry: str, currency: str, taken: set[str]) -> str:
    """A company name not used yet in this book."""
    for _ in range(50):
        name = (
            f"{rng.choice(_NAME_ROOTS)} {rng.choice(_INDUSTRIES[industry])} "
            f"{rng.choice(_LEGAL_FORMS[currency])}"
        )
        if name not in taken:
            break
    else:
        name = f"{name} {len(taken) + 1}"
    taken.add(name)
    return name


def _service_now(service: AccountService) -> datetime:
    """The service's current time (its clock, simulated in tests), which bounds effective
    times."""
    return service.clock()


def _issue(service: AccountService, account_id: UUID, command: _Command, actor: str) -> int:
    """Send one command; returns the account's version after it."""
    options: dict[str, Any] = dict(
        actor=actor, effective_at=command.at, correlation_id=command.correlation_id
    )
    result: CommandResult
    if command.name == "open_account":
        result = service.open_account(**command.arguments, account_id=account_id, **options)
    else:
        method = getattr(service, command.name)
        result = method(account_id, **command.arguments, **options)
    return result.version


def generate_book(
    service: AccountService,
    *,
    accounts: int = 120,
    seed: int = 7,
    start: date = date(2023, 1, 2),
    years: int = 3,
    actor: str = "demo",
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
) -> BookSummary:
    """Write a seeded book of ``accounts`` accounts covering ``years`` years from ``start``.

    About half the accounts are an existing book handed over on the first day; the rest are
    won over the period. Effective times are UTC, within the period and never after ``now``
    (default: the service's clock). The same ``seed`` writes the same commands. Account ids
    are derived from external keys ``demo-<seed>-<n>``, so a store can hold one book per seed.
    """
    if isinstance(accounts, bool) or not isinstance(accounts, int) or accounts < 1:
        raise InvalidValue("accounts", f"expected a whole number >= 1, got {accounts!r}")
    if isinstance(years, bool) or not isinstance(years, int) or years < 1:
        raise InvalidValue("years", f"expected a whole number >= 1, got {years!r}")
    begin = datetime.combine(start, datetime.min.time(), UTC).replace(hour=8)
    end = datetime.combine(_add_years(start, years), datetime.min.time(), UTC)
    limit = _service_now(service) if now is None else require_aware("now", now)
    cutoff = min(end - timedelta(minutes=1), limit.astimezone(UTC))
    cutoff = cutoff.replace(second=0, microsecond=0)
    if cutoff <= begin:
        raise InvalidValue("start", f"{start.isoformat()} is not in the past")
    rng = random.Random(seed)
    segments = tuple(_PROFILES)
    names: set[str] = set()
    ids: list[UUID] = []
    counts: Counter[str] = Counter()
    events = renewals = churns = churned = reactivated = 0
    span = (cutoff - begin).total_seconds()
    for index in range(accounts):
        segment = _pick(rng, [(s, _PROFILES[s].share) for s in segments])
        profile = _PROFILES[segment]
        industry = rng.choice(list(_INDUSTRIES))
        currency = _pick(rng, _CURRENCIES)
        inherited = rng.random() < 0.5
        if inherited:
            opened = begin + timedelta(minutes=rng.randint(0, 9 * 60))
        else:
            # New logos arrive over the period, not in its last weeks.
            offset = rng.uniform(0.02, 0.95) * span
            opened = _office(begin + timedelta(seconds=offset)).replace(second=0, microsecond=0)
        opened = min(opened, cutoff)
        manager, manager_type = rng.choice(profile.managers)
        sim = _AccountSim(
            rng=random.Random(rng.getrandbits(64)),
            segment=segment,
            profile=profile,
            opened_at=opened,
            cutoff=cutoff,
            inherited=inherited,
            name=_company_name(rng, industry, currency, names),
            industry=industry,
            currency=currency,
            manager=manager,
            manager_type=manager_type,
            external_key=f"demo-{seed}-{index + 1:05d}",
            unit_rng=random.Random(f"demo-{seed}-{index + 1:05d}/business-units"),
        )
        timeline = sim.run()
        account_id = account_id_for(sim.external_key)
        version = 0
        for command in timeline:
            try:
                version = _issue(service, account_id, command, actor)
            except AccountAlreadyExists:
                raise  # the store holds this seed's book already: not a generator bug
            except CommandRejected as refusal:
                refusal.add_note(
                    f"demo generator bug: {command.name} at {command.at.isoformat()} "
                    f"for {sim.external_key} (seed {seed}) was refused"
                )
                raise
            counts[command.name] += 1
        ids.append(account_id)
        events += version
        renewals += sim.renewals
        churns += sim.churns
        churned += sim.churns > 0
        reactivated += sim.reactivations > 0
        if progress is not None:
            progress(index + 1, accounts)
    return BookSummary(
        seed=seed,
        start=start,
        end=cutoff.date(),
        account_ids=tuple(ids),
        commands=sum(counts.values()),
        events=events,
        commands_by_name=tuple(sorted(counts.items())),
        renewals=renewals,
        churns=churns,
        churned_accounts=churned,
        reactivated_accounts=reactivated,
    )
