"""The form field for JSON typed by a person (the admin's definition and trigger config):
read through workflows.payloads like every other entry, so a document nested thousands
deep or carrying text that cannot be stored is a form error naming where, not a 500 from
Django's own field (whose json.loads lets RecursionError through)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput, JSONString

from workflows import payloads


def _problems(unsafe: payloads.UnsafeJSON) -> str:
    return "; ".join(
        f"{path} {problem}" if path else f"The document {problem}" for path, problem in unsafe.errors.items()
    )


class SafeJSONField(forms.JSONField):
    def to_python(self, value: Any) -> Any:
        if self.disabled:
            return value
        if value in self.empty_values:
            return None
        if isinstance(value, list | dict | int | float | JSONString):
            return value
        try:
            converted = payloads.loads(value)
        except payloads.UnsafeJSON as unsafe:
            raise ValidationError(_problems(unsafe), code="invalid") from None
        return JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return payloads.loads(data)
        except payloads.UnsafeJSON:
            return InvalidJSONInput(data)  # shown back as typed, next to its error
