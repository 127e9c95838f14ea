"""What the service answers from read models and plugins: projections, scorecard, health.

A mixin of :class:`~acctdomain.application.service.AccountService`, kept apart because it is
the read side: nothing here appends to the account history except the policies, which issue
ordinary commands.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any
from uuid import UUID

from acctdomain.application.health import Bands, HealthScore, score_health
from acctdomain.application.kpi_settings import KpiSettings
from acctdomain.application.scorecard import KpiResult, compute_scorecard
from acctdomain.domain.state import AccountState
from acctdomain.errors import InvalidValue
from acctdomain.plugins.types import HealthSignal, Kpi, KpiContext, KpiValue, ReadModel

if TYPE_CHECKING:
    from acctdomain.builtin.facts import AccountFacts
    from acctdomain.plugins.host import PluginHost
    from acctdomain.projections import PolicyRunner, ProjectionRunner

__all__ = ["ReadSide"]

log = logging.getLogger(__name__)

KPI_HOOK = "acctdomain_register_kpis"
RATES_HOOK = "acctdomain_register_exchange_rates"
SIGNAL_HOOK = "acctdomain_register_health_signals"


class ReadSide:
    """Read models, scorecard and health, for a service with ``plugins`` and ``clock``."""

    plugins: PluginHost
    clock: Callable[[], datetime]
    kpi_settings: KpiSettings
    """The scorecard's configuration: reporting currency, fixed exchange rates, margin."""

    project_synchronously: bool
    """Whether every successful command brings the read models up to date before it returns."""

    sync_error: Exception | None
    """What stopped the last catch-up after a command (not a projection's own failure, which
    its runner's status records), or None once one succeeds."""

    def _init_read_side(self, *, project_synchronously: bool) -> None:
        if not isinstance(project_synchronously, bool):
            raise InvalidValue(
                "project_synchronously", f"expected True or False, got {project_synchronously!r}"
            )
        self.project_synchronously = project_synchronously
        self.sync_error = None
        # The runners are not thread-safe; commands from several threads (or a policy issuing
        # commands from a follower's thread) may each catch up.
        self._catch_up_lock = threading.RLock()

    def get_account(self, account_id: UUID) -> AccountState:  # provided by the service
        raise NotImplementedError

    @cached_property
    def projections(self) -> ProjectionRunner:
        """The runner of every registered projection (built on first use)."""
        from acctdomain.projections import ProjectionRunner

        return ProjectionRunner(self, self.plugins.projections().values())  # type: ignore[arg-type]

    @cached_property
    def policies(self) -> PolicyRunner:
        """The runner of every registered policy (built on first use)."""
        from acctdomain.projections import PolicyRunner

        return PolicyRunner(self, self.plugins.policies().values())  # type: ignore[arg-type]

    def _close_read_side(self) -> None:
        """Close the runners built so far (their read-model connections)."""
        for name in ("policies", "projections"):
            runner = self.__dict__.pop(name, None)
            if runner is not None:
                runner.close()

    def catch_up(self) -> int:
        """Bring every read model up to date with the store; returns the events applied."""
        with self._catch_up_lock:
            return self.projections.catch_up()

    def _after_command(self) -> None:
        """Called by the service when a command succeeded (its events are stored).

        With ``project_synchronously`` the read models catch up now, so the caller reads its
        own writes. The command has happened whatever this does: a projection that fails is
        marked so in the runner's status (and the others go on); any other error, such as a
        read-model database that cannot be written, is logged and kept in :attr:`sync_error`
        instead of failing the command.
        """
        if not self.project_synchronously:
            return
        try:
            self.catch_up()
        except Exception as error:
            log.warning("read models could not catch up after a command", exc_info=True)
            self.sync_error = error
        else:
            self.sync_error = None

    def read_model(self, name: str) -> ReadModel:
        """Read access to one projection's tables."""
        return self.projections.read_model(name)

    def scorecard(
        self,
        start: date,
        end: date,
        *,
        catch_up: bool = True,
        known_at: date | datetime | None = None,
        conventions: Mapping[str, str] | None = None,
        currency: str | None = None,
        kpis: Iterable[str] | None = None,
        **filters: str,
    ) -> list[KpiResult]:
        """Every registered KPI for [start, end] and the period before, from read models.

        ``filters`` narrow the accounts (``manager="amy"``, ``segment="smb"``,
        ``product="analytics"``). ``known_at`` gives the scorecard as it was known then: only
        events recorded up to that moment (a date: its end) count. ``conventions`` choose how
        KPIs with several conventions are computed (``{"upsell_rate": "offers"}``).
        ``currency`` is the reporting currency (default: the settings'). ``kpis`` names the
        KPIs to compute (default: all; lines in the scorecard's order). With ``catch_up``
        the read models are brought up to date first.
        """
        if catch_up:
            self.catch_up()
        settings = self.kpi_settings
        with _collector_paused():
            return compute_scorecard(
                self.plugins.kpis(),
                self.read_model,
                start,
                end,
                filters=filters,
                run=self._run_kpi,
                known_at=known_at,
                conventions=conventions,
                reporting_currency=currency or settings.reporting_currency,
                exchange_rate=self.exchange_rate,
                settings={"gross_margin": settings.gross_margin},
                only=kpis,
            )

    def exchange_rate(self, base: str, quote: str, on: date) -> Decimal | None:
        """How many ``quote`` one ``base`` is worth on day ``on``: from the plugins' sources
        (hook ``acctdomain_register_exchange_rates``, in load order; one that raises is
        recorded against its plugin and skipped), else the fixed rates of
        :attr:`kpi_settings`; None if nobody knows."""
        if base == quote:
            return Decimal(1)
        for source in self.plugins.exchange_rates().values():
            rate: Any = self.plugins.guarded(RATES_HOOK, source.name, source.rate, base, quote, on)
            if rate is None:
                continue
            if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
                self.plugins.guarded(RATES_HOOK, source.name, _bad_rate, source.name, rate)
                continue
            return rate
        return self.kpi_settings.fixed_rate(base, quote, on)

    def _run_kpi(self, kpi: Kpi, context: KpiContext) -> KpiValue | None:
        value: Any = self.plugins.guarded(KPI_HOOK, kpi.name, kpi.compute, context)
        if value is not None and not isinstance(value, KpiValue):
            self.plugins.guarded(KPI_HOOK, kpi.name, _wrong_type, kpi.name, value)
            return None
        return value

    def health(
        self,
        account_id: UUID,
        *,
        now: datetime | None = None,
        bands: Bands | None = None,
        weights: Mapping[str, float] | None = None,
        catch_up: bool = True,
    ) -> HealthScore:
        """The account's health at ``now`` (default: the clock): the weighted mean of every
        registered signal over the account's facts (:func:`~acctdomain.builtin.facts.
        account_facts`, from read models). ``weights`` override signals' weights by name (0
        leaves one out); ``bands`` sets the red/yellow/green thresholds. With ``catch_up``
        the read models are brought up to date first."""
        if catch_up:
            self.catch_up()
        moment = now or self.clock()
        return self.health_of(self.facts(account_id, today=moment.date()), moment, bands, weights)

    def facts(self, account_id: UUID, *, today: date | None = None) -> AccountFacts:
        """What the read models know of the account, looked at on ``today`` (default: the
        clock's day); see :func:`~acctdomain.builtin.facts.account_facts`."""
        from acctdomain.builtin.facts import account_facts

        return account_facts(self.read_model, account_id, today=today or self.clock().date())

    def health_of(
        self,
        facts: AccountFacts,
        now: datetime,
        bands: Bands | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> HealthScore:
        """The health score of ``facts`` at ``now`` (what :meth:`health` computes, for facts
        already read, as the portfolio does for a whole book)."""
        return score_health(
            facts,
            self.plugins.health_signals(),
            now,
            bands=bands or Bands(),
            weights=weights,
            run=self._run_signal,
        )

    def _run_signal(self, signal: HealthSignal, facts: AccountFacts, now: datetime) -> float | None:
        return self.plugins.guarded(SIGNAL_HOOK, signal.name, signal.score, facts, now)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector: a scorecard decodes a row per account into
    many small objects that live until it returns, and the collector would walk them again
    and again (a fifth of the time of a large book). Reference counting still frees them."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _bad_rate(name: str, value: object) -> None:
    raise TypeError(f"exchange rate source {name!r} returned {value!r}, expected a Decimal > 0")


def _wrong_type(name: str, value: object) -> None:
    raise TypeError(f"KPI {name!r} returned {type(value).__name__}, expected KpiValue")
