"""The runs list's filters (django-filter): every value is validated against its closed
set, a bad one is a 400 naming the field (and, for a status, the allowed values), and
drf-spectacular documents each of them in the OpenAPI schema."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema_field

from executions.models import Execution
from failures.catalogue import CODE_CHOICES
from failures.statuses import ALL_STATUSES, TriggerType, parse_statuses


class StatusesField(forms.Field):
    """Statuses, repeated or comma-separated, parsed by failures.statuses (which names
    the allowed values when one is unknown)."""

    widget = forms.SelectMultiple  # every ?status= of the query string

    def to_python(self, value) -> list[str]:
        try:
            return parse_statuses(",".join(value or []))
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="invalid_choice") from None


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "enum": list(ALL_STATUSES)},
        "description": "Only runs in these statuses (any status, system_error included). Several at once: "
        "repeat the parameter or separate with commas. An unknown status is a 400 naming the allowed values.",
    }
)
class StatusesFilter(django_filters.Filter):
    field_class = StatusesField

    def filter(self, qs, value):
        return qs.filter(status__in=value) if value else qs


# Ids are PostgreSQL bigints: a larger number would reach the database and fail there.
MAX_ID = 2**63 - 1


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(django_filters.NumberFilter):
    """A whole number within the id range (NumberFilter alone takes any decimal)."""

    field_class = forms.IntegerField


class UTCDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 date-time, turned into UTC: PostgreSQL refuses offsets beyond ±15:59
    that Python accepts (a 500 otherwise), and a date near year 1 may have no UTC."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("is outside the dates that can be stored", code="invalid") from None


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


class RunFilter(django_filters.FilterSet):
    status = StatusesFilter()
    workflow = IdFilter(field_name="workflow_id", min_value=1, max_value=MAX_ID, help_text="a workflow's id")
    trigger_type = django_filters.ChoiceFilter(choices=TriggerType.choices)
    error_code = django_filters.ChoiceFilter(choices=CODE_CHOICES, help_text="a system error's code")
    created_after = UTCDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="created at or after (ISO 8601)"
    )
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt", help_text="created before (ISO 8601)")

    class Meta:
        model = Execution
        fields = ["status", "workflow", "trigger_type", "error_code", "created_after", "created_before"]
