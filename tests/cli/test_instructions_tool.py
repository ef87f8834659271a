"""scripts/benchmark/instructions.py, the instruction counter of docs/performance.md: its child
serves each series in-process as the benchmark's servers do (what valgrind counts), and a wrong
series name is refused before anything starts. valgrind itself is not run here (minutes of CPU)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from scripts.benchmark import instructions
from testkit import ROOT


@pytest.mark.parametrize(("series", "status"), [("R", 429), ("U", 200), ("F", 200)])
def test_the_child_serves_its_series_with_the_status_the_benchmark_expects(series, status):
    assert instructions.child(series, 5, warm_up=2) == {status: 7}


def test_without_switches_off_only_what_it_names(caplog):
    caplog.set_level("INFO")
    try:
        assert instructions.child("U", 3, warm_up=0, without="log") == {200: 3}
    finally:
        logging.getLogger("service.request").disabled = False
    assert not [r for r in caplog.records if r.name == "service.request"]
    instructions.child("U", 1, warm_up=0)
    assert [r for r in caplog.records if r.name == "service.request"]


def test_an_unknown_series_is_refused_before_anything_runs():
    done = subprocess.run(
        [sys.executable, "-m", "scripts.benchmark.instructions", "R", "X9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown series ['X9']" in done.stderr or "needs valgrind" in done.stderr
