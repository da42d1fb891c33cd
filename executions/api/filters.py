"""The runs list's filters (django-filter): every value is validated against its closed
set, a bad one is a 400 naming the field (and, for a status, the allowed values), and
drf-spectacular documents each of them in the OpenAPI schema."""

from __future__ import annotations

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


class RunFilter(django_filters.FilterSet):
    status = StatusesFilter()
    workflow = django_filters.NumberFilter(field_name="workflow_id", min_value=1, help_text="a workflow's id")
    trigger_type = django_filters.ChoiceFilter(choices=TriggerType.choices)
    error_code = django_filters.ChoiceFilter(choices=CODE_CHOICES, help_text="a system error's code")
    created_after = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="created at or after (ISO 8601)"
    )
    created_before = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="created before (ISO 8601)"
    )

    class Meta:
        model = Execution
        fields = ["status", "workflow", "trigger_type", "error_code", "created_after", "created_before"]
