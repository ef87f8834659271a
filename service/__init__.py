"""Wikimedia enterprise export API: the Flask application factory.

`create_app()` is a short list of named steps; `flask --app service ...` and gunicorn
(`service.wsgi:app`) both go through it. Nothing here opens the database: connections are made
per worker on first use, after gunicorn has forked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from service import audit, metrics
from service.auth_throttle import FailedAuthLimiter
from service.blueprints import api, health, meta
from service.cli import register_commands
from service.config import Settings, parse_networks
from service.db import Database
from service.errors import register_error_handlers
from service.key_cache import KeyCache
from service.keys import SAMPLE_KEY_HASH_SECRET
from service.logging_setup import configure_logging


class SyncFlask(Flask):
    """Flask for an app with no async view or hook: Flask asks, on every call of every view and
    hook (seven per request), whether it is a coroutine function; none is, so none is wrapped."""

    def ensure_sync(self, func):
        return func


def create_app(config: Mapping[str, object] | None = None) -> Flask:
    settings = Settings.load(config)
    app = SyncFlask(__name__)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.MAX_BODY_BYTES
    app.json.sort_keys = False  # error bodies read code, message, then details
    configure_logging(settings.LOG_LEVEL.upper())
    warn_about_sample_secret(settings)
    register_extensions(app, settings)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    configure_proxy(app, settings)
    return app


def warn_about_sample_secret(settings: Settings) -> None:
    if SAMPLE_KEY_HASH_SECRET in (settings.KEY_HASH_SECRET, settings.KEY_HASH_SECRET_PREVIOUS):
        logging.getLogger("service").warning(
            "KEY_HASH_SECRET is the public sample secret: for local trials of the sample data "
            "only, never in production",
            extra={"event": "sample_secret"},
        )


def register_extensions(app: Flask, settings: Settings) -> None:
    app.extensions["db"] = Database(settings)
    app.extensions["auth_limiter"] = FailedAuthLimiter(settings.AUTH_FAILURES_PER_MINUTE)
    app.extensions["key_cache"] = KeyCache(settings.KEY_CACHE_SECONDS)
    audit.init_app(app)
    metrics.init_app(app)
    app.extensions["metrics_allow"] = parse_networks(settings.METRICS_ALLOW)


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(meta.bp)


def configure_proxy(app: Flask, settings: Settings) -> None:
    # Trust X-Forwarded-* only from the configured number of proxies, never blindly.
    hops = settings.TRUSTED_PROXIES
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
