#!/usr/bin/env python3
"""Service monitor for the Wikimedia enterprise export API.

Checks GET /health, GET /api/export and GET /api/audit concurrently, each on a
fresh connection and under a hard deadline, writes a JSON report (and
optionally JUnit XML and node_exporter textfile metrics) and exits 0 only when
every check passed.

Meant for cron and CI: `python scripts/service_monitor.py --help`; manual in
docs/monitor.md, code in the wme_monitor package beside this file. The API key
is read only from MONITOR_API_KEY (environment or the project's .env) so it
never shows up in process lists, and it is never written to any output.
"""

import sys
from pathlib import Path

# Run as a script, Python puts this directory first on sys.path; imported (tests), it may not.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from wme_monitor.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
