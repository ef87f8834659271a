"""A 200,000-row NDJSON export through nginx streams: the first line reaches the client while the
service is still producing, and nginx's memory stays flat (it never holds the export).

The figures are printed (-s); docs/operations.md quotes them from:

    .venv/bin/pytest -s -n 0 tests/proxy/test_ndjson_stream.py
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
from proxykit import proxy_stack, rss_kb

pytestmark = [pytest.mark.proxy, pytest.mark.xdist_group("proxy_ndjson")]

ROWS = 200_000
BACKPRESSURE_BYTES = 512 * 1024
PAUSE_BOUND = 30  # seconds the client waits for backpressure to reach the instance (test time)
GROWTH_BOUND_MB = 50  # generous: a proxy that buffered the export would grow by its size (~80 MB)

# 200,000 articles in one statement: a numbers table from a ten-digit CTE, crossed six times.
LOAD_ARTICLES = """
INSERT INTO articles (title, url, language, summary, updated_at)
WITH digits AS (
  SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
  UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9
), numbers AS (
  SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 100000 * g.d AS n
    FROM digits a, digits b, digits c, digits e, digits f, digits g
)
SELECT CONCAT('Bulk article ', n), CONCAT('https://en.wikipedia.org/wiki/Bulk_', n), 'en',
       REPEAT('A summary long enough to look like one. ', 6),
       TIMESTAMP('2026-11-01 00:00:00') + INTERVAL n SECOND
  FROM numbers WHERE n < %(rows)s
"""


def load_articles(sql) -> None:
    sql.run(LOAD_ARTICLES, {"rows": ROWS})


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # The client pauses mid-export on purpose, on a shared machine: room for it within the
    # worker's request time limit (and nginx's, which follows it).
    slow = {"GUNICORN_TIMEOUT": "300"}
    with proxy_stack(
        tmp_path_factory.mktemp("ndjson"),
        prepare=load_articles,
        service_env=slow,
        proxy_env=slow,
    ) as s:
        yield s


def sending_sockets(ports: set[int]) -> list[tuple[int, int]]:
    """(port, bytes queued to send) of established TCP sockets listening side on `ports`: an
    instance still writing its response to nginx."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        state, tx_queue = fields[3], int(fields[4].split(":")[0], 16)
        if local_port in ports and state == "01":
            found.append((local_port, tx_queue))
    return found


class RssSampler:
    """Samples the summed RSS of nginx's workers every 20 ms, in a thread."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def total(self) -> int:
        return sum(rss_kb(pid) for pid in self.pids)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.samples.append(self.total())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def test_a_200000_row_export_streams_through_nginx_with_flat_memory(stack):
    total_rows = stack.sql.value("SELECT COUNT(*) FROM articles")
    assert total_rows >= ROWS
    key = {"X-API-Key": stack.add_key("export")}
    ports = {served.port for served in stack.instances}
    workers = stack.proxy.worker_pids()
    # Warm both workers (first requests allocate their pools), then take the baseline.
    for _ in range(4):
        requests.get(stack.url + "/api/export?limit=1000", headers=key, timeout=30)
    sampler = RssSampler(workers)
    baseline = sampler.total()
    started = time.perf_counter()
    with (
        sampler,
        requests.get(
            stack.url + "/api/export?format=ndjson", headers=key, stream=True, timeout=60
        ) as response,
    ):
        assert response.status_code == 200
        assert "X-Accel-Buffering" not in response.headers  # nginx consumes it
        chunks = response.iter_content(chunk_size=256 * 1024)
        received = next(chunks)
        while b"\n" not in received:
            received += next(chunks)
        first_at = time.perf_counter() - started
        first = received.split(b"\n", 1)[0]
        # Stop reading: a streaming proxy stops reading too, so once the buffers between are
        # full the instance is left with its response unsent; a buffering proxy takes it all
        # (into a file) and the instance finishes whatever the client does.
        paused = time.perf_counter()
        still_sending: list[int] = []
        while time.perf_counter() - paused < PAUSE_BOUND:
            still_sending = [tx for _port, tx in sending_sockets(ports) if tx > 0]
            if sum(still_sending) > BACKPRESSURE_BYTES:
                break
            time.sleep(0.1)
        pause = time.perf_counter() - paused
        count = received.count(b"\n") + sum(chunk.count(b"\n") for chunk in chunks)
        finished_at = time.perf_counter() - started
    peak = max(sampler.samples)
    growth_mb = (peak - baseline) / 1024
    print(
        f"\nNDJSON export through nginx: {count} rows in {finished_at:.2f} s;"
        f" first line after {first_at * 1000:.0f} ms; the client then stopped reading and"
        f" after {pause:.1f} s the instance had {sum(still_sending) // 1024} KB queued"
        f" unsent ({len(still_sending)} socket)"
        f"\n  nginx workers' RSS (sum of {len(workers)}): baseline {baseline / 1024:.1f} MB,"
        f" peak {peak / 1024:.1f} MB, growth {growth_mb:.1f} MB"
        f" over {len(sampler.samples)} samples"
    )
    assert first.startswith(b"{")
    assert count == total_rows
    # Backpressure reached the instance: its socket holds what nginx would not take. A buffering
    # proxy drains the instance whatever the client does, so little would queue there.
    assert sum(still_sending) > BACKPRESSURE_BYTES, "nginx took the export from the instance"
    assert growth_mb < GROWTH_BOUND_MB
