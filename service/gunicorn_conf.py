"""gunicorn configuration used by scripts/serve (and the Dockerfile).

Sync workers (one request at a time per worker, one database connection each). On SIGTERM the
master stops accepting, lets each worker finish its request within `graceful_timeout`, and each
worker flushes its audit buffer in `worker_exit` before it goes.

The settings (the app's and gunicorn's, from the environment and `.env`) are validated here, in
the master, before any worker starts: a bad one stops the boot once, with one line per problem.
"""

import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

# Prometheus multi-process mode: every worker counts into files in one directory per instance,
# which /metrics sums. It must be set before anything imports prometheus_client (importing
# `service` does), so it comes first. A directory the operator gives is emptied of a previous
# run's files; otherwise a fresh one is made and removed when the master exits.
_metrics_dir_given = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if _metrics_dir_given:
    _metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    _metrics_dir.mkdir(parents=True, exist_ok=True)
    for _stale in _metrics_dir.glob("*.db"):
        _stale.unlink()
else:
    _metrics_dir = Path(tempfile.mkdtemp(prefix="wme-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)

from service.config import load_or_exit  # noqa: E402 - after PROMETHEUS_MULTIPROC_DIR

service_settings = load_or_exit()

bind = f"{service_settings.BIND_HOST}:{service_settings.PORT}"
workers = service_settings.WEB_CONCURRENCY or multiprocessing.cpu_count() * 2 + 1
# gunicorn's sync worker, but its answer to a malformed request echoes none of it.
worker_class = "service.gunicorn_worker.MaskingSyncWorker"
timeout = service_settings.GUNICORN_TIMEOUT
graceful_timeout = service_settings.GUNICORN_GRACEFUL_TIMEOUT
keepalive = 2
# Header limits: oversized or too many headers are refused before the app sees them.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Our own structured request log replaces gunicorn's access log (this logger writes none).
accesslog = None
logger_class = "service.gunicorn_worker.RequestLogOnlyLogger"
errorlog = "-"
# Never "debug": at that level gunicorn logs every request line, query string included, and a
# client may have pasted a key there. LOG_LEVEL governs the app's own logs only.
loglevel = "info"
# gunicorn's own lines (warnings about malformed requests, tracebacks quoting a request line) go
# through a formatter that cuts anything shaped like one of our keys to its 6-character prefix.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": []},  # the app adds its own JSON handler
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["masked"], "propagate": False},
    },
    "handlers": {
        "masked": {
            "class": "logging.StreamHandler",
            "formatter": "masked",
            "stream": "ext://sys.stderr",
        },
    },
    "formatters": {
        "masked": {
            "()": "service.logging_setup.KeyMaskingFormatter",
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
        },
    },
}
# gunicorn 27's control socket is one fixed path per user: several instances on one host would
# fight over it, and nothing here uses it.
control_socket_disable = True
# The app is imported in each worker, after fork: no connection can be shared by accident.
preload_app = False


def worker_exit(server, worker):
    from service.audit import close_all_writers

    close_all_writers()


def child_exit(server, worker):
    # A dead worker's live gauges stop counting; its counters stay in the sums.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if not _metrics_dir_given:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
