"""`scripts/bench --rounds N`: each ratio's verdict is its median over the rounds, and the checks
count what every round sent (a request of an earlier round is still metered and audited)."""

from __future__ import annotations

from scripts.benchmark.load import Run
from scripts.benchmark.results import median_ratios


def wrk_result(sent: int) -> dict:
    return {"sent": sent, "requests": sent, "duration_us": 1_000_000}


def test_each_ratio_is_its_median_over_the_rounds():
    rounds = [
        {"R/B1": 0.71, "U/B1": 1.20, "F/B2": 0.50},
        {"R/B1": 1.13, "U/B1": 0.80, "F/B2": 0.30},
        {"R/B1": 0.90, "U/B1": 1.00},  # F did not run in this round
    ]
    assert median_ratios(rounds) == {"R/B1": 0.9, "U/B1": 1.0}


def test_a_run_counts_every_round_it_sent():
    run = Run("R", "over quota", "http://127.0.0.1:1/api/export", ["k"])
    run.warmup, run.measured = wrk_result(10), wrk_result(100)
    run.next_round()
    assert (run.measured, run.warmup) == (None, None)
    run.warmup, run.measured = wrk_result(20), wrk_result(200)
    assert run.sent == 330
    assert run.rps == 200.0  # the rate is this round's
    run.next_round()
    run.profiled = wrk_result(5)
    assert run.sent == 335
