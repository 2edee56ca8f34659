"""The Locust load test, run headless against the running stack and a dead port."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
LOCUST = Path(sys.executable).parent / "locust"
STAGE_NAMES = {"parse", "triton", "total"}


def run_locust(host: str, csv_prefix: Path, run_time: str, users: int) -> int:
    command = [
        str(LOCUST),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        run_time,
        "--stop-timeout",
        "10",
        "--csv",
        str(csv_prefix),
        "--only-summary",
        "--qa-long-words",
        "1500",
    ]
    # The exit code is the result under test, so a non-zero one must not raise.
    completed = subprocess.run(
        command,
        check=False,
        cwd=csv_prefix.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    print(completed.stderr[-4000:])
    return completed.returncode


def read_stats(csv_prefix: Path) -> list[dict]:
    path = csv_prefix.parent / f"{csv_prefix.name}_stats.csv"
    with open(path, encoding="utf-8", newline="") as file:
        return [row for row in csv.DictReader(file) if row["Name"] != "Aggregated"]


def test_loadtest_passes_against_stack(stack, tmp_path):
    prefix = tmp_path / "run"

    exit_code = run_locust(stack.url, prefix, "15s", users=4)

    assert exit_code == 0
    rows = read_stats(prefix)
    requests = [row for row in rows if row["Type"] == "POST"]
    stages = [row for row in rows if row["Type"] == "stage"]
    by_name = {row["Name"]: row for row in requests}
    assert sum(int(row["Request Count"]) for row in requests) > 50
    assert sum(int(row["Failure Count"]) for row in requests) == 0
    assert "squad top_k=1" in by_name
    assert "batch of 4" in by_name
    assert "long context" in by_name
    assert any(name.startswith("invalid: ") for name in by_name)
    assert {row["Name"] for row in stages} == STAGE_NAMES
    assert all(int(row["Request Count"]) > 0 for row in stages)


def test_loadtest_fails_without_backend(tmp_path):
    prefix = tmp_path / "dead"

    exit_code = run_locust(f"http://127.0.0.1:{free_port()}", prefix, "3s", users=1)

    assert exit_code != 0
    rows = read_stats(prefix)
    assert sum(int(row["Failure Count"]) for row in rows) > 0
