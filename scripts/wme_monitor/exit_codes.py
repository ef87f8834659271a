"""The monitor's exit statuses: part of its interface (cron and CI read them), so they are named,
like httpie's ExitStatus."""

import enum


class ExitCode(enum.IntEnum):
    OK = 0  # every check passed (possibly after retries)
    CHECK_FAILED = 1  # at least one check failed
    USAGE = 2  # bad flag, value or environment variable
    OUTPUT_ERROR = 3  # the report, JUnit or Prometheus file could not be written
