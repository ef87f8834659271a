"""main(): configuration, the run, then every output (report, JUnit, Prometheus, console)."""

import json
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from . import config as configuration
from .config import UsageError, api_key_from, build_parser, load_environment, resolve_config
from .exit_codes import ExitCode
from .junit import junit_text
from .prometheus import render as prometheus_text
from .redact import scrub, scrub_output, scrub_tree
from .report import (
    atomic_write_text,
    build_report,
    exit_code_for,
    format_console,
    load_previous_reports,
    unique_report_path,
)
from .runner import run_checks
from .units import utc_now

_KEY_FLAGS = ("--api-key", "--key")


def _write(path: Path, text: str, what: str) -> bool:
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        print(f"error: could not write {what} {path}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def main(argv: Sequence[str] | None = None, *, dotenv_path: Path | None = None) -> int:
    env, warning = load_environment(os.environ, dotenv_path or configuration.DOTENV_PATH)
    argv = list(sys.argv[1:] if argv is None else argv)
    secret = api_key_from(env)
    parser = build_parser(secret)
    if any(a.split("=", 1)[0] in _KEY_FLAGS for a in argv):
        parser.print_usage(sys.stderr)
        print(
            f"{parser.prog}: error: the API key is read only from MONITOR_API_KEY, never a flag",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if warning:
        print(scrub(warning, secret), file=sys.stderr)
    try:
        config = resolve_config(args, env)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {scrub(str(exc), secret)}", file=sys.stderr)
        return ExitCode.USAGE

    results, started_at, duration_ms = run_checks(config)
    report = build_report(
        config,
        results,
        run_id=str(uuid.uuid4()),
        started_at=started_at,
        finished_at=utc_now(),
        duration_ms=duration_ms,
        previous_reports=load_previous_reports(config.report_dir),
    )
    # Whatever a server managed to slip past the targeted scrubbing goes here, once, before any
    # output is made from the report.
    report = scrub_tree(report, secret)
    code = exit_code_for(report)

    report_path: Path | None = unique_report_path(config.report_dir, started_at)
    if not _write(report_path, json.dumps(report, indent=2) + "\n", "report"):
        report_path = None
        code = ExitCode.OUTPUT_ERROR
    if config.junit is not None and not _write(
        config.junit, scrub_output(junit_text(report), secret), "JUnit file"
    ):
        code = ExitCode.OUTPUT_ERROR
    if config.prometheus_file is not None and not _write(
        config.prometheus_file,
        scrub_output(prometheus_text(report, started_at), secret),
        "Prometheus file",
    ):
        code = ExitCode.OUTPUT_ERROR

    if config.json_output:
        print(json.dumps(report, indent=2))
    elif not (config.quiet and code == ExitCode.OK):
        print(scrub_output(format_console(report, report_path), secret))
    sys.stdout.flush()
    return code
