"""docs/openapi.yaml is the contract: it matches the app's routes and the code's bounds, it is
served at /openapi.json without a key, and the validator that checks every test-client response
against it (tests/openapi_check.py) does refuse a response that breaks it."""

from __future__ import annotations

import json

import openapi_check
import pytest
import yaml
from openapi_spec_validator import validate
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from assertions import DEF, assert_error
from service import schemas
from service.errors import ErrorCode

SPEC = yaml.safe_load(openapi_check.SPEC_PATH.read_text(encoding="utf-8"))
# Flask adds HEAD to every GET route and OPTIONS to every route: HEAD is GET without a body,
# OPTIONS is documented on the /api routes, where clients (browsers) send it.
IMPLIED = {"HEAD", "OPTIONS"}


def app_operations(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - IMPLIED:
            found.add((path, method.lower()))
    return found


def spec_operations() -> set[tuple[str, str]]:
    verbs = {"get", "post", "put", "patch", "delete"}
    return {(path, verb) for path, item in SPEC["paths"].items() for verb in item if verb in verbs}


def test_the_description_is_valid_openapi_31():
    assert SPEC["openapi"].startswith("3.1")
    validate(SPEC)


def test_every_route_is_described_and_every_description_is_a_route(reader):
    app = reader.application
    missing = app_operations(app) - spec_operations()
    extra = spec_operations() - app_operations(app)
    assert not missing, f"routes not in docs/openapi.yaml: {sorted(missing)}"
    assert not extra, f"docs/openapi.yaml describes routes the app lacks: {sorted(extra)}"


def test_the_error_codes_are_the_codes_of_service_errors():
    assert SPEC["components"]["schemas"]["ErrorCode"]["enum"] == [c.value for c in ErrorCode]


def parameter(path: str, name: str) -> dict:
    params = SPEC["paths"][path]["get"]["parameters"]
    shared = SPEC["components"]["parameters"]
    for param in params:
        param = shared[param["$ref"].rsplit("/", 1)[1]] if "$ref" in param else param
        if param["name"] == name:
            return param["schema"]
    raise KeyError(name)


def test_the_described_bounds_are_the_codes_bounds():
    export_limit = parameter("/api/export", "limit")
    assert (export_limit["minimum"], export_limit["maximum"]) == (1, schemas.MAX_STREAM)
    audit_limit = parameter("/api/audit", "limit")
    assert (audit_limit["minimum"], audit_limit["maximum"]) == (1, schemas.MAX_PAGE)
    assert audit_limit["default"] == schemas.DEFAULT_PAGE
    assert parameter("/api/export", "format")["enum"] == ["json", "ndjson"]
    status = parameter("/api/audit", "status")
    assert (status["minimum"], status["maximum"]) == (100, 599)
    endpoint = parameter("/api/audit", "endpoint")
    assert (endpoint["minLength"], endpoint["maxLength"]) == (1, 255)
    article = SPEC["components"]["schemas"]["ArticleIn"]["properties"]
    assert article["title"]["maxLength"] == 300 and article["summary"]["maxLength"] == 20_000
    assert article["url"]["maxLength"] == 700
    assert article["language"]["pattern"] == schemas._LANGUAGE.pattern


def test_openapi_json_is_the_yaml_served_without_a_key(reader, shared_sql):
    response = reader.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json.loads(response.get_data()) == SPEC
    assert "X-RateLimit-Limit" not in response.headers  # not metered


def fake_response(status: int, body: bytes, headers: dict, path: str = "/api/usage"):
    """A test-client response as the validator sees one, built by hand."""
    from werkzeug.test import TestResponse

    request = Request(EnvironBuilder(method="GET", path=path, headers=DEF).get_environ())
    return TestResponse(body, status, headers, request=request)


def test_the_validator_refuses_a_response_that_breaks_the_description(reader):
    good = reader.get("/api/usage", headers=DEF)  # validated on the way; it conforms
    headers = {k: v for k, v in good.headers.items()}
    body = json.loads(good.get_data())
    openapi_check.check_response(fake_response(200, json.dumps(body).encode(), headers))

    body_extra = json.dumps({**body, "full_key": "x"}).encode()
    with pytest.raises(openapi_check.SpecViolation):
        openapi_check.check_response(fake_response(200, body_extra, headers))
    no_request_id = {k: v for k, v in headers.items() if k != "X-Request-ID"}
    with pytest.raises(openapi_check.SpecViolation):
        openapi_check.check_response(fake_response(200, good.get_data(), no_request_id))
    with pytest.raises(openapi_check.SpecViolation):  # a status the operation does not have
        openapi_check.check_response(fake_response(418, b"{}", headers))
    bad_error = json.dumps({"error": {"code": "no_such_code", "message": "m"}}).encode()
    with pytest.raises(openapi_check.SpecViolation):
        openapi_check.check_response(fake_response(404, bad_error, headers, path="/nowhere"))


def test_an_unknown_path_still_answers_the_documented_error(reader):
    assert_error(reader.get("/nowhere"), 404, "not_found")
