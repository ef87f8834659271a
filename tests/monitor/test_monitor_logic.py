"""Unit tests of the monitor's pure logic (no network, no subprocess)."""

import argparse
import errno
import json
import socket
import ssl
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import urllib3.exceptions
from freezegun import freeze_time

from wme_monitor import checks, cli, exit_codes, junit, reasons, redact, runner, units
from wme_monitor import config as cfgmod
from wme_monitor import http_attempt as attempt
from wme_monitor import report as reporting
from wme_monitor import trend as trends

R = reasons.ReasonCode
KEY = "key_SECRET_1234567890"


@pytest.fixture(autouse=True)
def no_dotenv(tmp_path, monkeypatch):
    """main() in process reads no .env (a developer's own could change these tests)."""
    monkeypatch.setattr(cfgmod, "DOTENV_PATH", tmp_path / "no.env")


# --------------------------------------------------------------------------
# classify_exception
# --------------------------------------------------------------------------


def _wrapped(reason: BaseException) -> requests.exceptions.ConnectionError:
    """What requests raises: ConnectionError(MaxRetryError(reason=...))."""
    return requests.exceptions.ConnectionError(
        urllib3.exceptions.MaxRetryError(None, "/health", reason=reason)
    )


def _new_connection_error(cause: OSError) -> urllib3.exceptions.NewConnectionError:
    try:
        try:
            raise cause
        except OSError as exc:
            raise urllib3.exceptions.NewConnectionError(None, f"Failed: {exc}") from exc
    except urllib3.exceptions.NewConnectionError as err:
        return err


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), R.CONNECTION_REFUSED),
        (
            _wrapped(_new_connection_error(ConnectionRefusedError(111, "refused"))),
            R.CONNECTION_REFUSED,
        ),
        (socket.gaierror(-2, "Name or service not known"), R.DNS),
        (
            _wrapped(
                urllib3.exceptions.NameResolutionError("x.invalid", None, socket.gaierror(-2, "no"))
            ),
            R.DNS,
        ),
        (requests.exceptions.ConnectTimeout("connect timed out"), R.TIMEOUT),
        (requests.exceptions.ReadTimeout("read timed out"), R.TIMEOUT),
        # requests re-raises a read timeout while streaming as ConnectionError
        (
            requests.exceptions.ConnectionError(
                urllib3.exceptions.ReadTimeoutError(None, "/x", "Read timed out.")
            ),
            R.TIMEOUT,
        ),
        (TimeoutError("timed out"), R.TIMEOUT),
        (attempt.DeadlineExceeded(), R.TIMEOUT),
        (requests.exceptions.SSLError("certificate verify failed"), R.TLS),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), R.TLS),
        (
            requests.exceptions.ChunkedEncodingError(
                urllib3.exceptions.ProtocolError(
                    "Connection broken", ConnectionResetError(104, "reset")
                )
            ),
            R.CONNECTION_ERROR,
        ),
        (ConnectionResetError(104, "Connection reset by peer"), R.CONNECTION_ERROR),
        # NewConnectionError subclasses urllib3's ConnectTimeoutError: an
        # unreachable network must not be reported as a timeout.
        (
            _wrapped(_new_connection_error(OSError(errno.ENETUNREACH, "unreachable"))),
            R.CONNECTION_ERROR,
        ),
        (attempt.BodyTooLarge(), R.BODY_INVALID),
        (requests.exceptions.ContentDecodingError("bad gzip"), R.BODY_INVALID),
        (RuntimeError("something else"), R.CONNECTION_ERROR),
    ],
)
def test_classify_exception(exc, code):
    reason = reasons.classify_exception(exc)
    assert reason.code is code
    assert reason.message


def test_classify_exception_survives_cycles():
    a = ValueError("a")
    b = ValueError("b")
    a.__context__ = b
    b.__context__ = a
    assert reasons.classify_exception(a).code is R.CONNECTION_ERROR


def test_describe_exception_names_the_low_level_cause_and_scrubs():
    exc = _wrapped(_new_connection_error(ConnectionRefusedError(111, "Connection refused")))
    assert (
        reasons.describe_exception(exc, KEY)
        == "ConnectionRefusedError: [Errno 111] Connection refused"
    )
    leaky = ValueError(f"bad status line 'HTTP/1.1 {KEY}'")
    described = reasons.describe_exception(leaky, KEY)
    assert KEY not in described and "[REDACTED]" in described


# --------------------------------------------------------------------------
# evaluate and friends
# --------------------------------------------------------------------------

SPECS = {spec.name: spec for spec in checks.CHECKS}
TIMEOUT = reasons.Deadline(R.TIMEOUT, 2000, 2001.23)


def ok(
    body: bytes, total: float = 12.0, status: int = 200, phrase: str = "OK"
) -> attempt.Observation:
    return attempt.Observation(
        elapsed_ms=total,
        http_status=status,
        reason_phrase=phrase,
        ttfb_ms=total / 2,
        total_ms=total,
        body=body,
        nbytes=len(body),
    )


def evaluate(name: str, obs: attempt.Observation, threshold: float = 500) -> list[dict]:
    return [r.to_dict() for r in checks.evaluate(SPECS[name], obs, threshold, TIMEOUT, KEY)]


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("health", b"OK"),
        ("health", b"OK\n"),
        ("export", b'{"data": []}'),
        ("export", b'{"data": [1, 2], "cursor": null}'),
        ("audit", b"[]"),
        ("audit", b'{"events": [{"id": 1}]}'),
    ],
)
def test_evaluate_passes(name, body):
    assert evaluate(name, ok(body)) == []


@pytest.mark.parametrize(
    ("name", "body", "measured"),
    [
        ("health", b"NOPE", "NOPE"),
        ("health", b"", ""),
        ("export", b'{"items": []}', "missing"),
        ("export", b'{"data": "x"}', "string"),
        ("export", b"[1, 2]", "array"),
        ("export", b"not json", None),
        ("audit", b"", None),
        ("audit", b"{oops", None),
        ("audit", b"\xff\xfe", None),
    ],
)
def test_evaluate_body_invalid(name, body, measured):
    (reason,) = evaluate(name, ok(body))
    assert reason["code"] == "body_invalid"
    assert reason.get("measured") == measured


def test_evaluate_http_status_skips_body_validation_and_scrubs_reason_phrase():
    (reason,) = evaluate("export", ok(b"<html>", status=503, phrase=f"Unavailable {KEY}"))
    assert reason["code"] == "http_status"
    assert reason["measured"] == 503 and reason["expected"] == 200
    assert KEY not in reason["message"] and "[REDACTED]" in reason["message"]


def test_evaluate_latency_exceeded_reports_measured_and_limit():
    reasons = evaluate("health", ok(b"OK", total=812.44), threshold=500)
    assert reasons == [
        {
            "code": "latency_exceeded",
            "message": "took 812.4 ms, threshold is 500 ms",
            "measured_ms": 812.4,
            "limit_ms": 500,
        }
    ]


def test_evaluate_can_report_several_reasons():
    reasons = evaluate("health", ok(b"NOPE", total=900))
    assert [r["code"] for r in reasons] == ["body_invalid", "latency_exceeded"]


def test_evaluate_latency_exactly_at_threshold_passes():
    assert evaluate("health", ok(b"OK", total=500.0)) == []


def test_evaluate_deadline_hit_is_timeout_with_limit():
    obs = attempt.Observation(elapsed_ms=2001.23, deadline_hit=True)
    assert evaluate("audit", obs) == [
        {
            "code": "timeout",
            "message": "no complete response within 2000 ms",
            "measured_ms": 2001.2,
            "limit_ms": 2000,
        }
    ]


def test_evaluate_requests_timeout_uses_the_deadline():
    obs = attempt.Observation(elapsed_ms=1999.0, error=requests.exceptions.ReadTimeout("x"))
    (reason,) = evaluate("audit", obs)
    assert reason["code"] == "timeout" and reason["limit_ms"] == 2000


def test_evaluate_run_deadline():
    deadline = reasons.Deadline(R.RUN_DEADLINE, 3000, 3004.0)
    obs = attempt.Observation(elapsed_ms=900.0, deadline_hit=True)
    (reason,) = checks.evaluate(SPECS["audit"], obs, 500, deadline, KEY)
    assert reason.to_dict()["code"] == "run_deadline"
    assert reason.limit_ms == 3000 and reason.measured_ms == 3004.0


def test_evaluate_network_error():
    obs = attempt.Observation(elapsed_ms=1.0, error=ConnectionRefusedError(111, "refused"))
    assert [r["code"] for r in evaluate("health", obs)] == ["connection_refused"]


def test_excerpt_scrubs_before_truncating():
    body = ("x" * 75 + KEY + "y" * 50).encode()
    text = redact.excerpt(body, KEY, limit=80)
    assert len(text) <= 80
    assert KEY[:5] not in text  # no prefix of the key survives the cut
    assert redact.excerpt(b"line one\n\tline two", KEY) == "line one line two"


def test_scrub_without_secret_is_identity():
    assert redact.scrub("abc", "") == "abc"


@pytest.mark.parametrize(
    ("codes", "retry"),
    [
        ([R.CONNECTION_REFUSED], True),
        ([R.DNS], True),
        ([R.TIMEOUT], True),
        ([R.CONNECTION_ERROR], True),
        ([R.TLS], False),
        ([R.HTTP_STATUS], False),
        ([R.BODY_INVALID, R.LATENCY_EXCEEDED], False),
        ([R.RUN_DEADLINE], False),
    ],
)
def test_is_retryable(codes, retry):
    assert reasons.is_retryable([reasons.Reason(code, "m") for code in codes]) is retry


# --------------------------------------------------------------------------
# percentile and trend
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([7.0], 95, 7.0),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, 5.5),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95, 9.55),
        ([10, 1, 5], 50, 5),
        ([10, 1, 5], 0, 1),
        ([10, 1, 5], 100, 10),
    ],
)
def test_percentile(values, p, expected):
    result = trends.percentile(values, p)
    assert result == pytest.approx(expected) if expected is not None else result is None


def test_percentile_rejects_out_of_range():
    with pytest.raises(ValueError):
        trends.percentile([1.0], 101)


def report_with(**checks: tuple[str, float | None]) -> dict:
    return {
        "schema_version": "1.0",
        "started_at": "2026-01-01T00:00:00.000Z",
        "config": {"base_url": "http://svc.test", "threshold_ms": 500},
        "checks": [
            {"name": name, "status": status, "latency_ms": {"total": total, "ttfb": None}}
            for name, (status, total) in checks.items()
        ],
    }


def current(name: str, status: str, total: float | None) -> dict:
    return {"name": name, "status": status, "latency_ms": {"total": total, "ttfb": None}}


def test_trend_without_history():
    trend = trends.compute_trend(
        [], [current("health", "fail", None), current("audit", "pass", 10.0)]
    )
    assert trend["previous_reports"] == 0 and trend["window"] == 20
    assert trend["checks"]["health"] == {
        "previous_status": None,
        "consecutive_failures": 1,
        "samples": 0,
        "p50_ms": None,
        "p95_ms": None,
    }
    assert trend["checks"]["audit"]["consecutive_failures"] == 0
    assert trend["checks"]["audit"]["p50_ms"] == 10.0


def test_trend_counts_consecutive_failures_and_previous_status():
    history = [
        report_with(health=("fail", 1.0)),
        report_with(health=("pass", 2.0)),
        report_with(health=("fail", 3.0)),
        report_with(health=("fail", None)),
    ]
    trend = trends.compute_trend(history, [current("health", "fail", 4.0)])["checks"]["health"]
    assert trend["previous_status"] == "fail"
    assert trend["consecutive_failures"] == 3
    assert trend["samples"] == 4  # the null latency is skipped
    assert trend["p50_ms"] == 2.5

    passed = trends.compute_trend(history, [current("health", "pass", 4.0)])["checks"]["health"]
    assert passed["consecutive_failures"] == 0 and passed["previous_status"] == "fail"


def test_trend_streak_breaks_on_a_report_without_the_check():
    history = [report_with(health=("fail", 1.0)), report_with(audit=("pass", 1.0))]
    trend = trends.compute_trend(history, [current("health", "fail", 1.0)])["checks"]["health"]
    assert trend["consecutive_failures"] == 1
    assert trend["previous_status"] == "fail"  # most recent report that has the check


def test_trend_percentiles_cover_the_last_20_runs_only():
    history = [report_with(export=("pass", 1000.0))] * 5 + [
        report_with(export=("pass", float(i))) for i in range(1, 20)
    ]
    trend = trends.compute_trend(history, [current("export", "pass", 20.0)])["checks"]["export"]
    assert trend["samples"] == 20
    assert trend["p50_ms"] == 10.5
    assert trend["p95_ms"] == pytest.approx(19.05, abs=0.1)


def test_trend_ignores_malformed_entries():
    history = [
        {
            "schema_version": "1.0",
            "started_at": "x",
            "checks": ["junk", {"name": 3}, {"name": "health"}],
        },
        report_with(health=("fail", "slow")),  # type: ignore[arg-type]
    ]
    trend = trends.compute_trend(history, [current("health", "fail", 5.0)])["checks"]["health"]
    assert trend["consecutive_failures"] == 2
    assert trend["samples"] == 1


# --------------------------------------------------------------------------
# File names, timestamps and reading earlier reports
# --------------------------------------------------------------------------


def test_report_filename_is_sortable_and_colon_free():
    a = datetime(2026, 11, 26, 7, 15, 30, 123456, tzinfo=UTC)
    b = datetime(2026, 11, 26, 7, 15, 30, 124000, tzinfo=UTC)
    c = datetime(2026, 11, 26, 7, 15, 31, 0, tzinfo=UTC)
    names = [reporting.report_filename(x) for x in (a, b, c)]
    assert names[0] == "report-20261126T071530.123Z.json"
    assert names == sorted(names) and len(set(names)) == 3
    assert all(":" not in n for n in names)
    assert units.format_rfc3339(a) == "2026-11-26T07:15:30.123Z"


def test_unique_report_path_never_overwrites(tmp_path):
    moment = datetime(2026, 11, 26, 7, 15, 30, 123000, tzinfo=UTC)
    first = reporting.unique_report_path(tmp_path, moment)
    first.write_text("{}")
    second = reporting.unique_report_path(tmp_path, moment)
    assert second.name == "report-20261126T071530.124Z.json"
    assert first.name < second.name


def test_atomic_write_text_replaces_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "report-x.json"
    reporting.atomic_write_text(target, "one")
    reporting.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["report-x.json"]


def test_load_previous_reports_skips_foreign_files(tmp_path):
    def write(name: str, content: str) -> None:
        (tmp_path / name).write_text(content)

    newer = report_with(health=("fail", 1.0)) | {"started_at": "2026-01-02T00:00:00.000Z"}
    older = report_with(health=("pass", 1.0)) | {"started_at": "2026-01-01T00:00:00.000Z"}
    write("report-20260102T000000.000Z.json", json.dumps(newer))
    write("report-20260101T000000.000Z.json", json.dumps(older))
    write("report-broken.json", "{")
    write("report-list.json", "[1, 2]")
    write(
        "report-other.json", json.dumps({"schema_version": "2.0", "started_at": "x", "checks": []})
    )
    (tmp_path / "report-binary.json").write_bytes(b"\xff\xfe{")  # not UTF-8
    write("unrelated.json", json.dumps(older))
    (tmp_path / "report-dir.json").mkdir()

    loaded = reporting.load_previous_reports(tmp_path)
    assert [r["started_at"] for r in loaded] == [older["started_at"], newer["started_at"]]
    assert reporting.load_previous_reports(tmp_path, limit=1) == [newer]
    assert reporting.load_previous_reports(tmp_path / "missing") == []


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


def args(*argv: str) -> argparse.Namespace:
    return cfgmod.build_parser().parse_args(list(argv))


def test_config_defaults():
    config = cfgmod.resolve_config(args(), {})
    assert config.base_url == "http://localhost:8080"
    assert config.threshold_ms == 500 and config.timeout_ms == 2000
    assert config.retries == 0
    assert config.run_timeout_ms == 2000 + 1000
    assert config.report_dir == Path(__file__).resolve().parents[2] / "monitoring"
    assert config.junit is None
    assert config.api_key == "key_DEF456"


def test_config_from_environment():
    env = {
        "MONITOR_BASE_URL": "https://api.example.test/prefix/",
        "MONITOR_THRESHOLD_MS": "250.5",
        "MONITOR_TIMEOUT_MS": "1000",
        "MONITOR_RETRIES": "2",
        "MONITOR_REPORT_DIR": "rel/reports",
        "MONITOR_JUNIT": "out/junit.xml",
        "MONITOR_API_KEY": KEY,
    }
    config = cfgmod.resolve_config(args(), env)
    assert config.base_url == "https://api.example.test/prefix/"
    assert config.threshold_ms == 250.5 and config.timeout_ms == 1000 and config.retries == 2
    assert config.run_timeout_ms == 1000 * 3 + 200 * 2 + 1000
    assert config.report_dir == Path("rel/reports") and config.junit == Path("out/junit.xml")
    assert config.api_key == KEY
    assert KEY not in repr(config)
    assert cfgmod.check_url(config.base_url, "/health") == "https://api.example.test/prefix/health"


def test_flags_win_over_environment():
    env = {
        "MONITOR_BASE_URL": "http://env:1",
        "MONITOR_RETRIES": "3",
        "MONITOR_THRESHOLD_MS": "abc",
    }
    config = cfgmod.resolve_config(
        args("--base-url", "http://flag:2", "--threshold-ms", "100"), env
    )
    assert config.base_url == "http://flag:2"
    assert config.threshold_ms == 100
    assert config.retries == 3


def test_empty_environment_values_count_as_unset():
    config = cfgmod.resolve_config(
        args(), {"MONITOR_BASE_URL": "", "MONITOR_RETRIES": "  ", "MONITOR_API_KEY": ""}
    )
    assert config.base_url == cfgmod.DEFAULT_BASE_URL and config.retries == 0
    assert config.api_key == "key_DEF456"


def test_there_is_no_key_flag():
    with pytest.raises(SystemExit):
        cfgmod.build_parser().parse_args(["--api-key", "x"])


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x",
        "not a url",
        "http://",
        "localhost:8080",
        "http://host:notaport",
        "http://host:70000",
        "http://host:0",
        "http://host/?q=1",
        "http://ho st",
    ],
)
def test_bad_base_urls(url):
    with pytest.raises(cfgmod.UsageError, match="--base-url"):
        cfgmod.resolve_config(args("--base-url", url), {})


@pytest.mark.parametrize(
    "url", ["http://localhost:8080", "https://example.test", "http://[::1]:80/x"]
)
def test_good_base_urls(url):
    assert cfgmod.resolve_config(args("--base-url", url), {}).base_url == url


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--threshold-ms", "abc"),
        ("--threshold-ms", "-1"),
        ("--threshold-ms", "0"),
        ("--threshold-ms", "nan"),
        ("--timeout-ms", "inf"),
        ("--run-timeout-ms", ""),
        ("--retries", "-1"),
        ("--retries", "1.5"),
        ("--retries", "11"),
    ],
)
def test_bad_numbers(flag, value):
    with pytest.raises(cfgmod.UsageError, match=flag):
        cfgmod.resolve_config(args(flag, value), {})


def test_bad_environment_number_names_the_variable():
    with pytest.raises(cfgmod.UsageError, match="MONITOR_TIMEOUT_MS"):
        cfgmod.resolve_config(args(), {"MONITOR_TIMEOUT_MS": "soon"})


# --------------------------------------------------------------------------
# main() usage errors, in process
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--base-url", "ftp://x"],
        ["--base-url", "not a url"],
        ["--threshold-ms", "abc"],
        ["--threshold-ms", "-5"],
        ["--bogus"],
        ["--quiet", "--json"],
        ["--api-key", KEY],
        [f"--api-key={KEY}"],
    ],
)
def test_main_usage_errors_exit_2(argv, capsys, monkeypatch):
    monkeypatch.setenv("MONITOR_API_KEY", KEY)
    assert cli.main(argv) == exit_codes.ExitCode.USAGE == 2
    captured = capsys.readouterr()
    assert "error:" in captured.err
    assert KEY not in captured.err and captured.out == ""


def test_main_rejects_bad_environment(capsys, monkeypatch):
    monkeypatch.setenv("MONITOR_THRESHOLD_MS", "fast")
    assert cli.main([]) == 2
    assert "MONITOR_THRESHOLD_MS" in capsys.readouterr().err


def test_main_help_exits_0(capsys):
    assert cli.main(["--help"]) == 0
    assert "MONITOR_API_KEY" in capsys.readouterr().out


def test_exit_codes_are_named():
    assert [int(c) for c in exit_codes.ExitCode] == [0, 1, 2, 3]


# --------------------------------------------------------------------------
# run_check / run_checks with a fake transport
# --------------------------------------------------------------------------


def config(**overrides) -> cfgmod.Config:
    base = {"base_url": "http://svc.test", "api_key": KEY, "report_dir": Path("unused")}
    return cfgmod.Config(**(base | overrides))


class FakeTransport:
    """Plays back observations (or exceptions to 'raise' as errors) in order."""

    def __init__(self, *outcomes) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, dict[str, str]]] = []

    def __call__(self, url: str, headers: dict[str, str], deadline: float) -> attempt.Observation:
        self.calls.append((url, headers))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            return attempt.Observation(elapsed_ms=1.0, error=outcome)
        return outcome


def run_check(name: str, transport: FakeTransport, cfg: cfgmod.Config) -> checks.CheckResult:
    start = time.perf_counter()
    return runner.run_check(
        SPECS[name], cfg, start, start + 60, perform=transport, sleep=lambda s: None
    )


def test_refused_then_works_passes_as_flaky():
    transport = FakeTransport(ConnectionRefusedError(111, "refused"), ok(b'{"data": []}'))
    result = run_check("export", transport, config(retries=2))
    assert result.passed and result.flaky
    data = result.to_dict()
    assert [a["status"] for a in data["attempts"]] == ["fail", "pass"]
    assert data["attempts"][0]["reasons"][0]["code"] == "connection_refused"
    assert data["attempts"][0]["error"].startswith("ConnectionRefusedError")
    assert data["reasons"] == [] and data["http_status"] == 200
    assert transport.calls[0][0] == "http://svc.test/api/export"
    assert transport.calls[0][1]["X-API-Key"] == KEY
    assert transport.calls[0][1]["Connection"] == "close"


def test_health_is_requested_without_the_key():
    transport = FakeTransport(ok(b"OK"))
    assert run_check("health", transport, config()).passed
    assert "X-API-Key" not in transport.calls[0][1]


def test_retries_are_exhausted():
    transport = FakeTransport(*[ConnectionResetError(104, "reset")] * 3)
    result = run_check("audit", transport, config(retries=2))
    assert not result.passed and not result.flaky
    assert len(result.attempts) == 3
    assert result.to_dict()["reasons"][0]["code"] == "connection_error"


def test_non_network_failures_are_not_retried():
    transport = FakeTransport(ok(b"{}", status=500), ok(b"{}"))
    result = run_check("audit", transport, config(retries=3))
    assert not result.passed and len(result.attempts) == 1


def test_no_retry_after_the_run_deadline():
    transport = FakeTransport(ConnectionRefusedError(), ok(b"OK"))
    start = time.perf_counter()
    result = runner.run_check(
        SPECS["health"],
        config(retries=3),
        start,
        start - 1,
        perform=transport,
        sleep=lambda s: None,
    )
    assert len(result.attempts) == 1


def test_run_checks_gives_up_on_a_stuck_check():
    """A transport that never returns must not hold the run past its deadline."""
    release = threading.Event()

    def stuck(url, headers, deadline):
        if url.endswith("/health"):
            return ok(b"OK")
        release.wait()  # ignores the deadline on purpose
        return ok(b"{}")

    start = time.monotonic()
    try:
        results, _, duration_ms = runner.run_checks(config(run_timeout_ms=300), perform=stuck)
    finally:
        release.set()
    assert time.monotonic() - start < 1.5
    by_name = {r.name: r.to_dict() for r in results}
    assert by_name["health"]["status"] == "pass"
    for name in ("export", "audit"):
        (reason,) = by_name[name]["reasons"]
        assert reason["code"] == "run_deadline" and reason["limit_ms"] == 300
        assert by_name[name]["attempts"][-1]["attempt"] == 1


# --------------------------------------------------------------------------
# Report building, console and JUnit
# --------------------------------------------------------------------------


def sample_results() -> list[checks.CheckResult]:
    cfg = config(retries=1)
    return [
        run_check("health", FakeTransport(ok(b"OK", total=20.0)), cfg),
        run_check("export", FakeTransport(TimeoutError(), ok(b'{"data": []}', total=30.0)), cfg),
        run_check("audit", FakeTransport(ok(b"{}", status=503, phrase=KEY)), cfg),
    ]


@freeze_time("2026-11-26 07:15:30.123")
def test_build_report_is_schema_valid_and_redacted(validator):
    now = datetime.now(UTC)
    report = reporting.build_report(
        config(retries=1),
        sample_results(),
        run_id="0b6c3c9e-7c35-4c8e-9a55-0e6f1f7a6d10",
        started_at=now,
        finished_at=now,
        duration_ms=45.67,
        previous_reports=[report_with(audit=("fail", 3.0))],
    )
    errors = [e.message for e in validator.iter_errors(report)]
    assert not errors, errors
    assert report["started_at"] == "2026-11-26T07:15:30.123Z"
    assert report["status"] == "fail"
    assert report["summary"] == {"total": 3, "passed": 2, "failed": 1, "flaky": 1}
    assert report["config"]["api_key"] == "[REDACTED]"
    assert report["trend"]["checks"]["audit"]["consecutive_failures"] == 2
    assert KEY not in json.dumps(report)
    assert reporting.exit_code_for(report) == exit_codes.ExitCode.CHECK_FAILED

    text = reporting.format_console(report, Path("/r/report.json"))
    lines = text.splitlines()
    assert lines[1].startswith("PASS  health")
    assert lines[2].startswith("PASS  export") and "flaky" in lines[2]
    assert lines[3].startswith("FAIL  audit") and "http_status" in lines[3]
    assert "Overall: FAIL (2/3 passed, 1 failed, 1 flaky)" in text
    assert lines[-1] == "Report: /r/report.json"

    xml = ET.tostring(junit.build_junit(report), encoding="unicode")
    suite = ET.fromstring(xml).find("testsuite")  # noqa: S314 - our own output
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    failures = [c for c in suite.findall("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["audit"]
    assert failures[0].find("failure").get("type") == "http_status"


def test_schema_rejects_drift(validator):
    now = datetime.now(UTC)
    report = reporting.build_report(
        config(),
        sample_results(),
        run_id=str(uuid.uuid4()),
        started_at=now,
        finished_at=now,
        duration_ms=1,
    )
    assert validator.is_valid(report)
    assert not validator.is_valid(report | {"extra": 1})
    leaked = json.loads(json.dumps(report))
    leaked["config"]["api_key"] = KEY
    assert not validator.is_valid(leaked)
    bad_code = json.loads(json.dumps(report))
    bad_code["checks"][2]["reasons"][0]["code"] = "mystery"
    assert not validator.is_valid(bad_code)


def test_display_url_drops_credentials():
    assert cfgmod.display_url("http://user:pw@host:1/x") == "http://host:1/x"
    assert cfgmod.display_url("http://host/x") == "http://host/x"
