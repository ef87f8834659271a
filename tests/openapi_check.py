"""Hold every test-client response to docs/openapi.yaml, with openapi-core.

`make_app()` (testkit) gives its apps `ValidatingClient` as their test client: each response a
test receives is validated against the operation of its path and method (status, headers, body)
before the test sees it, and a response the description does not allow fails the test with
openapi-core's reason. A request for a path or method the description does not have (a test of
404 or 405) has no operation to check against: its body must still be the documented error shape.

The description is parsed once per process; a validation costs about a millisecond.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import yaml
from flask.testing import FlaskClient
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.validation.response.validators import V31ResponseHeadersValidator
from openapi_schema_validator import OAS31Validator
from werkzeug.datastructures import Headers

SPEC_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"


@functools.cache
def openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_PATH))


@functools.cache
def stream_validator() -> V31ResponseHeadersValidator:
    """Status and headers only, for a body the test is still streaming."""
    return V31ResponseHeadersValidator(openapi().spec)


@functools.cache
def error_validator() -> OAS31Validator:
    spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    schema = {**spec["components"]["schemas"]["Error"], "components": spec["components"]}
    return OAS31Validator(schema)


class _Response:
    """The response as openapi-core reads it. An NDJSON stream is not read: the test may still
    be consuming it chunk by chunk (or checking that it is produced page by page); its status
    and headers are checked."""

    def __init__(self, response):
        self.status_code = response.status_code
        self.content_type = str(response.mimetype)
        self.headers = Headers(response.headers)
        self.data = None if _is_stream(response) else response.get_data()


def _is_stream(response) -> bool:
    return response.mimetype == "application/x-ndjson"


class _Request(WerkzeugOpenAPIRequest):
    """The request, for finding its operation: the body was read by the app already (and a
    response is validated without it)."""

    @property
    def body(self) -> bytes | None:
        return None


class SpecViolation(AssertionError):
    pass


def check_response(response) -> None:
    """Raise SpecViolation when `response` (a test-client response) breaks the description."""
    request = _Request(response.request)
    try:
        if _is_stream(response):
            stream_validator().validate(request, _Response(response))
        else:
            openapi().validate_response(request, _Response(response))
    except (PathNotFound, OperationNotFound):
        _check_unrouted(response)
    except Exception as exc:  # openapi-core's validation errors, with their causes
        cause = getattr(exc, "__cause__", None)
        detail = f"{exc}" + (f" ({cause})" if cause else "")
        raise SpecViolation(
            f"{response.request.method} {response.request.path} -> {response.status_code}: "
            f"response breaks docs/openapi.yaml: {detail}\nbody: {response.get_data()[:500]!r}"
        ) from None


def _check_unrouted(response) -> None:
    """No operation in the description: only a documented error may answer (404, 405)."""
    request = response.request
    if response.status_code not in (404, 405) and not _is_preflight_or_head(request):
        raise SpecViolation(
            f"{request.method} {request.path} answered {response.status_code}, but "
            "docs/openapi.yaml has no such operation"
        )
    if response.mimetype == "application/json":
        errors = list(error_validator().iter_errors(json.loads(response.get_data())))
        if errors:
            problem = errors[0].message
            raise SpecViolation(f"{request.method} {request.path}: not the error shape: {problem}")


def _is_preflight_or_head(request) -> bool:
    # HEAD is GET without a body (Flask adds it to every GET route); OPTIONS on a route outside
    # /api answers the same empty Allow as the documented ones.
    return request.method in ("HEAD", "OPTIONS")


class ValidatingClient(FlaskClient):
    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        check_response(response)
        return response
