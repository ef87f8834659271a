#!/usr/bin/env python3
"""Regenerate the evidence committed under monitoring/ and docs/screenshots/, from real runs.

    .venv/bin/python scripts/evidence.py [--skip-screenshots] [--monitor-only] [--install]

It needs Debian's faketime (and, for the screenshots, chromium): when one is missing it says how
to install it and stops before running anything, or installs it (output visible) with --install.

1. monitoring/logs.txt: the service's own log of a quota cycle for key_ABC123 (five 200s, the
   429 with its reset time, and the next UTC day's 200). The service runs under libfaketime
   (Debian's `faketime`), started ten seconds before 00:00 UTC, so the day really turns while it
   runs; nothing is edited afterwards.
2. monitoring/report-*.json and monitoring/validation.txt: the monitor's validation from the brief
   against the real service: healthy (exit 0), an endpoint slowed by a relay that delays every
   answer by 700 ms (exit 1), the service stopped (exit 1). Reports of real runs in monitoring/
   are ignored by git, these samples too: after regenerating, `git add -f monitoring/report-*`.
3. docs/screenshots/*.png: scripts/screenshots (a real newman run rendered by headless Chromium).

Every run uses a throw-away database; keys appear only as their 6-character prefix.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the service, and the harness (tests/testkit.py)
# The harness reads TEST_DB_*; this script, like the service, honours DB_*.
for _part in ("HOST", "PORT", "USER", "PASS"):
    if f"DB_{_part}" in os.environ:
        os.environ.setdefault(f"TEST_DB_{_part}", os.environ[f"DB_{_part}"])

from testkit import DB_SETTINGS, TcpRelay, fresh_database, start_service  # noqa: E402

MONITORING = ROOT / "monitoring"
FULL_KEYS = ("key_ABC123", "key_DEF456")


LIBFAKETIME_GLOB = "/usr/lib/*/faketime/libfaketime.so.1"


def libfaketime() -> Path | None:
    """Debian's libfaketime, or None when it is not installed."""
    found = sorted(Path("/").glob(LIBFAKETIME_GLOB.lstrip("/")))
    return found[0] if found else None


def need_libfaketime(install: bool) -> Path:
    """libfaketime, installed with visible output only when asked; otherwise how to get it."""
    found = libfaketime()
    if found is None and install:
        print("installing Debian's faketime (apt-get install -y faketime)", flush=True)
        subprocess.run(["apt-get", "install", "-y", "faketime"], check=True)
        found = libfaketime()
    if found is None:
        raise SystemExit(
            "scripts/evidence.py needs libfaketime (Debian's faketime), which is missing. "
            "Install it with:\n  apt-get install faketime    (or run scripts/evidence.py "
            "--install to let it do so)"
        )
    return found


def quota_cycle_log(faketime: Path) -> None:
    """Five 200s, a 429, and the next UTC day's 200, in the service's own log."""
    today = datetime.now(UTC).date()
    start = f"{today} 23:59:50"
    raw = MONITORING / ".logs.raw"
    raw.unlink(missing_ok=True)
    with fresh_database(sample=True, prefix="evidence") as database:
        # The library preloaded into gunicorn itself (not the `faketime` wrapper, which would sit
        # between us and gunicorn and swallow the SIGTERM): the clock starts at `start` and runs.
        faked = {"LD_PRELOAD": str(faketime), "FAKETIME": f"@{start}"}
        service = start_service(database, raw, workers=1, settings=DB_SETTINGS, extra_env=faked)
        try:
            headers = {"X-API-Key": "key_ABC123"}
            for _ in range(6):
                requests.get(service.url + "/api/export?limit=1", headers=headers, timeout=10)
            # Wait, in the service's own (faked) clock, until the UTC day has turned.
            usage = requests.get(service.url + "/api/usage", headers=headers, timeout=10).json()
            time.sleep(usage["reset_in_seconds"] + 1)
            after = requests.get(service.url + "/api/export?limit=1", headers=headers, timeout=10)
            assert after.status_code == 200, after.text
        finally:
            service.stop(timeout=60)
    lines = raw.read_text(encoding="utf-8").splitlines()
    raw.unlink()
    header = [
        "# The service's log (gunicorn + the app's JSON request lines) of a quota cycle for the",
        "# sample key key_AB... (5 calls a day): five 200s, the 429 with its reset time, and the",
        "# first call of the next UTC day, which is admitted again. Keys appear only as prefixes.",
        "# The service ran under libfaketime, started at "
        f"{start} UTC, so the day turned while it ran.",
        "# Regenerate: .venv/bin/python scripts/evidence.py",
        f"# Made: {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
        "",
    ]
    write_checked(MONITORING / "logs.txt", "\n".join(header + lines) + "\n")


def monitor(base_url: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["MONITOR_API_KEY"] = "key_DEF456"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "service_monitor.py"), "--base-url", base_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def monitor_validation() -> None:
    for old in MONITORING.glob("report-*.json"):
        old.unlink()
    log = MONITORING / ".serve.log"
    log.unlink(missing_ok=True)
    runs = []
    try:
        with fresh_database(sample=True, prefix="evidence") as database:
            service = start_service(database, log, workers=2, settings=DB_SETTINGS)
            try:
                # Each worker opens its database connection on its first request: warm them
                # first, so the samples show the service's latency, not its start-up.
                for _ in range(4):
                    for path in ("/health", "/api/export", "/api/audit"):
                        requests.get(
                            service.url + path, headers={"X-API-Key": "key_DEF456"}, timeout=10
                        )
                runs.append(("healthy service", "0", *monitor(service.url)))
                # The brief's "slow endpoint": every connection held 700 ms before it reaches
                # the service, so every answer comes 700 ms late.
                relay = TcpRelay("127.0.0.1", service.port, delay=0.7)
                runs.append(("every answer delayed 700 ms by a relay", "1", *monitor(relay.url)))
                relay.close()
            finally:
                service.stop(timeout=60)
            runs.append(("service stopped", "1", *monitor(service.url)))
    finally:
        log.unlink(missing_ok=True)
    text = [
        "# The brief's monitoring validation, run against the real service (scripts/serve).",
        "# Regenerate: .venv/bin/python scripts/evidence.py --monitor-only",
        f"# Made: {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
        "",
    ]
    for what, expected, code, output in runs:
        text += [
            f"## {what}: exit {code} (expected {expected})",
            "$ MONITOR_API_KEY=... python scripts/service_monitor.py --base-url <url>",
            re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", output)
            .replace(f"{ROOT}/", "")
            .rstrip(),
            "",
        ]
        if str(code) != expected:
            raise SystemExit(f"monitor exit {code} for {what}, expected {expected}")
    write_checked(MONITORING / "validation.txt", "\n".join(text) + "\n")


def write_checked(path: Path, text: str) -> None:
    for key in FULL_KEYS:
        if key in text:
            raise SystemExit(f"refusing to write {path.name}: it holds a full key")
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-screenshots", action="store_true")
    parser.add_argument("--monitor-only", action="store_true", help="only the monitor's samples")
    parser.add_argument(
        "--install",
        action="store_true",
        help="install missing Debian packages (faketime, chromium) with apt-get",
    )
    args = parser.parse_args()
    screenshots = not (args.skip_screenshots or args.monitor_only)
    if not args.monitor_only:
        faketime = need_libfaketime(args.install)
    if screenshots and not args.install and shutil.which("chromium") is None:
        raise SystemExit(
            "scripts/evidence.py needs chromium (Debian's chromium) for the screenshots, which "
            "is missing. Install it with:\n  apt-get install chromium    (or run "
            "scripts/evidence.py --install, or --skip-screenshots)"
        )
    if not args.monitor_only:
        quota_cycle_log(faketime)
    monitor_validation()
    for report in sorted(MONITORING.glob("report-*.json")):
        write_checked(report, report.read_text(encoding="utf-8"))
    print("sample reports are git-ignored like real runs: git add -f monitoring/report-*.json")
    if screenshots:
        install = ["--install"] if args.install else []
        subprocess.run([str(ROOT / "scripts" / "screenshots"), *install], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
