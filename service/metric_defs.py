"""The service's Prometheus metric families, created when this module is first imported.

Only `service.metrics` imports it, on first use: in a gunicorn worker that is after the master
has set PROMETHEUS_MULTIPROC_DIR, which prometheus_client reads when it is imported, so every
worker counts into the shared directory however the service was started (`python -m
service.serve` imports the `service` package before gunicorn's configuration runs).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PREFIX = "wme"
AUTH_FAILURE_CODES = frozenset(
    {
        "missing_key",
        "invalid_key",
        "key_expired",
        "key_disabled",
        "insufficient_scope",
        "too_many_failed_authentications",
    }
)

REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time from the request's arrival in the app to its response (streamed bodies excluded).",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
QUOTA_DECISIONS = Counter(
    f"{PREFIX}_quota_decisions",
    "Metered requests admitted or refused (429) by the daily quota.",
    ["decision"],
)
AUTH_FAILURES = Counter(
    f"{PREFIX}_auth_failures",
    "Requests refused for their key (401, 403), by error code.",
    ["code"],
)
AUDIT_ROWS = Counter(
    f"{PREFIX}_audit_rows",
    "Audit rows by what happened to them: buffered, written, retried (kept after a failed "
    "write), lost (dropped: buffer full while the database was down, or left at exit).",
    ["outcome"],
)
DATABASE_ERRORS = Counter(
    f"{PREFIX}_database_errors",
    "Database errors by kind: unavailable (connection refused or lost), conflict (deadlock, "
    "lock wait timeout or certification conflict, retried), other (a query the database "
    "refused: a bug or a missing privilege).",
    ["kind"],
)
MIGRATION_VERSION = Gauge(
    f"{PREFIX}_migration_version",
    "Highest applied schema migration, read at scrape time (absent while the database is down).",
    multiprocess_mode="max",
)
MIGRATION_LATEST = Gauge(
    f"{PREFIX}_migration_latest_version",
    "Highest migration this build ships; above wme_migration_version means migrations pending.",
    multiprocess_mode="max",
)

# Every label value each metric can take is created at import, so the series exist (at 0) from
# the first scrape on: an alert on `increase(...)` needs the series before its first event.
for _decision in ("admitted", "refused"):
    QUOTA_DECISIONS.labels(_decision)
for _outcome in ("buffered", "written", "retried", "lost"):
    AUDIT_ROWS.labels(_outcome)
for _kind in ("unavailable", "conflict", "other"):
    DATABASE_ERRORS.labels(_kind)
for _code in AUTH_FAILURE_CODES:
    AUTH_FAILURES.labels(_code)
