"""The API's one parser: JSON the platform can store (workflows.payloads), else a 400
naming where the problem is; any other content type is a 415 (DRF answers it)."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from workflows import payloads


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        if not raw:
            return {}
        try:
            return payloads.loads(raw)
        except payloads.UnsafeJSON as unsafe:
            raise ParseError({path or "body": [problem] for path, problem in unsafe.errors.items()}) from None
