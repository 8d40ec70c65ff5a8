"""docs/openapi.yaml is a valid OpenAPI 3 document, names exactly the gateway's ChatApp routes and
admin routes, pairs each error code of the ChatApp dialect with the HTTP status and message the
dialect answers with, and holds the admin API's blocks exactly as gateway/admin/openapi.py makes them.
(tests/e2e/test_openapi_fuzz.py holds the running services to it.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import schemathesis
import yaml
from aiohttp import web

from gateway.admin.api import ROUTES
from gateway.admin.openapi import blocks, current_blocks
from gateway.dialects import chatapp
from gateway.routes import setup_routes

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())
    return loaded


def resolve(root: dict[str, Any], node: Any) -> Any:
    if isinstance(node, dict) and "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return resolve(root, target)
    return node


def strings_in_enums(root: dict[str, Any], node: Any) -> Iterator[str]:
    """Every string an `enum` below `node` allows, following references."""
    node = resolve(root, node)
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "enum":
                yield from (v for v in value if isinstance(v, str))
            else:
                yield from strings_in_enums(root, value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_in_enums(root, item)


def test_the_document_is_valid_openapi() -> None:
    # Against the OpenAPI 3.0 meta-schema; raises with the offending part if it is not.
    schemathesis.openapi.from_path(DOCUMENT).validate()
    assert document()["openapi"].startswith("3.")


def test_every_v1_route_is_documented_and_every_documented_operation_is_a_route() -> None:
    app = web.Application()
    setup_routes(app)
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith("/v1/") and route.method != "*"
    }
    # aiohttp adds a HEAD to every GET (allow_head); the document says so once, in words.
    routes -= {("HEAD", path) for method, path in routes if method == "GET"}
    documented = {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method in HTTP_METHODS and path.startswith("/v1/")
    }
    assert routes == documented
    assert len(documented) == 5


def chatapp_paths(root: dict[str, Any]) -> dict[str, Any]:
    """The ChatApp dialect's part of the document (the admin API's has its own envelope)."""
    return {path: item for path, item in root["paths"].items() if path.startswith("/v1/")}


def error_schemas(root: dict[str, Any]) -> Iterator[tuple[str, str, int, Any]]:
    """(method, path, status, JSON schema) of every documented error answer."""
    for path, item in root["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS or not path.startswith("/v1/"):
                continue
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    content = resolve(root, response)["content"]
                    yield method, path, int(status), content["application/json"]["schema"]


def test_each_error_is_documented_with_its_status_code_and_message() -> None:
    """The dialect's own error bodies, validated against every error answer the document lists:
    each answer must accept some of them and only those of its status, and each error must be
    accepted somewhere."""
    root = document()
    errors = [
        chatapp.invalid_token(),
        chatapp.invalid_credentials(),
        chatapp.tokens_limit(1, {}),
        chatapp.too_many_attempts(1),
        chatapp.service_unavailable(),
        *(chatapp.validation_error(message) for message in strings_in_enums(root, chatapp_paths(root))),
    ]
    documented: set[tuple[int, str]] = set()
    for method, path, status, schema in error_schemas(root):
        # The components travel along, so that the schema's references resolve.
        validator = jsonschema_rs.Draft4Validator({**schema, "components": root["components"]})
        accepted = {
            (error.status, error.code)
            for error in errors
            if validator.is_valid({"success": False, "error": {"code": error.code, "message": error.message}})
        }
        assert accepted, (method, path, status)
        assert {s for s, _ in accepted} == {status}, (method, path, accepted)
        documented |= accepted
    assert documented == {(error.status, error.code) for error in errors}
    # And nothing else fits the envelope: an unknown code, an extra member.
    validator = jsonschema_rs.Draft4Validator(
        {"$ref": "#/components/schemas/Failure", "components": root["components"]}
    )
    assert validator.is_valid({"success": False, "error": {"code": "ApiValidationError", "message": "x"}})
    assert not validator.is_valid({"success": False, "error": {"code": "ApiOtherError", "message": "x"}})
    assert not validator.is_valid(
        {"success": False, "error": {"code": "ApiValidationError", "message": "x"}, "data": {}}
    )


# --- the admin API ----------------------------------------------------------------------------------


def test_every_admin_route_is_documented_and_every_documented_admin_operation_is_a_route() -> None:
    app = web.Application()
    setup_routes(app)
    routes = {
        (route.method, re.sub(r"\{(\w+):(?:[^{}]|\{[^{}]*\})+\}", r"{\1}", route.resource.canonical))
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/admin/v1/")
        and route.method != "*"
    }
    documented = {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method in HTTP_METHODS and path.startswith("/admin/v1/")
    }
    assert routes == documented
    assert len(documented) == len(ROUTES)


def test_the_admin_blocks_are_what_the_generator_makes() -> None:
    """Run `.venv/bin/python -m gateway.admin.openapi` after changing an admin route or model."""
    assert current_blocks(DOCUMENT.read_text()) == blocks()


def test_every_admin_error_answer_is_the_admin_envelope() -> None:
    root = document()
    for path, item in root["paths"].items():
        if not path.startswith("/admin/v1/"):
            continue
        for method, operation in item.items():
            errors = {s: r for s, r in operation["responses"].items() if s.startswith(("4", "5"))}
            assert {"400", "401", "422", "503"} <= set(errors), (method, path)
            for response in errors.values():
                schema = resolve(root, response)["content"]["application/json"]["schema"]
                validator = jsonschema_rs.Draft4Validator({**schema, "components": root["components"]})
                assert validator.is_valid({"error": {"code": "not_found", "message": "no such user"}})
                assert not validator.is_valid({"success": False, "error": {"code": "x", "message": "x"}})
