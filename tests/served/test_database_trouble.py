"""The real service (gunicorn, two workers) on a database that refuses it or was never migrated:
the cause in words, logged once per change of state (not per attempt, the audit writer
included), a prompt SIGTERM, and the rows that could not be written counted in one line."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime

import pytest
import requests

from testkit import fresh_database

pytestmark = pytest.mark.e2e
KEY = {"X-API-Key": "key_DEF456"}


def log_entries(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_wrong_password_is_named_once_per_worker_and_shutdown_is_prompt(database, serve):
    served = serve(database, workers=2, extra_env={"DB_PASS": "wrong"})
    statuses = []
    for _ in range(16):  # about 8 s of traffic: the old writer logged 4 lines a second
        statuses.append(requests.get(served.url + "/api/export", headers=KEY, timeout=10))
        time.sleep(0.5)
    assert {r.status_code for r in statuses} == {503}
    assert {r.json()["error"]["code"] for r in statuses} == {"db_unavailable"}
    signalled_at = time.time()
    assert served.stop(signal.SIGTERM) == 0
    text = served.log_text()
    entries = log_entries(text)
    warnings = [e for e in entries if e["level"] in ("WARNING", "ERROR")]
    cause = "access denied for user root at 127.0.0.1:3306 (check DB_USER and DB_PASS)"
    unavailable = [e for e in warnings if e.get("event") == "db_unavailable"]
    # At most one line per concern (requests, audit writer) per worker; nothing per attempt.
    assert 1 <= len(unavailable) <= 4, [e["message"] for e in warnings]
    assert {e["cause"] for e in unavailable} == {cause}
    for entry in unavailable:
        assert entry["message"] in (
            f"database unavailable (requests): {cause}",
            f"database unavailable (audit writer): {cause}",
        )
    lost = [e for e in warnings if e.get("event") == "audit_lost"]
    assert 1 <= len(lost) <= 2  # one line per worker that held rows
    assert sum(e["lost"] for e in lost) == len(statuses)  # the 16 rows nobody can write
    assert all(e["message"] == f"{e['lost']} audit row(s) lost at exit: {cause}" for e in lost)
    assert len(warnings) == len(unavailable) + len(lost)
    assert "Traceback" not in text and "wrong" not in text
    # Each worker gave up on its rows at once (before: it retried for 10 s). Measured from the
    # log's own clock, so that gunicorn's teardown on a loaded machine does not count.
    for entry in lost:
        at = datetime.fromisoformat(entry["ts"]).timestamp()
        assert at - signalled_at < 5, f"rows given up {at - signalled_at:.1f} s after SIGTERM"


def test_never_migrated_database_answers_503_naming_the_fix_without_traceback(serve):
    with fresh_database(migrate=False) as name:
        served = serve(name, workers=1)
        ready = requests.get(served.url + "/ready", timeout=10)
        export = requests.get(served.url + "/api/export", headers=KEY, timeout=10)
        served.stop()
    for response in (ready, export):
        assert response.status_code == 503
        assert response.json()["error"] == {
            "code": "not_ready",
            "message": "The service's database is not ready: migrations are pending. Retry later.",
        }
        assert response.headers["Retry-After"] == "5"
    text = served.log_text()
    assert "Traceback" not in text
    fix = [e for e in log_entries(text) if e.get("event") == "db_unavailable"]
    assert fix and all("run flask --app service migrate" in e["message"] for e in fix)
    assert any("migrations are pending (schema at version 0 of" in e["message"] for e in fix)
