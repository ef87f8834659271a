"""gunicorn configuration used by scripts/serve (and the Dockerfile).

Sync workers (one request at a time per worker, one database connection each). On SIGTERM the
master stops accepting, lets each worker finish its request within `graceful_timeout`, and each
worker flushes its audit buffer in `worker_exit` before it goes.

The settings (the app's and gunicorn's, from the environment and `.env`) are validated here, in
the master, before any worker starts: a bad one stops the boot once, with one line per problem.
"""

import multiprocessing

from service.config import load_or_exit

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
# Our own structured request log replaces gunicorn's access log.
accesslog = None
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
        "gunicorn.access": {"level": "INFO", "handlers": ["masked"], "propagate": False},
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
