"""`scripts/bench --rounds N`: each ratio's verdict is its median over the rounds, and the checks
count what every round sent (a request of an earlier round is still metered and audited)."""

from __future__ import annotations

from scripts.benchmark.load import Run
from scripts.benchmark.results import _verdict, median_ratios, targets


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


def test_each_bar_says_in_how_many_rounds_it_held():
    rounds = [
        {"R/B1": 0.95, "F/B2": 0.61, "p99 F/B2": 2.10},
        {"R/B1": 1.05, "F/B2": 0.58, "p99 F/B2": 1.90},
        {"R/B1": 0.90, "F/B2": 0.62, "p99 F/B2": 1.70},
    ]
    results = {"runs": {}, "rounds": rounds, "ratios": median_ratios(rounds)}
    judged = targets(results)
    assert (judged["R/B1"]["met"], judged["R/B1"]["rounds_met"]) == (False, 1)
    assert (judged["F/B2"]["met"], judged["F/B2"]["rounds_met"]) == (True, 2)
    assert (judged["p99 F/B2"]["met"], judged["p99 F/B2"]["rounds_met"]) == (True, 2)
    assert judged["R/B1"]["rounds"] == 3
    assert "(held in 1 of 3 rounds)" in _verdict(judged["R/B1"])


def test_a_single_run_has_no_round_count():
    results = {"runs": {}, "ratios": {"R/B1": 1.1}}
    judged = targets(results)
    assert judged["R/B1"]["met"] and "rounds" not in judged["R/B1"]
    assert "rounds" not in _verdict(judged["R/B1"])
