"""Release day, end to end: a legacy database of each shape, upgraded with `flask --app service
migrate` as the operator runs it, then the brief's three-request collection
(tests/postman/legacy_collection.json, through newman) and the brief's monitor
(`python scripts/service_monitor.py`) against the real service: both pass. No full key, nor any
7-character piece of one, in the migrate output, the database dump, the service log, any response
or the monitor's output and report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from database.legacy_support import SHAPES, legacy_database, planted_keys

from testkit import BASE_SETTINGS, ROOT, Sql, start_service

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
COLLECTION = ROOT / "tests" / "postman" / "legacy_collection.json"
NEWMAN = ROOT / ".cache" / "newman" / "node_modules" / ".bin" / "newman"
FLASK = [sys.executable, "-m", "flask", "--app", "service"]


def pieces(keys: list[str], size: int = 7) -> set[str]:
    return {k[i : i + size] for k in keys for i in range(len(k) - size + 1)}


def operator_migrate(database: str) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DB_")},
        **{k: str(v) for k, v in BASE_SETTINGS.items()},
        "DB_NAME": database,
    }
    done = subprocess.run(
        [*FLASK, "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def run_collection(base_url: str, workdir: Path) -> tuple[list[str], list[str]]:
    """(failed assertions, response bodies): through newman when it is installed (scripts/postman
    installs it), else the same requests replayed with the collection's checks in Python."""
    if NEWMAN.exists() and shutil.which("node"):
        export = workdir / "newman.json"
        done = subprocess.run(
            [
                str(NEWMAN),
                "run",
                str(COLLECTION),
                "--env-var",
                f"baseUrl={base_url}",
                "--reporters",
                "cli,json",
                "--reporter-json-export",
                str(export),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        report = json.loads(export.read_text())
        failed = [
            f"{e['item']['name']}: {a['assertion']}"
            for e in report["run"]["executions"]
            for a in e.get("assertions", [])
            if a.get("error")
        ]
        bodies = [
            bytes(e["response"]["stream"]["data"]).decode("utf-8", errors="replace")
            for e in report["run"]["executions"]
        ]
        assert len(bodies) == 3 and (done.returncode == 0) == (not failed), done.stdout
        return failed, bodies
    failed, bodies = [], []
    for item in json.loads(COLLECTION.read_text())["item"]:
        request = item["request"]
        response = requests.get(
            request["url"].replace("{{baseUrl}}", base_url),
            headers={h["key"]: h["value"] for h in request["header"]},
            timeout=30,
        )
        bodies.append(response.text)
        if response.status_code != 200:
            failed.append(f"{item['name']}: status {response.status_code}")
        if "Audit" in item["name"] and not all(
            r["masked_key"].endswith("...") for r in response.json()["data"]
        ):
            failed.append(f"{item['name']}: unmasked key")
    if response.headers.get("X-RateLimit-Remaining") != "3":
        failed.append("Load Test (Run Last): remaining")
    return failed, bodies


def run_monitor(base_url: str, report_dir: Path) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["MONITOR_API_KEY"] = "key_DEF456"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "service_monitor.py"),
            "--base-url",
            base_url,
            "--report-dir",
            str(report_dir),
            "--threshold-ms",
            "10000",
            "--timeout-ms",
            "15000",
            "--run-timeout-ms",
            "30000",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    reports = "".join(p.read_text() for p in sorted(report_dir.glob("report-*.json")))
    return done.returncode, done.stdout + done.stderr + reports


@pytest.mark.parametrize("shape", list(SHAPES))
def test_release_day_collection_and_monitor_pass_on_an_upgraded_legacy_database(shape, tmp_path):
    with legacy_database(shape) as name:
        migrate_output = operator_migrate(name)
        served = start_service(name, tmp_path / "serve.log")
        try:
            failed, bodies = run_collection(served.url, tmp_path)
            assert not failed, failed
            code, monitor_output = run_monitor(served.url, tmp_path / "reports")
            assert code == 0, monitor_output
        finally:
            served.stop()
        sql = Sql(name)
        try:
            dump = sql.dump()
        finally:
            sql.close()
        everything = {
            "migrate output": migrate_output,
            "database dump": dump,
            "service log": served.log_text(),
            "responses": "\n".join(bodies),
            "monitor output and report": monitor_output,
        }
        secrets = pieces(planted_keys(shape))
        for where, text in everything.items():
            found = sorted(p for p in secrets if p.lower() in text.lower())
            assert not found, f"pieces of a full key in the {where}: {found}"
        assert "key_DE..." in everything["responses"], "the scan looked at real responses"


def test_without_the_key_hash_secret_the_service_and_the_cli_refuse_to_start():
    line = (
        "KEY_HASH_SECRET is not set: the service refuses to start without the secret its key "
        "hashes are keyed with (docs/operations.md, 'Key hash secret')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "KEY_HASH_"))}
    env.update({k: str(v) for k, v in BASE_SETTINGS.items() if k != "KEY_HASH_SECRET"})
    env.update(
        PORT="1",
        BIND_HOST="127.0.0.1",
        WEB_CONCURRENCY="1",
        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    )
    # Empty in the environment, which wins over a .env that scripts/run may have written.
    env["KEY_HASH_SECRET"] = ""
    served_and_cli = ([str(ROOT / "scripts" / "serve")], [*FLASK, "migrate"])
    for argv in served_and_cli:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert line in done.stdout + done.stderr
