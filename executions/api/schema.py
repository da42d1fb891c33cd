"""The OpenAPI schema's answers that no view declares (drf-spectacular postprocessing hook,
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]).

DRF answers them for every view alike, so they are documented here once rather than on
each action: 401 without a valid token, 403 for a user outside any organization, 404 for
an object of another organization (or none) and for a stale page cursor, 400 for a
parameter or body the view refuses, 415 for a body that is not JSON, 406 for an Accept
header no renderer serves. A client generated from the schema, and schemathesis's
conformance checks (tests/test_openapi_schema_fuzz.py), then know every status it can get.
"""

from __future__ import annotations

from typing import Any

METHODS = ("get", "put", "post", "patch", "delete")

DETAIL = {
    "type": "object",
    "description": "DRF's error body",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
# A refused body or parameter: each field (or "body", or "non_field_errors") with its
# messages; a field's value may itself be nested (a list item's fields).
VALIDATION = {
    "type": "object",
    "description": "the refused fields, each with its messages",
    "additionalProperties": True,
}


def _json(description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}, **extra}


# Bounds the views check that their own decorators do not state (the wait action's is
# kept as it is so that edits of the action stay apart from the schema's).
PARAMETER_BOUNDS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("/api/runs/{id}/wait/", "get", "timeout"): {"minimum": 0},
}


def document_common_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    for (path, method, name), bounds in PARAMETER_BOUNDS.items():
        operation = result.get("paths", {}).get(path, {}).get(method, {})
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == name:
                parameter.setdefault("schema", {}).update(bounds)
    for path, item in result.get("paths", {}).items():
        if not path.startswith("/api/") or path.startswith("/api/schema"):
            continue
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", _json("no token, or an invalid one", DETAIL))
            responses.setdefault("403", _json("the user belongs to no organization", DETAIL))
            responses.setdefault("404", _json("no such object in the caller's organization, or a stale cursor", DETAIL))
            responses.setdefault("406", _json("no renderer for the Accept header", DETAIL))
            if operation.get("parameters") or "requestBody" in operation:
                responses.setdefault("400", _json("a parameter or the body is refused", VALIDATION))
            if "requestBody" in operation:
                responses.setdefault("415", _json("the body is not application/json", DETAIL))
    return result
