"""benchmarks/ingest.py at a tiny size: its JSON has the figures issue 8 asks for, every loop
wrote the same events, and importing the files again appended nothing (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ingest.py"
KEYS = {
    "ratio_vs_eventsourcing",
    "ratio_vs_sqlite",
    "targets",
    "events",
    "events_per_second",
    "seconds",
    "reimport",
    "workload",
    "python",
    "platform",
}


def run_benchmark(directory: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--json",
            "--accounts",
            "12",
            "--events-per-account",
            "40",
            "--dir",
            str(directory),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def test_json_has_the_ratios_and_the_reimport_appends_nothing(tmp_path: Path) -> None:
    result = run_benchmark(tmp_path)
    assert set(result) >= KEYS
    assert result["ratio_vs_eventsourcing"] > 0
    assert result["ratio_vs_sqlite"] > 0
    assert set(result["events_per_second"]) == {"acctdomain", "eventsourcing", "sqlite"}
    # 12 accounts of about 40 events each; the script checked both event-sourced loops agree.
    assert 12 * 30 <= result["events"] <= 12 * 45
    assert result["reimport"]["events_appended"] == 0
    assert result["reimport"]["commands_already_imported"] > 0
    assert set(result["workload"]["rows"]) == {
        "accounts",
        "activities",
        "opportunities",
        "tickets",
        "surveys",
    }
    assert result["workload"]["reused"] is False
    # The CSV files are cached for the next run; the databases are gone.
    again = run_benchmark(tmp_path)
    assert again["workload"]["reused"] is True
    assert again["events"] == result["events"]
    assert not list(tmp_path.rglob("*.db"))
