"""The project's own clients pass through nginx unchanged: the monitor (as cron runs it) and the
Postman regression suite (newman), against two instances behind scripts/proxy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from proxykit import proxy_stack

from service import migrations
from service.keys import render_key_hashes
from testkit import ROOT, TEST_SECRET

pytestmark = [pytest.mark.proxy, pytest.mark.xdist_group("proxy_clients")]


def load_postman_fixtures(sql) -> None:
    """What the collection cannot arrange over HTTP (as scripts/postman does for its own run,
    through `load-sample-data --extra`): its key hashes are filled in with the harness's secret."""
    text = (ROOT / "tests" / "postman" / "fixtures.sql").read_text(encoding="utf-8")
    for statement in migrations.split_statements(render_key_hashes(text, TEST_SECRET)):
        sql.run(statement)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with proxy_stack(tmp_path_factory.mktemp("clients"), prepare=load_postman_fixtures) as s:
        yield s


def test_the_monitor_passes_through_the_proxy(stack, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "service_monitor.py"),
            "--base-url",
            stack.url,
            "--report-dir",
            str(tmp_path),
            "--threshold-ms",
            "5000",  # a shared machine: the claim here is the path, not the latency
            "--timeout-ms",
            "10000",
            "--json",
        ],
        env={**os.environ, "MONITOR_API_KEY": "key_DEF456"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "pass" and report["config"]["base_url"] == stack.url
    assert report["summary"]["passed"] == report["summary"]["total"] == 3
    (written,) = tmp_path.glob("report-*.json")
    assert json.loads(written.read_text()) == report
    # Every check went through nginx: its access log has the monitor's requests.
    paths = {entry["path"] for entry in stack.proxy.entries()}
    assert {"/health", "/api/export", "/api/audit"} <= paths
    assert "key_DEF456" not in result.stdout + result.stderr + written.read_text()


def test_the_postman_collection_passes_through_the_proxy(stack):
    before = len(stack.proxy.entries())
    result = subprocess.run(
        [str(ROOT / "scripts" / "postman"), "--base-url", stack.url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 failed" in result.stdout
    # newman's requests went through nginx: each of the collection's 12 at least once.
    newman_requests = stack.proxy.entries()[before:]
    assert len(newman_requests) >= 12
    assert {"/health", "/api/export", "/api/usage", "/api/audit"} <= {
        entry["path"] for entry in newman_requests
    }
