"""OpenAPI schema post-processing: the error answers every operation can give."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}
# Validation errors name the fields: {"field": ["message", ...], ...}.
_VALIDATION_ERROR = {"type": "object", "additionalProperties": True}
_STANDARD = {
    "400": ("Malformed or invalid request", _VALIDATION_ERROR),
    "401": ("Not signed in", _ERROR),
    "403": ("Signed in without the permission", _ERROR),
    "404": ("No such object, or a malformed ID", _ERROR),
}


def add_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular hook: document 400, 401, 403 and 404 on every operation,
    and the empty choice that every query filter takes.

    DRF answers them everywhere (validation, authentication, permissions, an
    unknown object or an ID that is not one), so a client must expect them.
    """
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for parameter in operation.get("parameters", ()):
                enum = parameter.get("schema", {}).get("enum")
                if parameter.get("in") == "query" and enum and "" not in enum:
                    # django-filter takes an empty choice as "any" (as an HTML
                    # form's blank option sends it).
                    enum.append("")
            for status, (description, schema) in _STANDARD.items():
                operation["responses"].setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": schema}},
                    },
                )
    return result
