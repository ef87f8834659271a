"""`python -m scripts.benchmark.statements`, as docs/performance.md tells a reader to run it: it
builds its statements from the service's SQL (a moved owner check or placeholder stops it), creates
the one-CALL procedure on the server, prepares the quota UPDATE and the page, and prints a figure
for every row."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from testkit import ROOT

ROW = re.compile(r"^(?P<label>.+?)\s+(?P<server>\d+)\s+(?P<client>\d+)$")


@pytest.mark.e2e
def test_the_statement_costs_print_a_figure_for_each_statement():
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEY_HASH_SECRET")}
    argv = [sys.executable, "-m", "scripts.benchmark.statements", "--count", "20", "--repeat", "1"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [m["label"].strip() for m in map(ROW.match, done.stdout.splitlines()[1:]) if m]
    assert rows == [
        "B1: SELECT by primary key",
        "B2: UPDATE calls_made + 1",
        "the key by hash (FIND_BY_HASH)",
        "the quota UPDATE (CONSUME_QUOTA)",
        "the same without the owner check",
        "the JSON page (JSON_OBJECTS, 2 rows)",
        "admission + page: two round trips",
        "admission + page: one CALL",
        "the quota UPDATE prepared (EXECUTE)",
        "the JSON page prepared (EXECUTE)",
        "admission + page: prepared, two trips",
    ]
