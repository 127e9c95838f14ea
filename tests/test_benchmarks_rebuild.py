"""benchmarks/rebuild.py at a tiny size: its JSON, its cache, and that the read models it
leaves behind are what a second rebuild writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from acctdomain import AccountService
from acctdomain.plugins import PluginHost

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "rebuild.py"
KEYS = {
    "ratio_vs_eventsourcing",
    "ratio_vs_sqlite",
    "rss_ratio_1m_vs_100k",
    "targets",
    "events_per_second",
    "rss",
    "read_models",
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
            "20",
            "--events-per-account",
            "10",
            "--repeat",
            "1",
            "--dir",
            str(directory),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def read_models(path: Path, *, rebuild: bool = False) -> dict[str, list[tuple[str, Any]]]:
    """Every row of every projection's tables, through the public read API (after a rebuild of
    them all, if asked)."""
    service = AccountService(str(path), plugins=PluginHost(entry_points=False))
    try:
        if rebuild:
            service.projections.rebuild()
        return {
            f"{name}/{table}": list(service.read_model(name).scan(table))
            for name in service.projections.names
            for table in service.projections.projection(name).tables
        }
    finally:
        service.close()


@pytest.fixture(scope="module")
def benchmark_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    directory = tmp_path_factory.mktemp("rebuild-bench")
    return directory, run_benchmark(directory)


def test_json_has_the_figures_the_issue_asks_for(
    benchmark_run: tuple[Path, dict[str, Any]],
) -> None:
    _, result = benchmark_run
    assert not KEYS - set(result), KEYS - set(result)
    assert result["events"] == result["workload"]["events"] >= 20 * 10
    assert set(result["events_per_second"]) == {"acctdomain", "eventsourcing", "sqlite"}
    assert all(rate > 0 for rate in result["events_per_second"].values())
    assert result["targets"]["ratio_vs_eventsourcing_min"] == 2.0
    assert result["targets"]["ratio_vs_sqlite_min"] == 0.5
    assert result["targets"]["rss_ratio_1m_vs_100k_max"] == 1.2
    assert result["rss"]["small"]["events"] < result["rss"]["large"]["events"]
    rows = int(result["read_models"]["digest"].split(":")[0])
    tables = read_models(Path(result["workload"]["database"]))
    assert len(tables["accounts/accounts"]) == len(tables["kpi_facts/accounts"]) == 20
    assert any(row["revenue"] for _, row in tables["kpi_facts/revenue"])
    # builtin.workday: one row per account (and one per plan item, per value delivered).
    for table in ("stakeholders/stakeholders", "value_realised/accounts"):
        assert len(tables[table]) == 20, table
    plans = tables["account_plans/plans"]
    assert sum(1 for key, _ in plans if ":" not in key) == 20
    assert any(":goals:" in key for key, _ in plans)
    assert rows == sum(len(table) for table in tables.values())  # every built-in table


def test_read_models_equal_a_second_rebuild(benchmark_run: tuple[Path, dict[str, Any]]) -> None:
    _, result = benchmark_run
    path = Path(result["workload"]["database"])
    left_behind = read_models(path)
    assert len(left_behind["accounts/accounts"]) == 20
    assert read_models(path, rebuild=True) == left_behind


def test_a_second_run_reuses_the_database(benchmark_run: tuple[Path, dict[str, Any]]) -> None:
    directory, first = benchmark_run
    assert first["workload"]["reused"] is False
    second = run_benchmark(directory)
    assert second["workload"]["reused"] is True
    assert second["read_models"]["digest"] == first["read_models"]["digest"]
