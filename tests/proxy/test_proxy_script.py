"""scripts/proxy itself: the configuration it renders from the service's settings, one line per
bad setting, what it says when nginx is missing, its 502, 504 and 400 in the API's shape, and
SIGTERM."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests
from proxykit import require_nginx

from testkit import ROOT, free_port, wait_until

pytestmark = [pytest.mark.proxy, pytest.mark.xdist_group("proxy_script")]

SCRIPT = str(ROOT / "scripts" / "proxy")


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROXY_")}
    return subprocess.run(
        [SCRIPT, *args], env={**clean, **env}, capture_output=True, text=True, timeout=30
    )


def directive(config: str, name: str) -> list[str]:
    return re.findall(rf"^\s*{name}\s+([^;]+);", config, flags=re.M)


def test_the_configuration_follows_the_service_settings_and_the_upstream_list():
    result = run(
        "--print-config",
        MAX_BODY_BYTES="2097152",
        GUNICORN_TIMEOUT="30",
        UPSTREAMS="10.0.0.5:8080, api-2:8080,[::1]:9000",
        PROXY_PORT="9999",
    )
    assert result.returncode == 0, result.stderr
    config = result.stdout
    assert directive(config, "client_max_body_size") == ["2097152"]
    assert directive(config, "proxy_read_timeout") == ["35s"]
    assert directive(config, "proxy_send_timeout") == ["35s"]
    assert directive(config, "listen") == ["0.0.0.0:9999"]
    assert re.findall(r"server (\S+) max_fails=1 fail_timeout=10s;", config) == [
        "10.0.0.5:8080",
        "api-2:8080",
        "[::1]:9000",
    ]
    assert directive(config, "proxy_next_upstream_tries") == ["3"]
    assert directive(config, "proxy_next_upstream") == ["error timeout http_502"]
    assert "non_idempotent" not in "".join(directive(config, "proxy_next_upstream"))
    assert directive(config, "proxy_set_header X-Request-ID") == ["$request_id"]
    assert directive(config, "proxy_set_header X-Forwarded-For") == ["$remote_addr"]
    assert directive(config, "daemon") == ["off"]
    assert "${" not in config  # every name was filled in


def test_the_defaults_are_the_documented_ones():
    config = run("--print-config").stdout
    assert directive(config, "listen") == ["0.0.0.0:8088"]
    assert re.findall(r"server (\S+) max_fails", config) == ["127.0.0.1:8080"]
    assert directive(config, "client_max_body_size") == ["67108864"]
    assert directive(config, "proxy_read_timeout") == ["65s"]


def test_each_bad_setting_is_one_line_that_never_echoes_the_value():
    result = run(
        PROXY_PORT="hunter2",
        UPSTREAMS="db.internal:3306;rm",
        MAX_BODY_BYTES="lots",
        GUNICORN_TIMEOUT="",
        PROXY_WORKERS="many",
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert sorted(lines) == [
        "scripts/proxy: MAX_BODY_BYTES must be a number of bytes (at least 1024)",
        "scripts/proxy: PROXY_PORT must be a port number (1-65535)",
        "scripts/proxy: PROXY_WORKERS must be auto or a number of processes (1-99)",
        "scripts/proxy: UPSTREAMS must be a comma-separated list of host:port",
    ]
    for value in ("hunter2", "3306;rm", "lots", "many"):
        assert value not in result.stderr


def test_without_nginx_it_says_so_and_how_to_install_it(tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "env", "dirname", "grep", "sort", "sed", "mktemp", "chmod", "rm"):
        (tools / tool).symlink_to(shutil.which(tool))
    result = run(PATH=str(tools))
    assert result.returncode == 127
    assert result.stderr.strip() == (
        "scripts/proxy: nginx is not installed; on Debian or Ubuntu: apt-get install nginx"
    )


def test_with_no_instance_answering_it_is_the_json_502_then_sigterm_stops_it_and_cleans_up(
    tmp_path,
):
    require_nginx()
    port, dead = free_port(), free_port()
    process = subprocess.Popen(
        [SCRIPT],
        env={
            **os.environ,
            "PROXY_PORT": str(port),
            "PROXY_BIND_HOST": "127.0.0.1",
            "UPSTREAMS": f"127.0.0.1:{dead}",
            "TMPDIR": str(tmp_path),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:

        def answer():
            try:
                return [requests.get(f"http://127.0.0.1:{port}/api/export", timeout=5)]
            except requests.ConnectionError:
                return None  # not listening yet

        (response,) = wait_until(answer, timeout=15)  # a Response is falsy when not ok
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "bad_gateway"
        assert response.headers["Retry-After"] == "5"
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
        assert [p.name for p in tmp_path.iterdir()][0].startswith("wme-proxy.")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert time.monotonic() - started < 12  # worker_shutdown_timeout is 10 s
        assert list(tmp_path.iterdir()) == []  # its state directory is gone
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def silent_upstream():
    """A listener that accepts connections and never answers: an instance stuck in a request."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for sock in held:
            sock.close()
        listener.close()


def test_an_instance_that_never_answers_is_the_json_504_after_gunicorns_timeout_and_a_margin(
    tmp_path,
):
    require_nginx()
    port = free_port()
    with silent_upstream() as upstream:
        process = subprocess.Popen(
            [SCRIPT],
            env={
                **os.environ,
                "PROXY_PORT": str(port),
                "PROXY_BIND_HOST": "127.0.0.1",
                "UPSTREAMS": f"127.0.0.1:{upstream}",
                "GUNICORN_TIMEOUT": "1",  # nginx waits 1 + 5 s
                "TMPDIR": str(tmp_path),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_until(lambda: _listening(port), timeout=15)
            started = time.monotonic()
            response = requests.get(f"http://127.0.0.1:{port}/api/export", timeout=30)
            waited = time.monotonic() - started
            too_long = requests.get(
                f"http://127.0.0.1:{port}/api/export",
                headers={"X-Padding": "x" * 9000},  # over gunicorn's 8190-byte header limit
                timeout=10,
            )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "gateway_timeout"
    assert response.headers["Retry-After"] == "5"
    assert 5 <= waited < 20  # proxy_read_timeout = GUNICORN_TIMEOUT + 5 s
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "bad_request"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
