"""benchmarks/churn_risk.py on a small demo book: its JSON has the figures issue 9 asks for,
and the risk model ranks the held-out period's churners better than the base rate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "churn_risk.py"
KEYS = {
    "benchmark", "cutoff", "horizon_days", "train_examples", "train_churns", "test_examples",
    "test_churns", "auc", "base_rate_auc", "brier", "base_rate_brier", "brier_skill",
    "reliability", "beats_base_rate", "book", "sbg", "seconds",
}  # fmt: skip


def run(*args: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def test_risk_model_beats_the_base_rate_on_the_held_out_period() -> None:
    result = run("--accounts", "120", "--seed", "7")
    assert not KEYS - set(result), KEYS - set(result)
    assert result["benchmark"] == "churn_risk"
    assert result["book"]["accounts"] == 120
    assert result["base_rate_auc"] == 0.5
    assert result["test_churns"] > 0
    assert result["auc"] > result["base_rate_auc"]
    assert result["beats_base_rate"] is True
    assert 0 <= result["brier"] < 1
    assert 0 < result["base_rate_brier"] < 1
    assert sum(b["count"] for b in result["reliability"]) == result["test_examples"]
    assert result["sbg"]["alpha"] > 0
    assert result["sbg"]["beta"] > 0
