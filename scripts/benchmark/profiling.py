"""`scripts/bench --profile F,R`: one more run of each under py-spy, summarised."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from testkit import Served

from . import ROOT, log
from .load import Run, drained, wrk


def profile_run(server: Served, run: Run, args, out: Path) -> dict:
    """The same wrk run again under py-spy (every worker sampled): collapsed stacks + summary."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        log("py-spy is not installed (pip install -r requirements-bench.txt): no profile")
        return {}
    raw = out / f"profile-{run.name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.txt"
    duration = int(args.seconds) + 1
    spy = subprocess.Popen(
        [
            pyspy,
            "record",
            "--pid",
            str(server.process.pid),
            "--subprocesses",
            "--format",
            "raw",
            "--rate",
            "200",
            "--gil",
            "--duration",
            str(duration),
            "--output",
            str(raw),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    log(f"{run.name}: profiled run ({args.seconds} s) under py-spy")
    result = wrk(run.url, run.keys, args.seconds, args)
    drained(server)
    spy.wait(timeout=60)
    summary = summarize_profile(raw) if raw.exists() else {}
    return {"wrk": result, "raw": str(raw.relative_to(ROOT)), **summary}


# "function (/path/to/site-packages/pkg/file.py:123)" -> function, "pkg/file.py"
_FRAME = re.compile(r"(.*) \((?:.*/(?:site-packages|lib/python3\.\d+|main)/)?(.*?)(?::\d+)?\)$")
PACKAGES = (
    "service",
    "pymysql",
    "flask",
    "werkzeug",
    "marshmallow",
    "gunicorn",
    "logging",
    "json",
    "threading",
    "queue",
    "socket",
    "uuid",
    "re",
    "datetime",
)


def summarize_profile(raw: Path, top: int = 30) -> dict:
    """From py-spy's collapsed stacks: the share of samples by package of the innermost frame
    (where the time is spent), and by function anywhere on the stack (what it is spent for),
    leaving out the frames on (nearly) every stack, gunicorn's own loop."""
    by_package: dict[str, int] = {}
    innermost: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            if match and not frame.startswith("process "):
                frames.append((match[1], match[2]))
        if not frames:
            continue
        n = int(count)
        total += n
        path = frames[-1][1]
        package = next((p for p in PACKAGES if path.startswith((f"{p}/", f"{p}.py"))), "other")
        by_package[package] = by_package.get(package, 0) + n
        leaf = f"{frames[-1][0]} ({path})"
        innermost[leaf] = innermost.get(leaf, 0) + n
        for name in {f"{func} ({path})" for func, path in frames}:
            inclusive[name] = inclusive.get(name, 0) + n

    def ranked(counts: dict[str, int], limit: int) -> list[list]:
        best = sorted(counts.items(), key=lambda kv: -kv[1])
        return [[name, round(100 * n / total, 1)] for name, n in best if n < 0.9 * total][:limit]

    return {
        "samples": total,
        "self_by_package": ranked(by_package, len(PACKAGES) + 1),
        "self_top": ranked(innermost, 15),
        "inclusive_top": ranked(inclusive, top),
    }
