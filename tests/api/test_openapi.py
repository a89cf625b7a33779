"""The OpenAPI document: valid, complete, and every documented operation answers as documented."""
from __future__ import annotations

import io

from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from app.api.openapi import document

from tests.fixtures.api import BAD_ROWS, api_options, csv_bytes

DOC_URI = "urn:renkei-openapi"


def response_validator(doc: dict, schema: dict) -> OAS31Validator:
    """A validator for one response schema whose $refs ("#/components/...") point into the document."""
    holder = {**doc, "$defs": {"answer": schema}}
    registry = Registry().with_resource(DOC_URI, Resource.from_contents(holder, default_specification=DRAFT202012))
    return OAS31Validator({"$ref": f"{DOC_URI}#/$defs/answer"}, registry=registry)


def resolve(doc: dict, node: dict) -> dict:
    """Follow a local $ref of a response object."""
    while "$ref" in node:
        target = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def check_answer(doc: dict, path: str, method: str, response) -> None:
    """The status is documented for the operation and the body validates against its schema."""
    operation = doc["paths"][path][method]
    status = str(response.status_code)
    assert status in operation["responses"], (
        f"{method.upper()} {path} answered {status}, documented: {sorted(operation['responses'])}")
    documented = resolve(doc, operation["responses"][status])
    assert response.mimetype in documented["content"]
    schema = documented["content"][response.mimetype]["schema"]
    try:
        body = response.get_json() if response.is_json else response.get_data(as_text=True)
        response_validator(doc, schema).validate(body)
    except ValidationError as error:  # pragma: no cover - the message is the useful part
        raise AssertionError(f"{method.upper()} {path} {status}: {error.message}") from None
    for header in documented.get("headers", {}):
        assert header in response.headers, f"{method.upper()} {path} {status} lacks the {header} header"


def test_the_document_is_valid_openapi():
    doc = document()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearerAuth"][
            "description"]}


def test_the_served_document_is_the_same_and_valid(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    validate(response.get_json())
    assert response.get_json() == document()


def test_every_api_route_is_documented(app):
    doc = document()
    documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or rule.endpoint == "api.unknown":
            continue
        path = rule.rule.removeprefix("/api/v1").replace("<int:import_id>", "{import_id}")
        served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented


def _upload(client, headers, query="", rows=None):
    return client.post(f"/api/v1/imports{query}", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(csv_bytes(rows)), "20180516.csv")})


def test_every_documented_status_of_every_operation_answers_as_documented(app, client, make_account, api_account,
                                                                           api_worker):
    """Call each operation so that it gives each of its documented answers; check status, body and headers."""
    doc = document()
    h = api_account.headers
    calls = []  # (path, method, expected status, response)

    def call(path, method, expected, response):
        calls.append((path, method, expected, response))

    queued = _upload(client, h)
    call("/imports", "post", 202, queued)
    call("/imports", "post", 200, _upload(client, h, "?wait=1"))
    failed = _upload(client, h, "?wait=1", BAD_ROWS)
    call("/imports", "post", 422, failed)
    call("/imports", "post", 400, client.post("/api/v1/imports", headers=h, data=b"x"))
    app.config["MAX_UPLOAD_BYTES"] = 10
    call("/imports", "post", 413, _upload(client, h))
    app.config["MAX_UPLOAD_BYTES"] = 1024 * 1024
    call("/imports", "post", 401, _upload(client, {}))
    mail = make_account("mailco", **api_options(mode="mail"))
    call("/imports", "post", 403, _upload(client, mail.headers))
    stopped = make_account("stopco", **api_options(status="stopped"))
    call("/imports", "post", 409, _upload(client, stopped.headers))
    disabled = make_account("offco", **api_options(integration=False))
    api_worker.stop()  # ?wait=1 with no worker to end the import within the wait: 202 with a message
    app.config["IMPORT_WAIT_SECONDS"] = 0
    call("/imports", "post", 202, _upload(client, h, "?wait=1"))

    reads = {
        "/imports": ("/api/v1/imports?limit=2", "/api/v1/imports?limit=0"),
        "/imports/{import_id}": (f"/api/v1/imports/{failed.get_json()['id']}?errors_limit=1",
                                 f"/api/v1/imports/{failed.get_json()['id']}?errors_limit=0"),
        "/results": ("/api/v1/results?period=201805", "/api/v1/results?period=2018"),
        "/members": ("/api/v1/members", None),
        "/columns": ("/api/v1/columns", None),
        "/status": ("/api/v1/status", None),
    }
    for path, (good, bad) in reads.items():
        call(path, "get", 200, client.get(good, headers=h))
        call(path, "get", 401, client.get(good))
        call(path, "get", 403, client.get(good, headers=disabled.headers))
        if bad:
            call(path, "get", 400, client.get(bad, headers=h))
    call("/imports/{import_id}", "get", 404, client.get("/api/v1/imports/0", headers=h))
    call("/openapi.json", "get", 200, client.get("/api/v1/openapi.json"))
    call("/docs", "get", 200, client.get("/api/v1/docs"))

    app.config["API_RATE_PER_MINUTE"] = 1
    limited = make_account("busyco", **api_options())
    for path, (good, _) in reads.items():
        client.get(good, headers=limited.headers)
        call(path, "get", 429, client.get(good, headers=limited.headers))
    call("/imports", "post", 429, _upload(client, limited.headers))

    for path, method, expected, response in calls:
        assert response.status_code == expected, (path, method, response.get_data(as_text=True))
        check_answer(doc, path, method, response)
    # Every documented answer was produced at least once.
    produced = {(p, m, str(s)) for p, m, s, _ in calls}
    documented = {(p, m, s) for p, item in doc["paths"].items() for m, op in item.items() for s in op["responses"]}
    assert documented == produced
