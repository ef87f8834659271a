"""`scripts/bench` itself, as docs/performance.md tells a reader to run it: on a checkout with no
`.env` and no KEY_HASH_SECRET (the benchmark's servers and keys use the harness's own secret)."""

from __future__ import annotations

import os
import subprocess

import pytest

from testkit import ROOT


@pytest.mark.e2e
@pytest.mark.slow
def test_the_benchmark_runs_without_a_key_hash_secret_in_the_environment():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEY_HASH_SECRET", "DB_"))}
    # --install: wrk comes from Debian's packages; apt-get runs only if it is missing.
    argv = [str(ROOT / "scripts" / "bench"), "--install", "--only", "B0", "--seconds", "1"]
    argv += ["--warmup", "1", "--rows", "1000", "--import-rows", "100", "--workers", "1"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "KEY_HASH_SECRET" not in done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("B0 ")]
    assert len(rows) == 1 and "bare Flask route" in rows[0]
    assert "audit complete met" in done.stdout
