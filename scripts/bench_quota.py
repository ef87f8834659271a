#!/usr/bin/env python3
"""Quota decisions per second through the service, next to a bare single-row UPDATE.

    .venv/bin/python scripts/bench_quota.py [--seconds 10] [--workers 4] [--connections 32]

The benchmark itself is scripts/benchmark/quota.py (its docstring says what it measures).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.benchmark.quota import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
