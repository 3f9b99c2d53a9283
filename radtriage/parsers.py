"""Request body parsers that refuse what would otherwise crash a view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, answering 400 for JSON nested past Python's stack.

    ``json.loads`` raises ``RecursionError`` (not ``ValueError``) on an array
    nested some thousand levels deep, which DRF lets through as a 500.
    """

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deep") from exc
