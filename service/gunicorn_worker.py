"""gunicorn's sync worker, answering a malformed request without echoing any of it, and its
logger without the access log.

gunicorn's own answer to a request it cannot parse (a bad request line, a header without a colon,
an unknown method, a bad chunk size) is an HTML page that quotes the offending text, and its log
line quotes it too: a key pasted into a URL or a header would come back to the client and go to
the log. This worker keeps gunicorn's decision (which status) and answers in the API's JSON error
shape, naming only the kind of error. Its log lines go through the masking formatter of
gunicorn_conf.py like every other gunicorn line.
"""

from __future__ import annotations

import json
from ssl import SSLError

from gunicorn import glogging, util
from gunicorn.http import errors as http_errors
from gunicorn.workers.sync import SyncWorker

# Statuses gunicorn gives its client errors; any other parse error is a plain 400.
_STATUS = (
    (http_errors.LimitRequestLine, 414, "URI Too Long"),
    (http_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large"),
    (http_errors.ExpectationFailed, 417, "Expectation Failed"),
    (http_errors.UnsupportedTransferCoding, 501, "Not Implemented"),
    (http_errors.ForbiddenProxyRequest, 403, "Forbidden"),
)
# Errors in what the application sent are the service's own (gunicorn answers 500 for them).
_APPLICATION_ERRORS = (
    http_errors.InvalidResponseHeader,
    http_errors.InvalidResponseHeaderName,
    http_errors.ConfigurationProblem,
)


def client_error_status(exc: BaseException) -> tuple[int, str] | None:
    """The status of a client's malformed request, or None for an error of the service's."""
    if isinstance(exc, _APPLICATION_ERRORS):
        return None
    if isinstance(exc, SSLError):
        return 403, "Forbidden"
    if not isinstance(exc, http_errors.ParseException):
        return None
    for kind, status, reason in _STATUS:
        if isinstance(exc, kind):
            return status, reason
    return 400, "Bad Request"


def error_page(status: int, reason: str, kind: str) -> bytes:
    body = json.dumps(
        {"error": {"code": "bad_request", "message": f"The request is not valid HTTP ({kind})."}},
        separators=(",", ":"),
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    return head + body


class MaskingSyncWorker(SyncWorker):
    def handle_error(self, req, client, addr, exc):
        decided = client_error_status(exc)
        if decided is None:  # the service's own error: gunicorn's 500 page holds no request text
            return super().handle_error(req, client, addr, exc)
        status, reason = decided
        kind = type(exc).__name__
        ip = addr[0] if addr else ""
        self.log.warning("Invalid request from ip=%s: %s (request text not logged)", ip, kind)
        try:
            util.write_nonblock(client, error_page(status, reason, kind))
        except Exception:
            self.log.debug("Failed to send error message.")


class RequestLogOnlyLogger(glogging.Logger):
    """gunicorn's logger, minus the access log: the app writes the one line per request
    (`service.request`, service/audit.py). gunicorn builds and writes an access line whenever a
    `logconfig_dict` is given, `accesslog = None` notwithstanding: a second line per request,
    and about a tenth of a refusal's CPU."""

    def access(self, resp, req, environ, request_time) -> None:
        return None
