"""Configuration: flags, MONITOR_* variables and the project's .env (flags win, then the
environment, then .env, then the defaults)."""

import argparse
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values

from .exit_codes import ExitCode
from .redact import REDACTED, scrub

# The project is the parent of scripts/, resolved from this file so a cron job works from any
# working directory: its monitoring/ holds the reports, its .env the settings (as for the service).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REPORT_DIR = PROJECT_ROOT / "monitoring"
DOTENV_PATH = PROJECT_ROOT / ".env"

ENV_PREFIX = "MONITOR_"
DEFAULT_BASE_URL = "http://localhost:8080"
DEFAULT_THRESHOLD_MS = 500
DEFAULT_TIMEOUT_MS = 2000
DEFAULT_RETRIES = 0
DEFAULT_API_KEY = "key_DEF456"
MAX_RETRIES = 10
RETRY_DELAY_S = 0.2  # short pause so a restarting server gets a moment
RUN_DEADLINE_SLACK_MS = 1000  # added to timeout x attempts for the default run deadline


class UsageError(Exception):
    """A flag or MONITOR_* variable has a bad value (exit code 2)."""


def load_environment(
    environ: Mapping[str, str], dotenv_path: Path = DOTENV_PATH
) -> tuple[dict[str, str], str | None]:
    """The MONITOR_* variables: those of the project's .env (read like the service reads it, with
    python-dotenv), overridden by the environment's, even empty ones. Returns them and a warning
    when the .env exists but cannot be read."""
    merged: dict[str, str] = {}
    warning = None
    if dotenv_path.is_file():
        try:
            values = dotenv_values(dotenv_path)
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            warning = f"warning: {dotenv_path} not read ({reason}); using the environment only"
        else:
            merged.update(
                {k: v for k, v in values.items() if k.startswith(ENV_PREFIX) and v is not None}
            )
    merged.update({k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)})
    return merged, warning


def api_key_from(env: Mapping[str, str]) -> str:
    return env.get("MONITOR_API_KEY") or DEFAULT_API_KEY


def display_url(url: str) -> str:
    """The URL without user:password@, for output."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def check_url(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


@dataclass(frozen=True)
class Config:
    base_url: str = DEFAULT_BASE_URL
    threshold_ms: float = DEFAULT_THRESHOLD_MS
    timeout_ms: float = DEFAULT_TIMEOUT_MS
    run_timeout_ms: float = DEFAULT_TIMEOUT_MS + RUN_DEADLINE_SLACK_MS
    retries: int = DEFAULT_RETRIES
    report_dir: Path = DEFAULT_REPORT_DIR
    junit: Path | None = None
    prometheus_file: Path | None = None
    api_key: str = field(default=DEFAULT_API_KEY, repr=False)  # keep it out of reprs
    quiet: bool = False
    json_output: bool = False

    def to_report(self) -> dict[str, Any]:
        return {
            "base_url": display_url(self.base_url),
            "threshold_ms": self.threshold_ms,
            "timeout_ms": self.timeout_ms,
            "run_timeout_ms": self.run_timeout_ms,
            "retries": self.retries,
            "report_dir": str(self.report_dir),
            "junit": None if self.junit is None else str(self.junit),
            "prometheus_file": None if self.prometheus_file is None else str(self.prometheus_file),
            "api_key": REDACTED,
        }


def parse_base_url(value: str) -> str:
    value = value.strip()
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise UsageError(f"{value!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{value!r} is not an http(s) URL like http://localhost:8080")
    if any(c.isspace() for c in value):
        raise UsageError(f"{value!r} contains whitespace")
    if parts.query or parts.fragment:
        raise UsageError(f"{value!r} must not have a query or fragment")
    if port == 0:
        raise UsageError(f"{value!r} has port 0")
    return value


def parse_ms(value: str, *, allow_zero: bool = False) -> int | float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{value!r} is not a number of milliseconds") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise UsageError(f"{value!r} must be a positive number of milliseconds")
    return int(number) if number.is_integer() else number


def parse_retries(value: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{value!r} is not a whole number") from None
    if not 0 <= number <= MAX_RETRIES:
        raise UsageError(f"{value!r} must be between 0 and {MAX_RETRIES}")
    return number


def parse_path(value: str) -> Path:
    # Relative paths given by flag or variable are relative to the cwd, as usual.
    return Path(value).expanduser()


def default_run_timeout_ms(timeout_ms: float, retries: int) -> int | float:
    total = timeout_ms * (retries + 1) + RETRY_DELAY_S * 1000 * retries + RUN_DEADLINE_SLACK_MS
    return int(total) if float(total).is_integer() else round(total, 3)


def _pick(flag_value: str | None, env: Mapping[str, str], name: str) -> tuple[str | None, str]:
    """Flag beats environment; an empty variable counts as unset."""
    if flag_value is not None:
        return flag_value, "--" + name.lower().replace("_", "-")
    env_value = env.get(ENV_PREFIX + name)
    if env_value is not None and env_value.strip() != "":
        return env_value, ENV_PREFIX + name
    return None, ""


def resolve_config(args: argparse.Namespace, env: Mapping[str, str]) -> Config:
    """Merge flags and MONITOR_* variables (flags win) and validate them."""

    def get(name: str, parse: Callable[[str], Any], default: Any) -> Any:
        raw, source = _pick(getattr(args, name.lower()), env, name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except UsageError as exc:
            raise UsageError(f"{source}: {exc}") from None

    base_url = get("BASE_URL", parse_base_url, DEFAULT_BASE_URL)
    threshold_ms = get("THRESHOLD_MS", parse_ms, DEFAULT_THRESHOLD_MS)
    timeout_ms = get("TIMEOUT_MS", parse_ms, DEFAULT_TIMEOUT_MS)
    retries = get("RETRIES", parse_retries, DEFAULT_RETRIES)
    run_timeout_ms = get("RUN_TIMEOUT_MS", parse_ms, None)
    if run_timeout_ms is None:
        run_timeout_ms = default_run_timeout_ms(timeout_ms, retries)
    return Config(
        base_url=base_url,
        threshold_ms=threshold_ms,
        timeout_ms=timeout_ms,
        run_timeout_ms=run_timeout_ms,
        retries=retries,
        report_dir=get("REPORT_DIR", parse_path, DEFAULT_REPORT_DIR),
        junit=get("JUNIT", parse_path, None),
        prometheus_file=get("PROMETHEUS_FILE", parse_path, None),
        api_key=api_key_from(env),
        quiet=bool(getattr(args, "quiet", False)),
        json_output=bool(getattr(args, "json_output", False)),
    )


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, secret: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.secret = secret

    def error(self, message: str) -> NoReturn:
        # argparse echoes unknown arguments; scrub in case the key was typed.
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {scrub(message, self.secret)}\n")


def build_parser(secret: str = "") -> argparse.ArgumentParser:
    parser = _Parser(
        secret=secret,
        prog="service_monitor.py",
        allow_abbrev=False,
        description="Health checks for the export API with latency, JSON report and exit codes.",
        epilog=(
            "Each option can also be set with MONITOR_<NAME> (e.g. MONITOR_BASE_URL), in the "
            "environment or in the project's .env; flags win, then the environment, then .env. "
            "The API key is read only from MONITOR_API_KEY. "
            "Exit codes: 0 all checks passed, 1 a check failed, 2 usage error, "
            "3 report/JUnit/Prometheus file not written. Manual: docs/monitor.md."
        ),
    )
    parser.add_argument(
        "--base-url", metavar="URL", help=f"service base URL (default {DEFAULT_BASE_URL})"
    )
    parser.add_argument(
        "--threshold-ms",
        metavar="MS",
        help=f"max total latency per check (default {DEFAULT_THRESHOLD_MS})",
    )
    parser.add_argument(
        "--timeout-ms",
        metavar="MS",
        help=f"hard deadline per attempt (default {DEFAULT_TIMEOUT_MS})",
    )
    parser.add_argument(
        "--run-timeout-ms",
        metavar="MS",
        help="deadline for the whole run (default timeout x (retries+1) + retry pauses + 1000)",
    )
    parser.add_argument(
        "--retries",
        metavar="N",
        help="retries after network errors and timeouts (default 0, max 10)",
    )
    parser.add_argument(
        "--report-dir",
        metavar="DIR",
        help="where report-*.json go (default: monitoring/ in the repo root)",
    )
    parser.add_argument("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    parser.add_argument(
        "--prometheus-file",
        metavar="FILE",
        help="also write node_exporter textfile metrics to FILE (e.g. .../service_monitor.prom)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--quiet", action="store_true", help="print nothing when every check passes"
    )
    output.add_argument(
        "--json",
        dest="json_output",
        action="store_true",
        help="print the report JSON instead of the summary",
    )
    return parser
