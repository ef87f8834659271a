"""No output holds more than six consecutive characters of the key, in any case: not the report,
stdout, stderr, the JUnit file or the Prometheus file, whatever variant a server echoes."""

import json
import socket

import pytest

from wme_monitor.redact import REDACTED, scrub, scrub_tree

# Mixed case, like the service's keys, so upper- and lower-cased echoes differ from it.
KEY = "wk_Q7dKx2LmPz9RtYb4NcVfH8sJ"

VARIANTS = {
    "character added": KEY + "x",
    "last character changed": KEY[:-1] + "0",
    "upper case": KEY.upper(),
    "lower case": KEY.lower(),
    "inside a longer token": "session" + KEY[5:17] + "end",
    "seven characters": KEY[9:16],
}


@pytest.fixture
def api_key() -> str:
    return KEY


def leaks(text: str) -> list[str]:
    """The 7-character runs of the key found in text, case-insensitively."""
    folded, key = text.lower(), KEY.lower()
    return [key[i : i + 7] for i in range(len(key) - 6) if key[i : i + 7] in folded]


# --------------------------------------------------------------------------
# The rule itself
# --------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_scrub_removes_every_variant(variant):
    text = f"status: rejected {variant}, try again"
    scrubbed = scrub(text, KEY)
    assert leaks(scrubbed) == []
    assert scrubbed == f"status: rejected {REDACTED}, try again"


def test_the_public_prefix_and_unrelated_text_stay():
    text = f"key {KEY[:6]}... is revoked; see wk_other_key and {KEY[:6]}zz"
    assert scrub(text, KEY) == text


def test_a_key_spanning_a_separator_is_cut_too():
    key = "abc,defghijkl"
    scrubbed = scrub(f"x{key}y and {key.upper()}", key)
    assert "defghij" not in scrubbed.lower() and "abc,def" not in scrubbed.lower()


def test_scrub_tree_keeps_the_json_valid():
    report = {"a": [f'"{KEY}"', {KEY.lower(): 3}], "n": 1234567}
    text = json.dumps(scrub_tree(report, KEY))
    assert leaks(text) == []
    assert json.loads(text)["n"] == 1234567


# --------------------------------------------------------------------------
# The real script against servers that echo the key
# --------------------------------------------------------------------------


def outputs(run, *files) -> dict[str, str]:
    found = {"stdout": run.stdout, "stderr": run.stderr}
    found |= {p.name: p.read_text() for p in run.report_dir.iterdir()}
    found |= {p.name: p.read_text() for p in files}
    return found


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_an_echoing_api_gets_no_variant_into_any_output(variant, make_api, run_monitor, tmp_path):
    api = make_api(
        health=dict(body=f"OK {variant}".encode(), content_type="text/plain"),
        export=dict(status=500, body=b"{}", reason=f"Rejected {variant}"),
        audit=dict(status=503, body=b"{}", reason=f"Echo:{variant}!"),
    )
    textfile = tmp_path / "wme_monitor.prom"
    run = run_monitor("--base-url", api.url, "--prometheus-file", str(textfile), junit=True)

    assert run.returncode == 1, run.stdout + run.stderr
    # The key was sent, and each echo reached the report, scrubbed.
    assert api.requests_for("/api/export")[0].headers["X-API-Key"] == KEY
    assert REDACTED in run.check("health")["reasons"][0]["measured"]
    assert REDACTED in run.check("export")["reasons"][0]["message"]
    assert REDACTED in run.check("audit")["reasons"][0]["message"]
    for where, text in outputs(run, run.junit, textfile).items():
        assert leaks(text) == [], where


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_a_status_line_echo_in_an_error_message_is_scrubbed(
    variant, make_raw, run_monitor, tmp_path
):
    def bad_status_line(server, conn: socket.socket) -> None:
        conn.settimeout(2)
        conn.recv(65536)
        conn.sendall(f"HTTP/1.1 2x0 {variant}\r\nContent-Length: 0\r\n\r\n".encode())

    server = make_raw(bad_status_line)
    textfile = tmp_path / "wme_monitor.prom"
    run = run_monitor(
        "--base-url", server.url, "--prometheus-file", str(textfile), "--json", junit=True
    )

    assert run.returncode == 1
    for name in ("health", "export", "audit"):
        error = run.check(name)["attempts"][0]["error"]
        assert error.startswith("BadStatusLine") and REDACTED in error, error
    for where, text in outputs(run, run.junit, textfile).items():
        assert leaks(text) == [], where
