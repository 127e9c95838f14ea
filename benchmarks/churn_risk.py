"""The churn-risk model against a base-rate predictor on the demo book's held-out period.

What it measures
----------------
A seeded demo book (``acctdomain.demo.generate_book``, ``--accounts``, ``--seed``) is written
to an in-memory store. The risk model of ``acctdomain.forecasting.risk`` is trained on the
windows ``(T, T + horizon]`` that ended by the cutoff ``T0 = book end - horizon`` (cutoffs
every ``--step-days`` back from ``T0 - horizon``) and scores the accounts active at ``T0``;
their labels are the churns effective in ``(T0, T0 + horizon]``, a window the model never saw.

Figures
-------
``auc`` (ROC AUC of the model's probabilities on the held-out accounts) against
``base_rate_auc`` = 0.5 (one probability for everyone ranks nobody); ``brier`` (mean squared
error of the probabilities) against ``base_rate_brier`` (the training churn rate for
everyone), ``brier_skill`` = 1 - brier / base-rate brier; ``reliability`` (predicted against
observed churn in bins of 0.1); ``beats_base_rate`` = auc > base_rate_auc. Also the
book's size, the example counts, and the sBG retention fit of the same book for context.

How to run
----------
::

    .venv/bin/python benchmarks/churn_risk.py --json                  # 300 accounts, seed 7
    .venv/bin/python benchmarks/churn_risk.py --accounts 600 --seed 11
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from acctdomain import AccountService
from acctdomain.demo import generate_book
from acctdomain.forecasting.cohorts import observations
from acctdomain.forecasting.retention import book_lifetimes
from acctdomain.forecasting.risk import book_histories, evaluate_risk
from acctdomain.forecasting.sbg import fit_sbg
from acctdomain.plugins import PluginHost

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def run(args: argparse.Namespace) -> dict[str, Any]:
    service = AccountService("memory:", clock=lambda: NOW, plugins=PluginHost(entry_points=False))
    try:
        began = time.perf_counter()
        book = generate_book(service, accounts=args.accounts, seed=args.seed)
        written = time.perf_counter() - began
        end = datetime.combine(book.end, datetime.min.time(), UTC)
        began = time.perf_counter()
        histories = book_histories(service)
        evaluation = evaluate_risk(
            histories,
            cutoff=end - timedelta(days=args.horizon_days),
            horizon_days=args.horizon_days,
            step_days=args.step_days,
        )
        seconds = time.perf_counter() - began
        fit = fit_sbg(observations(book_lifetimes(service, as_of=end)))
    finally:
        service.close()
    result = evaluation.as_dict()
    return {
        "benchmark": "churn_risk",
        **result,
        "beats_base_rate": evaluation.auc is not None and evaluation.auc > evaluation.base_rate_auc,
        "book": {
            "accounts": book.accounts,
            "seed": book.seed,
            "events": book.events,
            "churns": book.churns,
            "start": book.start.isoformat(),
            "end": book.end.isoformat(),
        },
        "sbg": {"alpha": fit.alpha, "beta": fit.beta, "churns": fit.churns},
        "seconds": {"write_book": written, "train_and_evaluate": seconds},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=300, help="demo accounts (300)")
    parser.add_argument("--seed", type=int, default=7, help="demo seed (7)")
    parser.add_argument("--horizon-days", type=int, default=180, help="label window (180)")
    parser.add_argument("--step-days", type=int, default=60, help="between training cutoffs (60)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    auc = result["auc"]
    print(
        f"{result['book']['accounts']} accounts (seed {result['book']['seed']}), held-out "
        f"{result['horizon_days']} days after {result['cutoff'][:10]}: "
        f"{result['test_examples']} accounts, {result['test_churns']} churned"
    )
    print(f"AUC {'-' if auc is None else f'{auc:.3f}'} vs base rate {result['base_rate_auc']}")
    print(f"Brier {result['brier']:.4f} vs base rate {result['base_rate_brier']:.4f}")


if __name__ == "__main__":
    main()
