"""Benchmark support for scripts/bench: the baseline app and the wrk script."""
