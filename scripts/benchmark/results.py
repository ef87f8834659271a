"""After the runs: the checks (quota exact, audit complete), the ratios and targets, the table."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
from pathlib import Path

from testkit import root_connection

from .load import Run
from .seeding import SPENT_LIMIT, Keys

# The baselines that write: each has its own key row, whose calls_made must equal the requests
# wrk wrote (a check of the harness itself).
HARNESS_ROWS = ("B2", "B3", "B4", "B5", "B6")


def checks(database: str, keys: Keys, runs: dict[str, Run]) -> dict:
    conn = root_connection(database)
    with conn.cursor() as cur:
        cur.execute("SELECT label, id, calls_made FROM api_keys")
        calls = {r["label"]: r["calls_made"] for r in cur.fetchall()}
        cur.execute(
            "SELECT key_id, response_code, COUNT(*) AS n FROM audit_logs "
            "GROUP BY key_id, response_code"
        )
        audit_rows = cur.fetchall()
    conn.close()
    by_label = {v: k for k, v in keys.ids.items()}
    audit: dict[str, dict[str, int]] = {}
    for row in audit_rows:
        label = by_label.get(row["key_id"], str(row["key_id"]))
        audit.setdefault(label, {})[str(row["response_code"])] = row["n"]

    f_labels = [f"F{i + 1}" for i in range(len(keys.f))]
    f_sent = runs["F"].sent
    f_calls = sum(calls[label] for label in f_labels)
    f_audit = {}
    for label in f_labels:
        for code, n in audit.get(label, {}).items():
            f_audit[code] = f_audit.get(code, 0) + n
    r_sent, u_sent = runs["R"].sent, runs["U"].sent
    audit_total = sum(sum(codes.values()) for codes in audit.values())
    harness = {}
    for name in HARNESS_ROWS:
        harness[f"{name.lower()}_sent"] = runs[name].sent if name in runs else None
        harness[f"{name.lower()}_calls_made"] = calls[name]
    return {
        "f_sent": f_sent,
        "f_calls_made": f_calls,
        "f_audit": f_audit,
        "r_sent": r_sent,
        "r_calls_made": calls["R"],
        "r_audit": audit.get("R", {}),
        "u_sent": u_sent,
        "u_audit": audit.get("U", {}),
        "audit_rows": audit_total,
        "requests_sent": f_sent + r_sent + u_sent,
        **harness,
        "quota_exact": f_calls == f_sent and calls["R"] == SPENT_LIMIT,
        "audit_complete": (
            audit_total == f_sent + r_sent + u_sent
            # A run left out with --only sent nothing and must have no rows.
            and f_audit == ({"200": f_sent} if f_sent else {})
            and audit.get("R", {}) == ({"429": r_sent} if r_sent else {})
            and audit.get("U", {}) == ({"200": u_sent} if u_sent else {})
        ),
    }


def mb(kb: int | None) -> str:
    return "? (worker gone)" if kb is None else f"{kb / 1024:.0f} MB"


def ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def report(results: dict) -> str:
    lines = []
    m = results["machine"]
    a = results["args"]
    lines.append(
        f"{results['date']}  {m['cpu']} x{m['nproc']}, {m['ram_gb']} GB, MariaDB {m['mariadb']}, "
        f"Python {m['python']}"
    )
    lines.append(
        f"gunicorn sync workers: {a['workers']}; wrk: {a['threads']} threads, "
        f"{a['connections']} connections, {a['warmup']} s warm-up + {a['seconds']} s; "
        f"load average before: {results['loadavg_before']}"
    )
    lines.append("")
    lines.append(
        f"{'run':<4} {'what':<38} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'requests':>8} {'non-2xx':>7}   CPU ms/request: app   db  wrk other"
    )
    for name, row in results["runs"].items():
        lat = row["measured"]["latency_us"]
        cpu = row["measured"]["cpu_per_request"]
        lines.append(
            f"{name:<4} {row['what']:<38} {row['rps']:>7,.0f} {ms(lat['p50']):>7} "
            f"{ms(lat['p99']):>7} {row['measured']['requests']:>8,} "
            f"{row['measured']['errors']['status']:>7,}   {'':>14} {cpu['app_ms']:>5.2f} "
            f"{cpu['db_ms']:>4.2f} {cpu['wrk_ms']:>4.2f} {cpu['other_ms']:>5.2f}"
        )
    lines.append("")
    rounds = results.get("rounds")
    if rounds:
        lines.append(
            f"{len(rounds)} rounds (the table above is the last; the ratios below are the "
            "medians of these):"
        )
        for name in results["ratios"]:
            values = ", ".join(f"{r[name]:.2f}" for r in rounds)
            lines.append(f"  {name:<12} {values}")
        lines.append("")
    for name, value in results["ratios"].items():
        target = results["targets"].get(name)
        verdict = "" if target is None else f"  {_verdict(target)}"
        lines.append(f"{name:<14} {value:>6.2f}{verdict}")
    c = results.get("checks")
    if c:
        lines.append("")
        lines.append(
            f"quota: F keys calls_made {c['f_calls_made']:,} == F requests sent {c['f_sent']:,}; "
            f"R key calls_made {c['r_calls_made']} (limit {SPENT_LIMIT}) after {c['r_sent']:,} "
            f"refusals: {'exact' if c['quota_exact'] else 'NOT exact'}"
        )
        lines.append(
            f"audit: {c['audit_rows']:,} rows == {c['requests_sent']:,} requests sent "
            f"(F {c['f_audit']}, R {c['r_audit']}, U {c['u_audit']}): "
            f"{'none lost' if c['audit_complete'] else 'MISMATCH'}"
        )
        counted = [
            f"{n} row updated {c[f'{n.lower()}_calls_made']:,} times for "
            f"{c[f'{n.lower()}_sent']:,} requests written"
            for n in HARNESS_ROWS
            if c.get(f"{n.lower()}_sent")  # a row whose series did not run (--only) sent nothing
        ]
        if counted:
            lines.append("harness: " + "; ".join(counted))
    b = results.get("bulk")
    if b:
        e, cl, i = b["export"], b["client"], b["import"]
        lines.append("")
        lines.append(f"bulk ({b['articles']:,} articles, 1 worker):")
        lines.append(
            f"  export NDJSON   {e['rows_per_s']:>9,} rows/s  {e['rows']:,} rows "
            f"{e['bytes'] / 1e6:,.0f} MB in {e['seconds']} s; worker peak RSS "
            f"{mb(e['peak_rss_kb'])}; CPU s: worker {e['worker_cpu_s']}, "
            f"MariaDB {e['db_cpu_s']}"
        )
        lines.append(
            f"  mariadb --batch {cl['rows_per_s']:>9,} rows/s  {cl['rows']:,} rows "
            f"{cl['bytes'] / 1e6:,.0f} MB in {cl['seconds']} s; CPU s: client "
            f"{cl['client_cpu_s']}, MariaDB {cl['db_cpu_s']}"
        )
        failed = (
            f" FAILED: {i['error']},"
            if i.get("error")
            else f" FAILED: HTTP {i['status']},"
            if i.get("status") != 200
            else ""
        )
        lines.append(
            f"  import NDJSON   {i['rows_per_s']:>9,} rows/s  {i.get('imported')} rows{failed} "
            f"{i['bytes'] / 1e6:,.0f} MB in {i['seconds']} s; worker peak RSS "
            f"{mb(i['peak_rss_kb'])}; CPU s: worker {i['worker_cpu_s']}, "
            f"MariaDB {i['db_cpu_s']}"
        )
    lines.append("")
    lines.append(
        "targets: "
        + ", ".join(
            f"{name} {'met' if t['met'] else 'NOT met'}" for name, t in results["targets"].items()
        )
    )
    if b:
        t = results["targets"]
        lines.append(
            f"export/client {b['export_ratio']:.2f}  {_verdict(t['export/client'])}; "
            f"export peak RSS {mb(b['export']['peak_rss_kb'])}  "
            f"{_verdict(t['export peak RSS'])}"
        )
    lines.append(f"wall time: {results['wall_seconds']:.0f} s")
    return "\n".join(lines)


def _verdict(target: dict) -> str:
    text = f"bar {target['rule']}: {'met' if target['met'] else 'NOT met'}"
    if "rounds" in target:
        text += f" (held in {target['rounds_met']} of {target['rounds']} rounds)"
    if "goal" in target:
        text += f"; goal {target['goal']}: {'met' if target['goal_met'] else 'NOT met'}"
    return text


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1])
    conn = root_connection()
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION() AS v")
        version = cur.fetchone()["v"]
    conn.close()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(ram / 1024 / 1024),
        "mariadb": version,
        "python": platform.python_version(),
        "wrk": wrk_version.splitlines()[0] if wrk_version else "",
        "kernel": platform.release(),
    }


# This round's targets (issue 17): each figure has a bar (the least to reach) and a goal.
# name: (comparison, bar, goal); RSS in MB.
TARGETS = {
    "R/B1": (">=", 1.0, 1.3),
    "U/B1": (">=", 1.0, 1.3),
    "F/B2": (">=", 0.6, 0.8),
    "p99 F/B2": ("<=", 2.0, 1.5),
    "export/client": (">=", 0.8, 1.0),
    "export peak RSS": ("<", 100, 64),
}


def _judge(name: str, value: float | None) -> dict:
    op, bar, goal = TARGETS[name]

    def passes(limit: float) -> bool:
        if value is None:
            return False
        return {">=": value >= limit, "<=": value <= limit, "<": value < limit}[op]

    unit = " MB" if name == "export peak RSS" else ""
    return {
        "rule": f"{op} {bar}{unit}",
        "met": passes(bar),
        "goal": f"{op} {goal}{unit}",
        "goal_met": passes(goal),
    }


def targets(results: dict) -> dict:
    out = {}
    runs = results["runs"]
    ratio = results.get("ratios") or ratios(runs)
    rounds = results.get("rounds") or []
    for name in ("R/B1", "U/B1", "F/B2", "p99 F/B2"):
        if name in ratio:
            out[name] = _judge(name, ratio[name])
            if len(rounds) > 1:
                # How often the bar held, next to the median: on a noisy machine a median near
                # the bar says little by itself.
                out[name]["rounds"] = len(rounds)
                out[name]["rounds_met"] = sum(_judge(name, r.get(name))["met"] for r in rounds)
    c = results.get("checks")
    if c:
        out["quota exact"] = {"rule": "==", "met": c["quota_exact"]}
        out["audit complete"] = {"rule": "==", "met": c["audit_complete"]}
    b = results.get("bulk")
    if b:
        out["export/client"] = _judge("export/client", b["export_ratio"])
        peak = b["export"]["peak_rss_kb"]
        out["export peak RSS"] = _judge("export peak RSS", None if peak is None else peak / 1024)
        out["export complete"] = {
            "rule": "all rows",
            "met": b["export"]["complete"] and b["export"]["rows"] == b["articles"],
        }
        out["import complete"] = {
            "rule": "all rows",
            "met": b["import"].get("imported") == results["args"]["import_rows"],
        }
    return out


def median_ratios(rounds: list[dict]) -> dict:
    """Each ratio's median over the rounds that have it (--rounds)."""
    names = [name for name in rounds[0] if all(name in r for r in rounds)]
    return {name: round(statistics.median(r[name] for r in rounds), 3) for name in names}


def ratios(runs: dict) -> dict:
    out = {}

    def rps(name: str) -> float | None:
        return runs[name]["rps"] if name in runs else None

    pairs = (
        ("F", "B2"),
        ("F", "B1"),
        ("R", "B1"),
        ("U", "B1"),
        ("F", "B3"),
        ("B3", "B2"),
        ("F", "B4"),
        ("B4", "B2"),  # the most F/B2 can be: F runs B4's statements and more
        ("B5", "B2"),  # the same with the admission and the page in one round trip
        ("B6", "B2"),  # the same two prepared: without the server's parsing
    )
    for a, b in pairs:
        if rps(a) and rps(b):
            out[f"{a}/{b}"] = round(rps(a) / rps(b), 3)
    if "F" in runs and "B2" in runs:
        out["p99 F/B2"] = round(
            runs["F"]["measured"]["latency_us"]["p99"]
            / runs["B2"]["measured"]["latency_us"]["p99"],
            3,
        )
    return out
