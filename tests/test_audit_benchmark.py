"""benchmarks/verify.py at a tiny size: its JSON, and its cached store, which verifies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from acctdomain.audit import verify

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "verify.py"
KEYS = {
    "ratio_vs_sqlite",
    "ratio_vs_sqlite_sha256",
    "ratio_vs_sqlite_1_worker",
    "workers",
    "events",
    "events_per_second",
    "targets",
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
            "--events",
            "300",
            "--repeat",
            "1",
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


def test_the_verify_benchmark_reports_its_ratio_and_reuses_its_store(tmp_path: Path) -> None:
    first = run_benchmark(tmp_path)
    assert not KEYS - set(first), KEYS - set(first)
    assert first["events"] == first["workload"]["events"] == 300
    assert set(first["events_per_second"]) == {
        "acctdomain",
        "sqlite",
        "sqlite_sha256",
        "acctdomain_1_worker",
    }
    assert first["workers"] == 1  # 300 events: too few for worker processes
    assert all(rate > 0 for rate in first["events_per_second"].values())
    assert first["ratio_vs_sqlite"] > 0
    assert first["targets"]["ratio_vs_sqlite_min"] == 0.5
    assert first["workload"]["reused"] is False
    report = verify(first["workload"]["database"])
    assert report.ok
    assert report.checked == 300
    assert run_benchmark(tmp_path)["workload"]["reused"] is True


def test_a_bad_size_is_refused(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--events", "0", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "must be positive" in completed.stderr
