"""The operator's admin (DESIGN.md §7).

The runs list stays fast on millions of rows: no full count (an exact count up to a
thousand, the planner's estimate beyond), related rows joined in the same query, sorting
only by creation time, and every filter built from choices (never a scan of distinct
values) and narrowed to an indexed column: error type and category imply their status
through the single rule, workflow and organization are typed in rather than listed.

Every action goes through executions.services (transitions, enqueue, re-run); nothing
here writes a status or updates a queryset.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections, models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from executions import presentation, queries, services
from executions.models import Execution, Step, StepStatus, Transition
from executions.outputs import run_output
from executions.presentation import rerun_notice
from failures.catalogue import CATALOGUE, CATEGORY_FOR_ERROR_TYPE, CODE_CHOICES, ErrorCategory
from failures.statuses import (
    ERROR_STATUSES,
    IN_PROGRESS,
    TERMINAL,
    Actor,
    ErrorType,
    ExecutionStatus,
    status_for_error_type,
)
from tenancy.models import Member, Organization, OrganizationSecret
from workflows.forms import SafeJSONField
from workflows.models import Workflow

S = ExecutionStatus
SELECTION_LIMIT = 100  # rows an admin action handles; larger recoveries use the bulk re-run page


# --- the runs list: count and filters -------------------------------------------------------
def planner_estimate(queryset: QuerySet) -> int | None:
    """PostgreSQL's own estimate of the rows a queryset matches (EXPLAIN, no scan)."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """Counts exactly up to `exact_up_to` rows (a bounded subquery: cost capped however
    large the table), and beyond that shows the planner's estimate, never a full COUNT."""

    exact_up_to = 1000

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.estimated = False

    @cached_property
    def count(self) -> int:
        queryset = cast(QuerySet, self.object_list)
        bounded = queryset.order_by()[: self.exact_up_to + 1].count()
        if bounded <= self.exact_up_to:
            return bounded
        self.estimated = True
        estimate = planner_estimate(queryset)
        return max(self.exact_up_to + 1, estimate or 0)


class InputListFilter(admin.SimpleListFilter):
    """A filter typed in (an id or a name) instead of a list of every value: listing every
    workflow or organization would scan their tables and bury the page."""

    template = "admin/executions/input_filter.html"
    placeholder = ""

    def lookups(self, request, model_admin):
        return [("", "")]  # has_output() needs one; the template draws an input instead

    def choices(self, changelist):  # the template draws an input, not a list of choices
        hidden = [(k, v) for k, v in changelist.params.items() if k != self.parameter_name]
        yield {
            "value": self.value() or "",
            "parameter_name": self.parameter_name,
            "placeholder": self.placeholder,
            "hidden": hidden,
            "clear_url": changelist.get_query_string(remove=[self.parameter_name]),
            "current": self.describe(self.value()),
        }

    def describe(self, value: str | None) -> str:
        return ""


class WorkflowFilter(InputListFilter):
    title = "workflow"
    parameter_name = "workflow"
    placeholder = "workflow id"

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            raise IncorrectLookupParameters("the workflow filter takes a workflow id")
        return queryset.filter(workflow_id=int(value))  # (workflow, created_at) index

    def describe(self, value: str | None) -> str:
        if value and value.isdigit():
            workflow = Workflow.objects.filter(pk=int(value)).select_related("organization").first()
            if workflow:
                return f"{workflow.name} ({workflow.organization.slug})"
        return ""


class OrganizationFilter(InputListFilter):
    title = "organization"
    parameter_name = "organization"
    placeholder = "organization id or slug"

    def _organization_id(self, value: str) -> int | None:
        if value.isdigit():
            return int(value)
        return Organization.objects.filter(slug=value).values_list("pk", flat=True).first()

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        org_id = self._organization_id(value)
        if org_id is None:
            raise IncorrectLookupParameters(f"no organization {value!r}")
        return queryset.filter(organization_id=org_id)  # (organization, created_at) index

    def describe(self, value: str | None) -> str:
        if value:
            org_id = self._organization_id(value)
            org = Organization.objects.filter(pk=org_id).first() if org_id else None
            if org:
                return f"{org.name} ({org.slug})"
        return ""


_TYPE_FOR_CATEGORY: dict[str, str] = {category: error_type for error_type, category in CATEGORY_FOR_ERROR_TYPE.items()}


class _ImpliesStatusFilter(admin.SimpleListFilter):
    """A filter on a failure field whose value implies the run's status (the single rule),
    so the filter adds it and the (status, created_at) index serves it."""

    choices_class: type[models.TextChoices]

    def lookups(self, request, model_admin):
        return self.choices_class.choices

    def error_type_of(self, value: str) -> str:
        raise NotImplementedError

    def queryset(self, request, queryset):
        value = self.value()
        if value not in self.choices_class.values:
            return queryset
        status = status_for_error_type(self.error_type_of(value))
        return queryset.filter(status=status, **{str(self.parameter_name): value})


class ErrorTypeFilter(_ImpliesStatusFilter):
    title = "error type"
    parameter_name = "error_type"
    choices_class = ErrorType

    def error_type_of(self, value: str) -> str:
        return value


class CategoryFilter(_ImpliesStatusFilter):
    """A category implies its error type, hence its status."""

    title = "error category"
    parameter_name = "error_category"
    choices_class = ErrorCategory

    def error_type_of(self, value: str) -> str:
        return _TYPE_FOR_CATEGORY.get(value, ErrorType.SYSTEM)


class StuckFilter(admin.SimpleListFilter):
    """What the reaper will age at its next sweep (executions.queries.stuck: pending past
    the start threshold, running past its deadline or with a stale heartbeat). Served by
    the in-progress index."""

    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("yes", "Stuck (in progress past its threshold)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(queries.stuck())
        return queryset


CREATED_WINDOWS = {
    "1h": ("Last hour", timedelta(hours=1)),
    "6h": ("Last 6 hours", timedelta(hours=6)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}


class CreatedFilter(admin.SimpleListFilter):
    """A time window (what a bulk re-run by code takes along)."""

    title = "created"
    parameter_name = "created"

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in CREATED_WINDOWS.items()]

    def queryset(self, request, queryset):
        window = CREATED_WINDOWS.get(self.value() or "")
        if window:
            return queryset.filter(created_at__gte=timezone.now() - window[1])
        return queryset


# --- run detail ------------------------------------------------------------------------------
class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class StepInline(ReadOnlyInline):
    model = Step
    fields = (
        "position",
        "step_id",
        "action",
        "step_status",
        "started_at",
        "finished_at",
        "duration",
        "error_type",
        "error_message",
        "reused",
        "attempts_display",
    )
    readonly_fields = fields
    ordering = ("position", "started_at")
    verbose_name_plural = "steps (internal error text: staff only)"

    @admin.display(description="status")
    def step_status(self, obj: Step) -> str:
        return presentation.badge_html(obj.status)

    @admin.display(description="attempts")
    def attempts_display(self, obj: Step) -> str:
        lines = presentation.attempt_lines(obj.attempts, internal=True)
        if not lines:
            return "–"
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines))

    @admin.display(description="duration")
    def duration(self, obj: Step) -> str:
        if obj.finished_at is None:
            return "running" if obj.status == StepStatus.RUNNING else "–"
        return presentation.duration_text(max(0, int((obj.finished_at - obj.started_at).total_seconds() * 1000)))


class TransitionInline(ReadOnlyInline):
    model = Transition
    fields = ("at", "from_status", "to_status", "actor", "move", "error_code", "reason")
    readonly_fields = fields
    ordering = ("at", "id")
    verbose_name_plural = "transition log"


# --- forms of the operator's actions ---------------------------------------------------------
class ReclassifyForm(forms.Form):
    error_type = forms.ChoiceField(choices=ErrorType.choices)
    error_code = forms.ChoiceField(
        choices=[("", "— none (user or external error) —"), *CODE_CHOICES],
        required=False,
        help_text="Required for a system error; a user or external error carries no code.",
    )
    error_category = forms.ChoiceField(
        choices=[("", "— derived from the type and code —"), *ErrorCategory.choices],
        required=False,
        help_text="A system error takes its code's category; user is workflow, external is external_service.",
    )
    customer_message = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="What the customer reads for a user or external error. Required when the run was a system "
        "error: its stored message is internal and is never shown to a customer.",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), help_text="Kept in the run's transition log with your name."
    )


class BulkRerunForm(forms.Form):
    code = forms.ChoiceField(choices=CODE_CHOICES, label="error code")
    since = forms.DateTimeField(help_text="created at or after (UTC), e.g. 2025-01-31 14:00")
    until = forms.DateTimeField(help_text="created before (UTC)")

    def clean(self):
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since >= until:
            raise forms.ValidationError("the window must end after it starts")
        return cleaned


# --- organizations, members, workflows --------------------------------------------------------
@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = ("user", "organization")
    list_select_related = ("user", "organization")
    list_filter = ("organization",)
    search_fields = ("user__username", "organization__name")
    raw_id_fields = ("user",)


def _actor(request: HttpRequest) -> str:
    return f"operator:{request.user.get_username()}"


def _run_link(run_id: uuid.UUID | str | None) -> str:
    return format_html(
        '<a href="{}"><code>{}</code></a>', reverse("admin:executions_execution_change", args=[run_id]), run_id
    )


def _not_queued_text(answer: services.Answer) -> str:
    return format_html("Re-run {} could not be queued: {}", _run_link(answer.run_id), answer.message)


def _report_run_now(request: HttpRequest, workflow: Workflow) -> None:
    """Run a workflow now and say what happened: the run's id, or the customer-facing
    reason it could not be queued."""
    try:
        run = services.run_now(workflow, actor=_actor(request))
    except services.FAILURES as failure:
        answer = services.answer_for(failure)
        if answer.not_queued:
            messages.error(
                request,
                format_html(
                    "{}: run {} could not be queued: {}", workflow.name, _run_link(answer.run_id), answer.message
                ),
            )
        else:
            messages.error(request, f"{workflow.name}: {answer.message}")
    else:
        messages.success(request, format_html("{}: run {} queued.", workflow.name, _run_link(run.pk)))


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "trigger_type", "enabled", "version", "deleted_at", "updated_at")
    list_select_related = ("organization",)
    list_filter = ("enabled", "trigger_type", "organization")
    search_fields = ("name",)
    readonly_fields = ("version", "created_at", "updated_at", "runs_last_24h", "recent_runs")
    actions = ("run_now",)
    change_form_template = "admin/executions/workflow/change_form.html"
    formfield_overrides = {models.JSONField: {"form_class": SafeJSONField}}

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is None:
            return [
                (None, {"fields": [f for f in fieldsets[0][1]["fields"] if f not in ("runs_last_24h", "recent_runs")]})
            ]
        fields = [f for f in fieldsets[0][1]["fields"] if f not in ("runs_last_24h", "recent_runs")]
        return [(None, {"fields": fields}), ("Runs", {"fields": ("runs_last_24h", "recent_runs")})]

    @admin.action(description="Run now (a manual run of each selected workflow)", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        for workflow in queryset[:SELECTION_LIMIT]:
            _report_run_now(request, workflow)

    @admin.display(description="runs in the last 24 h")
    def runs_last_24h(self, obj: Workflow) -> str:
        counts = queries.status_counts(Execution.objects.filter(workflow=obj))
        return format_html_join(
            " ",
            '<span class="cv-count" data-status="{}" style="margin-right:12px">{} {}: <strong>{}</strong></span>',
            (
                (c.status, presentation.dot_html(c.status), presentation.label_with_icon(c.status), c.count)
                for c in counts
            ),
        )

    @admin.display(description="recent runs")
    def recent_runs(self, obj: Workflow) -> str:
        runs = queries.recent_runs(Execution.objects.filter(workflow=obj), limit=10)
        if not runs:
            return "no runs yet"
        items = format_html_join(
            "",
            '<li data-status="{}" style="list-style:none;margin:2px 0">{} <a href="{}">{}</a> {} '
            '<span style="color:#6b7280">{} · {}</span></li>',
            (
                (
                    run.status,
                    presentation.dot_html(run.status),
                    reverse("admin:executions_execution_change", args=[run.pk]),
                    presentation.label_with_icon(run.status),
                    format_html("<code>{}</code>", run.error_code) if run.error_code else "",
                    timezone.localtime(run.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                    run.get_trigger_type_display(),
                )
                for run in runs
            ),
        )
        all_runs = f"{reverse('admin:executions_execution_changelist')}?{urlencode({'workflow': obj.pk})}"
        return format_html(
            '<ul style="margin:0;padding:0">{}</ul><a href="{}">All runs of this workflow →</a>', items, all_runs
        )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/run-now/",
                self.admin_site.admin_view(self.run_now_view),
                name="executions_workflow_run_now",
            ),
            *super().get_urls(),
        ]

    @method_decorator(require_POST)
    def run_now_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        workflow = get_object_or_404(Workflow, pk=object_id)
        _report_run_now(request, workflow)
        return HttpResponseRedirect(reverse("admin:executions_workflow_change", args=[workflow.pk]))


# --- runs -------------------------------------------------------------------------------------
@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "status_badge",
        "workflow",
        "organization",
        "trigger_type",
        "error_type",
        "created_at",
        "duration",
    )
    list_display_links = ("short_id",)
    list_filter = (
        "status",
        ErrorTypeFilter,
        CategoryFilter,
        "error_code",
        "trigger_type",
        WorkflowFilter,
        OrganizationFilter,
        StuckFilter,
        CreatedFilter,
    )
    list_select_related = ("workflow", "organization")
    list_per_page = 100
    list_max_show_all = 200
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    sortable_by = ("created_at",)
    ordering = ("-created_at",)
    search_fields = ("=id",)  # get_search_results decides: run id, dispatch key or workflow name
    search_help_text = "An exact run id, an exact dispatch key (it holds a colon) or a workflow name."
    actions = ("rerun_selected", "cancel_selected")
    inlines = (StepInline, TransitionInline)
    change_list_template = "admin/executions/execution/change_list.html"
    change_form_template = "admin/executions/execution/change_form.html"
    fieldsets = (
        (None, {"fields": ("id", "status_badge", "workflow", "organization", "workflow_version", "trigger_type")}),
        (
            "Outcome",
            {
                "fields": (
                    "customer_message_display",
                    "internal_error_message",
                    "error_type",
                    "error_category",
                    "error_code",
                    "error_cause_code",
                    "classifier_rule",
                    "status_actor",
                )
            },
        ),
        (
            "Input and output",
            {"fields": ("input_display", "output_display", "dispatch_key", "attempt", "rerun_of", "resumed_from")},
        ),
        (
            "Timing",
            {
                "fields": (
                    "created_at",
                    "queued_at",
                    "started_at",
                    "heartbeat_at",
                    "deadline_at",
                    "finished_at",
                    "duration_ms",
                )
            },
        ),
        (
            "Runtime",
            {
                "fields": (
                    "runtime",
                    "worker",
                    "claim_token",
                    "steps_total",
                    "steps_started",
                    "steps_succeeded",
                    "steps_failed",
                )
            },
        ),
    )

    # -- read-only model: status moves only through the services --------------------------
    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields] + [
            "status_badge",
            "customer_message_display",
            "internal_error_message",
            "input_display",
            "output_display",
            "resumed_from",
        ]

    @admin.display(description="resumed")
    def resumed_from(self, obj: Execution) -> str:
        return obj.resumed_notice or "–"

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        extra = {}
        if self.has_change_permission(request):
            query = request.GET.urlencode()
            extra["bulk_rerun_url"] = reverse("admin:executions_execution_bulk_rerun") + (f"?{query}" if query else "")
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = Execution.objects.filter(pk=object_id).first() if _is_uuid(object_id) else None
        extra = {
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
            "run": run,
            "can_operate": self.has_change_permission(request),
            "run_in_progress": run is not None and run.status in IN_PROGRESS,
            "run_terminal": run is not None and run.status in TERMINAL,
            "run_failed": run is not None and run.error_type != "" and run.status in TERMINAL,
            "run_resumable": run is not None and run.status in ERROR_STATUSES,
            "rerun_notice": rerun_notice(run) if run is not None else "",
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    # -- columns ---------------------------------------------------------------------------
    @admin.display(description="run", ordering="created_at")
    def short_id(self, obj: Execution) -> str:
        return format_html('<code title="{}">{}</code>', obj.pk, str(obj.pk)[:8])

    @admin.display(description="status")
    def status_badge(self, obj: Execution) -> str:
        return presentation.badge_html(obj.status, obj.error_code)

    @admin.display(description="duration")
    def duration(self, obj: Execution) -> str:
        return presentation.duration_text(obj.duration_ms)

    @admin.display(description="customer message (what the organization sees)")
    def customer_message_display(self, obj: Execution) -> str:
        return obj.customer_message or "–"

    @admin.display(description="internal error message (staff only)")
    def internal_error_message(self, obj: Execution) -> str:
        if not obj.error_message:
            return "–"
        return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>', obj.error_message)

    @admin.display(description="input")
    def input_display(self, obj: Execution) -> str:
        return format_html('<pre style="margin:0">{}</pre>', json.dumps(obj.input, indent=2, sort_keys=True))

    @admin.display(description="output")
    def output_display(self, obj: Execution) -> str:
        output = run_output(obj)  # from the step rows, where outputs are stored (executions/outputs.py)
        if output is None:
            return "–"
        return format_html('<pre style="margin:0">{}</pre>', json.dumps(output, indent=2, sort_keys=True))

    # -- search: exact id, exact dispatch key, or workflow name, each through an index -------
    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if _is_uuid(term):
            return queryset.filter(pk=term), False
        if ":" in term:
            return queryset.filter(dispatch_key=term), False
        workflow_ids = list(Workflow.objects.filter(name__iexact=term).values_list("pk", flat=True)[:20])
        if not workflow_ids:
            workflow_ids = list(Workflow.objects.filter(name__icontains=term).values_list("pk", flat=True)[:20])
        return queryset.filter(workflow_id__in=workflow_ids), False

    # -- list actions (each run through the services) ----------------------------------------
    def _selection(self, request: HttpRequest, queryset: QuerySet[Execution]) -> list[Execution] | None:
        runs = list(queryset.select_related("workflow")[: SELECTION_LIMIT + 1])
        if len(runs) > SELECTION_LIMIT:
            messages.error(
                request,
                f"More than {SELECTION_LIMIT} runs selected: use the bulk re-run by code and time window instead.",
            )
            return None
        return runs

    def _for_each(self, request: HttpRequest, queryset: QuerySet[Execution], act, done_text: str) -> None:
        """`act(run)` on each selected run, saying what was refused; stops at the first run
        that could not be queued (the queue is down: every other one would fail too)."""
        runs = self._selection(request, queryset)
        if runs is None:
            return
        done = 0
        for run in runs:
            try:
                act(run)
            except services.FAILURES as failure:
                answer = services.answer_for(failure)
                if answer.not_queued:
                    messages.error(request, _not_queued_text(answer))
                    break
                messages.warning(request, answer.message)
            else:
                done += 1
        if done:
            messages.success(request, f"{done} run(s) {done_text}.")

    @admin.action(description="Re-run the selected runs", permissions=["change"])
    def rerun_selected(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        self._for_each(request, queryset, lambda run: services.rerun_run(run, actor=_actor(request)), "re-run")

    @admin.action(description="Cancel the selected runs", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        def cancel(run: Execution) -> None:
            services.cancel_run(run.pk, actor=Actor.OPERATOR, who=_actor(request))

        self._for_each(request, queryset, cancel, "cancelled")

    # -- per-run and bulk views --------------------------------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("bulk-rerun/", view(self.bulk_rerun_view), name="executions_execution_bulk_rerun"),
            path("<path:object_id>/rerun/", view(self.rerun_view), name="executions_execution_rerun"),
            path("<path:object_id>/resume/", view(self.resume_view), name="executions_execution_resume"),
            path("<path:object_id>/cancel/", view(self.cancel_view), name="executions_execution_cancel"),
            path("<path:object_id>/reclassify/", view(self.reclassify_view), name="executions_execution_reclassify"),
            *super().get_urls(),
        ]

    def _operator_only(self, request: HttpRequest) -> None:
        if not self.has_change_permission(request):
            raise PermissionDenied

    def _operator_run(self, request: HttpRequest, object_id: str) -> Execution:
        self._operator_only(request)
        return self._run(object_id)

    def _run(self, object_id: str) -> Execution:
        if not _is_uuid(object_id):
            raise Http404("no such run")
        return get_object_or_404(Execution.objects.select_related("workflow"), pk=object_id)

    def _back(self, run_id) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:executions_execution_change", args=[run_id]))

    @method_decorator(require_POST)
    def rerun_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        run = self._operator_run(request, object_id)
        try:
            child = services.rerun_run(run, actor=_actor(request))
        except services.FAILURES as failure:
            answer = services.answer_for(failure)
            messages.error(request, _not_queued_text(answer) if answer.not_queued else answer.message)
            return self._back(answer.run_id or run.pk)
        messages.success(request, format_html("Re-run {} queued.", _run_link(child.pk)))
        return self._back(child.pk)

    @method_decorator(require_POST)
    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Resume from the first step that did not succeed; when that step may repeat and
        is not idempotent, a confirmation page naming it comes first."""
        run = self._operator_run(request, object_id)
        confirmed = request.POST.get("confirm_repeat") == "yes"
        try:
            child = services.resume_run(run, actor=_actor(request), origin="operator", confirm_repeat=confirmed)
        except services.ResumeNeedsConfirmation as refused:
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"Resume run {run.pk}?",
                "run": run,
                "step_id": refused.step_id,
                "reason": str(refused),
            }
            return TemplateResponse(request, "admin/executions/execution/resume_confirm.html", context)
        except services.FAILURES as failure:
            answer = services.answer_for(failure)
            messages.error(request, _not_queued_text(answer) if answer.not_queued else answer.message)
            return self._back(answer.run_id or run.pk)
        messages.success(
            request, format_html("Resume {} queued: {}.", _run_link(child.pk), f"starts at step {child.resume_step}")
        )
        return self._back(child.pk)

    @method_decorator(require_POST)
    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        run = self._operator_run(request, object_id)
        try:
            services.cancel_run(run.pk, actor=Actor.OPERATOR, who=_actor(request))
        except services.FAILURES as failure:
            messages.error(request, services.answer_for(failure).message)
        else:
            messages.success(request, "Run cancelled; a running runtime is stopped at its next heartbeat.")
        return self._back(run.pk)

    def reclassify_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        run = self._operator_run(request, object_id)
        if request.method == "POST":
            form = ReclassifyForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    services.reclassify_run(
                        run.pk,
                        error_type=data["error_type"],
                        error_code=data["error_code"],
                        error_category=data["error_category"],
                        customer_message=data["customer_message"],
                        reason=data["reason"],
                        operator=request.user.get_username(),
                    )
                except services.ReclassifyRefused as exc:
                    for name, message in exc.errors.items():
                        form.add_error(name if name in form.fields else None, message)
                else:
                    run.refresh_from_db()
                    messages.success(
                        request,
                        format_html("Reclassified: now {}.", presentation.badge_html(run.status, run.error_code)),
                    )
                    return self._back(run.pk)
        else:
            form = ReclassifyForm(
                initial={
                    "error_type": run.error_type,
                    "error_code": run.error_code,
                    "error_category": run.error_category,
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Reclassify run {run.pk}",
            "run": run,
            "form": form,
            "badge": presentation.badge_html(run.status, run.error_code),
        }
        return TemplateResponse(request, "admin/executions/execution/reclassify.html", context)

    def bulk_rerun_view(self, request: HttpRequest) -> HttpResponse:
        self._operator_only(request)
        data = request.POST if request.method == "POST" else request.GET
        form = BulkRerunForm(data or None, initial=_bulk_initial(request))
        count = None
        if form.is_valid():
            code, since, until = (form.cleaned_data[k] for k in ("code", "since", "until"))
            if request.method == "POST" and request.POST.get("confirm") == "yes":
                if request.POST.get("mode") == "resume":
                    result = services.bulk_resume(code, since, until, actor=_actor(request))
                    _report_bulk(request, result, done="resumed")
                else:
                    result = services.bulk_rerun(code, since, until, actor=_actor(request))
                    _report_bulk(request, result)
                query = urlencode({"code": code, "since": since.isoformat(), "until": until.isoformat()})
                return HttpResponseRedirect(f"{reverse('admin:executions_execution_bulk_rerun')}?{query}")
            count = services.bulk_rerun_candidates(code, since, until).count()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Bulk re-run by error code and time window",
            "form": form,
            "count": count,
            "limit": services.BULK_RERUN_LIMIT,
            "this_click": min(count, services.BULK_RERUN_LIMIT) if count is not None else None,
            "changelist_url": _changelist_for(form) if form.is_valid() else None,
        }
        return TemplateResponse(request, "admin/executions/execution/bulk_rerun.html", context)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _bulk_initial(request: HttpRequest) -> dict:
    """Prefill from the runs list's filters: its code and its time window."""
    now = timezone.now().replace(microsecond=0)
    window = CREATED_WINDOWS.get(request.GET.get("created", ""), CREATED_WINDOWS["24h"])[1]
    initial: dict[str, object] = {"since": now - window, "until": now + timedelta(minutes=1)}
    code = request.GET.get("error_code__exact") or request.GET.get("code")
    if code in CATALOGUE:
        initial["code"] = code
    return initial


def _changelist_for(form: BulkRerunForm) -> str:
    query = urlencode({"error_code__exact": form.cleaned_data["code"]})
    return f"{reverse('admin:executions_execution_changelist')}?{query}"


def _report_bulk(request: HttpRequest, result: services.BulkRerunResult, done: str = "re-run") -> None:
    if result.rerun:
        messages.success(request, f"{len(result.rerun)} run(s) {done}.")
    for run_id, reason in result.refused[:10]:
        messages.warning(request, f"{run_id}: {reason}")
    if len(result.refused) > 10:
        messages.warning(request, f"… and {len(result.refused) - 10} more refused.")
    if result.enqueue_failed:
        failed_id, message = result.enqueue_failed
        messages.error(
            request, format_html("Stopped: re-run {} could not be queued: {}", _run_link(failed_id), message)
        )
    if result.remaining:
        messages.info(request, f"{result.remaining} matching run(s) not re-run yet: confirm again to continue.")


# --- secrets ---------------------------------------------------------------------------------
class OrganizationSecretForm(forms.ModelForm):
    """Write-only: a new value can be set, the stored one is never rendered back."""

    value = forms.CharField(
        label="value",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: the stored value is never shown. Leave empty to keep it.",
    )

    class Meta:
        model = OrganizationSecret
        fields = ("organization", "name")

    def clean(self):
        cleaned = super().clean() or {}
        if self.instance.pk is None and not cleaned.get("value"):
            self.add_error("value", "A new secret needs a value.")
        return cleaned

    def save(self, commit: bool = True):
        secret = super().save(commit=False)
        if self.cleaned_data.get("value"):
            secret.set_value(self.cleaned_data["value"])
        if commit:
            secret.save()
        return secret


@admin.register(OrganizationSecret)
class OrganizationSecretAdmin(admin.ModelAdmin):
    """Neither the plaintext nor the ciphertext is ever displayed (list, form or history)."""

    form = OrganizationSecretForm
    list_display = ("name", "organization", "updated_at")
    list_select_related = ("organization",)
    list_filter = ("organization",)
    search_fields = ("name",)
    readonly_fields = ("created_at", "updated_at")
    fields = ("organization", "name", "value", "created_at", "updated_at")
