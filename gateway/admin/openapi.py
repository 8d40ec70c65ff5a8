"""The admin API's part of docs/openapi.yaml, generated from the route table (gateway/admin/api.py)
and its pydantic models, so the document cannot drift from the code:

    .venv/bin/python -m gateway.admin.openapi      # rewrites the two generated blocks in place

tests/unit/test_openapi_document.py fails when the file's blocks differ from what this makes.
The schemas are pydantic's JSON Schema turned into OpenAPI 3.0's dialect (`nullable` rather than a
null type, `enum` rather than `const`), under names starting with `Admin`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter

from gateway.admin.api import PREFIX, ROUTES, Route

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
PATHS_BEGIN = "  # --- admin API (generated: python -m gateway.admin.openapi; do not edit by hand) ---\n"
PATHS_END = "  # --- end of the admin API ---\n"
RESPONSES_BEGIN = "    # --- admin API responses (generated: python -m gateway.admin.openapi) ---\n"
RESPONSES_END = "    # --- end of the admin API responses ---\n"
SCHEMAS_BEGIN = "    # --- admin API schemas (generated: python -m gateway.admin.openapi) ---\n"
SCHEMAS_END = "    # --- end of the admin API schemas ---\n"
REF = "#/components/schemas/Admin{model}"
ERRORS = {
    "400": "Malformed JSON or query string (`bad_json`, `bad_query`)",
    "401": "No session, a dead one, or wrong credentials (`unauthorized`, `bad_credentials`)",
    "403": "The caller's role may not do this (`forbidden`)",
    "404": "Not there, or out of the caller's reach (`not_found`)",
    "405": "The path takes other methods (`method_not_allowed`; `Allow` names them)",
    "409": "In conflict with what exists (`conflict`)",
    "413": "A body over `TOKENHUB_MAX_BODY_BYTES` (`too_large`)",
    "422": "A value breaks the rules (`invalid_input`; the message names the field)",
    "429": "Too many failed sign-ins (`throttled`, with `Retry-After`)",
    "503": "A backend did not answer in time (`unavailable`)",
}


def to_openapi_30(node: Any) -> Any:
    """pydantic's JSON Schema (2020-12) as OpenAPI 3.0 schema objects."""
    if isinstance(node, list):
        return [to_openapi_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: to_openapi_30(v) for k, v in node.items() if k not in ("title", "$defs")}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            node.pop(key)
            if len(rest) == 1:
                only = rest[0]
                node.update({"allOf": [only]} if "$ref" in only else only)
            else:
                node[key] = rest
            node["nullable"] = True
    if node.get("type") == "object" and "additionalProperties" not in node and "properties" in node:
        node["additionalProperties"] = True
    return node


def _schema(kind: Any, schemas: dict[str, Any], mode: str) -> dict[str, Any]:
    generated = TypeAdapter(kind).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    for name, definition in generated.pop("$defs", {}).items():
        schemas["Admin" + name] = to_openapi_30(definition)
    top: dict[str, Any] = to_openapi_30(generated)
    if isinstance(kind, type) and issubclass(kind, BaseModel) and "$ref" not in top:
        name = "Admin" + kind.__name__.replace("[", "_").replace("]", "").replace(".", "_")
        schemas[name] = top
        return {"$ref": f"#/components/schemas/{name}"}
    return top


def _path(route: Route) -> str:
    return PREFIX + re.sub(r"\{(\w+):(?:[^{}]|\{[^{}]*\})+\}", r"{\1}", route.path)


def _parameters(route: Route, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if "{user_id" in route.path:
        parameters.append(
            {
                "name": "user_id",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
            }
        )
    if "{app_id}" in route.path:
        parameters.append(
            {
                "name": "app_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[^/]+$"},
            }
        )
    if route.query is not None:
        generated = to_openapi_30(route.query.model_json_schema(ref_template=REF))
        for name, field in generated["properties"].items():
            field = dict(field)
            field.pop("nullable", None)
            field.pop("default", None)
            if list(field) == ["allOf"]:
                field = field["allOf"][0]
            parameters.append({"name": name, "in": "query", "required": False, "schema": field})
    return parameters


def operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": _operation_id(route),
        "tags": ["admin"],
        "summary": route.summary,
    }
    if route.signed_in:
        op["security"] = [{"adminSession": []}]
    else:
        op["security"] = []
    parameters = _parameters(route, schemas)
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(route.body, schemas, "validation")}},
        }
    success: dict[str, Any] = {"description": "Done"}
    if route.reply is not None:
        success["content"] = {"application/json": {"schema": _schema(route.reply, schemas, "serialization")}}
    responses: dict[str, Any] = {str(route.status): success}
    for status in ERRORS:
        responses[status] = {"$ref": f"#/components/responses/Admin{status}"}
    op["responses"] = responses
    return op


def _error_response(status: str) -> dict[str, Any]:
    """A new object each time: YAML would otherwise write anchors and aliases."""
    response: dict[str, Any] = {
        "description": ERRORS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AdminError"}}},
    }
    if status == "405":
        response["headers"] = {"Allow": {"required": True, "schema": {"type": "string"}}}
    return response


def _operation_id(route: Route) -> str:
    words = re.findall(r"[a-z]+", f"{route.method.lower()} {route.path.replace('user_id', 'user')}")
    return "admin_" + "_".join(w for w in words if w != "d")


def generate() -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, schemas) of the admin API."""
    schemas: dict[str, Any] = {
        "AdminError": {
            "type": "object",
            "additionalProperties": False,
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        }
    }
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(_path(route), {})[route.method.lower()] = operation(route, schemas)
    return paths, dict(sorted(schemas.items()))


def _dump(value: dict[str, Any], indent: int) -> str:
    text = yaml.safe_dump(value, sort_keys=False, width=100, allow_unicode=True)
    return "".join(" " * indent + line if line.strip() else line for line in text.splitlines(keepends=True))


def blocks() -> tuple[str, str, str]:
    """The generated text of the three blocks (paths, responses, schemas), markers included."""
    paths, schemas = generate()
    responses = {f"Admin{status}": _error_response(status) for status in ERRORS}
    return (
        PATHS_BEGIN + _dump(paths, 2) + PATHS_END,
        RESPONSES_BEGIN + _dump(responses, 4) + RESPONSES_END,
        SCHEMAS_BEGIN + _dump(schemas, 4) + SCHEMAS_END,
    )


def current_blocks(text: str) -> tuple[str, str, str]:
    def between(begin: str, end: str) -> str:
        start = text.index(begin)
        return text[start : text.index(end, start) + len(end)]

    return (
        between(PATHS_BEGIN, PATHS_END),
        between(RESPONSES_BEGIN, RESPONSES_END),
        between(SCHEMAS_BEGIN, SCHEMAS_END),
    )


def rewrite(text: str) -> str:
    new = blocks()
    if PATHS_BEGIN in text:
        for old, block in zip(current_blocks(text), new, strict=True):
            text = text.replace(old, block)
        return text
    # First time: the paths before `components:`, the responses before the schemas, the schemas at
    # the end (the document's last section).
    text = text.replace("\ncomponents:\n", "\n" + new[0] + "components:\n", 1)
    text = text.replace("\n  schemas:\n", "\n" + new[1] + "  schemas:\n", 1)
    return text.rstrip("\n") + "\n" + new[2]


if __name__ == "__main__":
    DOCUMENT.write_text(rewrite(DOCUMENT.read_text()))
