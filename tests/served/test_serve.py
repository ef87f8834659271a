"""The real service: `scripts/serve` (gunicorn, sync workers) on a free port, over MariaDB.

Worker count from WEB_CONCURRENCY, one request connection plus one audit-writer connection per
worker, recovery after the database drops them, header limits, graceful SIGTERM, and a refused
boot on a bad setting.
"""

from __future__ import annotations

import json
import multiprocessing
import runpy
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

import service.config
from assertions import DEF
from testkit import ROOT, TEST_SECRET, root_connection, wait_until

SECRET = "s3cretvalue"


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(x) for x in found.stdout.split()]


def service_connections(database: str) -> list[int]:
    """Processlist ids of connections on the test database (ours has no default database)."""
    conn = root_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE DB = %s AND ID <> CONNECTION_ID()",
                (database,),
            )
            return sorted(row["ID"] for row in cur.fetchall())
    finally:
        conn.close()


def db_value(database: str, statement: str, params=None):
    conn = root_connection(database)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            row = cur.fetchone()
            return None if row is None else next(iter(row.values()))
    finally:
        conn.close()


def audit_rows(database: str) -> int:
    return db_value(database, "SELECT COUNT(*) FROM audit_logs")


def get(url: str, **kwargs) -> requests.Response:
    return requests.get(url, timeout=10, **kwargs)


# ---------------------------------------------------------------------------------------------
# gunicorn configuration (no server started)


def load_gunicorn_conf(monkeypatch, tmp_path, **env) -> dict:
    monkeypatch.setattr(service.config, "PROJECT_ROOT", tmp_path)  # no .env of the developer's
    for name in ("PORT", "WEB_CONCURRENCY", "BIND_HOST"):
        monkeypatch.delenv(name, raising=False)
    # The secret is given here: the configuration must load whatever the caller's environment.
    monkeypatch.setenv("KEY_HASH_SECRET", TEST_SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "service" / "gunicorn_conf.py"))


def test_gunicorn_conf_defaults(monkeypatch, tmp_path):
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    assert conf["bind"] == "0.0.0.0:8080"
    assert conf["workers"] == multiprocessing.cpu_count() * 2 + 1
    # gunicorn's sync worker, subclassed only so that malformed requests are not echoed.
    assert conf["worker_class"] == "service.gunicorn_worker.MaskingSyncWorker"
    from gunicorn.workers.sync import SyncWorker

    from service.gunicorn_worker import MaskingSyncWorker

    assert issubclass(MaskingSyncWorker, SyncWorker)
    assert conf["preload_app"] is False  # the app (and any connection) is made after fork
    assert callable(conf["worker_exit"])
    assert conf["graceful_timeout"] > 0 and conf["timeout"] > 0


def test_gunicorn_conf_honours_port_and_web_concurrency(monkeypatch, tmp_path):
    conf = load_gunicorn_conf(monkeypatch, tmp_path, PORT="9123", WEB_CONCURRENCY="5")
    assert conf["bind"].endswith(":9123")
    assert conf["workers"] == 5


# ---------------------------------------------------------------------------------------------
# The real service


@pytest.mark.e2e
def test_serve_runs_gunicorn_sync_workers_from_web_concurrency(database, serve):
    served = serve(database, workers=3)
    master = served.process.pid
    cmdline = Path(f"/proc/{master}/cmdline").read_bytes().split(b"\0")
    # scripts/serve exec'd python -m service.serve, which checks the settings and runs gunicorn
    # in that same process: the pid the caller holds is gunicorn's master.
    assert cmdline[:3] == [b"python", b"-m", b"service.serve"]
    assert sorted(wait_until(lambda: len(children(master)) == 3 and children(master)))
    log = served.log_text()
    assert "Starting gunicorn" in log and f"({master})" in log
    assert "Using worker: service.gunicorn_worker.MaskingSyncWorker" in log
    assert f"Listening at: http://127.0.0.1:{served.port}" in log
    response = get(served.url + "/health")
    assert response.status_code == 200 and response.text == "OK"
    assert len(children(master)) == 3
    # A production start never creates sample data.
    assert db_value(database, "SELECT COUNT(*) FROM api_keys") == 0


@pytest.mark.e2e
def test_each_request_is_logged_once_by_the_service_and_never_by_gunicorn(sample_database, serve):
    """gunicorn writes an access line (the request line, query string included) whenever a
    logging configuration is given; the service's own JSON line is the only one it may write."""
    served = serve(sample_database, workers=1)
    paths = ["/api/usage", "/api/export?limit=1&since=x", "/api/nowhere"]
    for path in paths:
        get(served.url + path, headers=DEF)
    served.stop()
    lines = served.log_text().splitlines()
    logged = [json.loads(line) for line in lines if '"event": "request"' in line]
    assert [line["path"] for line in logged if line["path"].startswith("/api")] == [
        "/api/usage",
        "/api/export",
        "/api/nowhere",
    ]
    assert not [line for line in lines if "HTTP/1.1" in line or "limit=1" in line]


@pytest.mark.e2e
def test_one_request_and_one_audit_connection_per_worker(sample_database, serve):
    workers = 3
    served = serve(sample_database, workers=workers)
    wait_until(lambda: len(children(served.process.pid)) == workers)
    paths = ["/api/export?limit=5", "/api/usage", "/api/audit?limit=5"] * 20

    def fire(path):
        return get(served.url + path, headers=DEF).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(fire, paths)) == {200}
    wait_until(lambda: audit_rows(sample_database) >= 3 + len(paths))
    first = service_connections(sample_database)
    assert 1 <= len(first) <= workers * 2, first
    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(fire, paths)) == {200}
    wait_until(lambda: audit_rows(sample_database) >= 3 + 2 * len(paths))
    second = service_connections(sample_database)
    assert len(second) <= workers * 2, second
    # The same connections served the second round: none is opened per request.
    assert set(first) <= set(second)


@pytest.mark.e2e
def test_service_recovers_after_its_connections_are_killed(sample_database, serve):
    served = serve(sample_database, workers=2)
    for _ in range(10):
        assert get(served.url + "/api/export?limit=1", headers=DEF).status_code == 200
    wait_until(lambda: audit_rows(sample_database) >= 3 + 10)
    killed = service_connections(sample_database)
    assert len(killed) >= 2  # at least one request connection and one audit connection
    conn = root_connection()
    try:
        with conn.cursor() as cur:
            for process_id in killed:
                cur.execute("KILL %s", (process_id,))
    finally:
        conn.close()
    wait_until(lambda: not set(killed) & set(service_connections(sample_database)))
    statuses = []
    for _ in range(8):
        response = get(served.url + "/api/export?limit=1", headers=DEF)
        statuses.append(response.status_code)
        if response.status_code == 503:
            assert response.headers["Retry-After"]
            assert response.json()["error"]["code"] == "db_unavailable"
    # At most one request may meet a dead connection; every other one is served.
    assert statuses.count(503) <= 1 and statuses.count(200) >= 7, statuses
    assert statuses[-1] == 200, statuses
    assert served.process.poll() is None
    # The audit writers reconnect too: every request of this test ends up in audit_logs.
    wait_until(lambda: audit_rows(sample_database) >= 3 + 10 + len(statuses))
    assert not set(killed) & set(service_connections(sample_database))


@pytest.mark.e2e
def test_oversized_header_is_refused_and_the_service_keeps_answering(sample_database, serve):
    served = serve(sample_database, workers=2)
    master = served.process.pid
    workers = wait_until(lambda: len(children(master)) == 2 and children(master))
    for headers in ({"X-API-Key": "k" * 20_480}, {**DEF, "X-Padding": "p" * 20_480}):
        response = get(served.url + "/api/export?limit=1", headers=headers)
        assert response.status_code in (400, 431), response.status_code
        assert "k" * 100 not in response.text
    assert served.process.poll() is None
    assert get(served.url + "/health").status_code == 200
    assert get(served.url + "/api/export?limit=1", headers=DEF).status_code == 200
    assert sorted(children(master)) == sorted(workers)  # no worker crashed and was replaced


@pytest.mark.e2e
def test_sigterm_finishes_accepted_requests_and_exits_0(sample_database, serve):
    grace = 10
    served = serve(sample_database, workers=2, extra_env={"GUNICORN_GRACEFUL_TIMEOUT": str(grace)})
    db_value(sample_database, "UPDATE api_keys SET rate_limit = 100 WHERE id = 1")
    records = [
        {
            "title": f"Slow import {n}",
            "url": f"https://en.wikipedia.org/wiki/Slow_import_{n}",
            "language": "en",
            "summary": "Sent slowly.",
            "updated_at": "2026-01-01T00:00:00Z",
        }
        for n in range(15)
    ]
    before = db_value(sample_database, "SELECT COUNT(*) FROM articles")

    def slow_body():
        for record in records:
            yield (json.dumps(record) + "\n").encode()
            time.sleep(0.1)  # a slow client, not a wait

    result = {}

    def upload():
        try:
            result["response"] = requests.post(
                served.url + "/api/import",
                data=slow_body(),
                headers={"X-API-Key": "key_ABC123", "Content-Type": "application/x-ndjson"},
                timeout=30,
            )
        except requests.RequestException as exc:
            result["error"] = exc

    thread = threading.Thread(target=upload)
    thread.start()
    # The quota UPDATE runs before the body is read: once it shows, a worker holds the request.
    wait_until(lambda: db_value(sample_database, "SELECT calls_made FROM api_keys WHERE id = 1"))
    started = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    served.process.wait(timeout=grace + 5)
    elapsed = time.monotonic() - started
    thread.join(timeout=10)
    assert served.process.returncode == 0, served.log_text()
    assert elapsed < grace
    assert "error" not in result, result
    response = result["response"]
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "success", "imported": len(records)}
    assert db_value(sample_database, "SELECT COUNT(*) FROM articles") == before + len(records)
    # The worker flushed its audit buffer on the way out: the import is in the trail.
    assert (
        db_value(
            sample_database,
            "SELECT COUNT(*) FROM audit_logs"
            " WHERE endpoint = '/api/import' AND response_code = 200",
        )
        == 1
    )
    with pytest.raises(requests.ConnectionError):
        requests.get(served.url + "/health", timeout=2)


@pytest.mark.e2e
def test_bad_setting_refuses_boot_without_echoing_it(database, serve):
    with pytest.raises(RuntimeError) as caught:
        serve(database, workers=1, extra_env={"DB_PORT": SECRET})
    text = str(caught.value)
    assert "exited early" in text
    assert "bad setting DB_PORT (from the environment): it accepts a whole number" in text
    assert SECRET not in text and "Traceback" not in text
