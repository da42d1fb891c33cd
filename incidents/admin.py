"""The operator's incidents (docs/decisions/0012-incidents.md): a list, and an incident
page with the chart of system errors per minute by code, the affected runs (a link to the
runs list filtered by the incident), the timeline, and the operator's actions: open,
annotate, merge, resolve, and recovery (re-run the runs that did no work, with the bulk
re-run's confirmation and counts). Every change goes through incidents.services or
incidents.recovery; nothing here updates a queryset."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from executions.admin import ExecutionAdmin, InputListFilter, _report_bulk
from executions.services import BULK_RERUN_LIMIT
from failures.catalogue import CODE_CHOICES, SYSTEM_CATEGORIES, ErrorCategory
from incidents import chart, recovery, services
from incidents.models import Incident, IncidentNote, IncidentRun, IncidentStatus, OpenedBy

STATUS_LOOK: dict[str, tuple[str, str]] = {
    IncidentStatus.OPEN: ("#dc2626", "\u25cf Open"),
    IncidentStatus.RESOLVED: ("#16a34a", "\u2713 Resolved"),
}


def status_badge(incident: Incident) -> str:
    if incident.merged_into_id:
        colour, label = "#9ca3af", f"\u21aa Merged into #{incident.merged_into_id}"
    else:
        colour, label = STATUS_LOOK.get(incident.status, ("#6b7280", incident.status))
    return format_html(
        '<span class="cv-badge cv-incident-{}" data-status="{}" style="display:inline-block;padding:1px 8px;'
        'border-radius:9px;background:{};color:#fff;font-weight:600;font-size:12px;line-height:18px">{}</span>',
        incident.status,
        incident.status,
        colour,
        label,
    )


def _actor(request: HttpRequest) -> str:
    return f"operator:{request.user.get_username()}"


# --- the runs list, filtered by incident ---------------------------------------------------
class IncidentFilter(InputListFilter):
    """Runs of one incident (incident_run_incident_idx, then the runs' primary key)."""

    title = "incident"
    parameter_name = "incident"
    placeholder = "incident id"

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            raise IncorrectLookupParameters("the incident filter takes an incident id")
        links = IncidentRun.objects.filter(incident_id=int(value)).values("execution_id")
        return queryset.filter(pk__in=links)

    def describe(self, value: str | None) -> str:
        if value and value.isdigit():
            incident = Incident.objects.filter(pk=int(value)).first()
            if incident:
                return f"#{incident.pk} {incident.title}"
        return ""


# executions.admin cannot import this app (it sits below it): the filter is added here.
ExecutionAdmin.list_filter = (*ExecutionAdmin.list_filter, IncidentFilter)  # type: ignore[assignment]


# --- forms ------------------------------------------------------------------------------------
class OpenIncidentForm(forms.Form):
    title = forms.CharField(max_length=200, help_text="Internal: customers never see it.")
    start = forms.DateTimeField(help_text="when it started (UTC), e.g. 2025-01-31 14:00")
    categories = forms.MultipleChoiceField(
        choices=[(c, ErrorCategory(c).label) for c in sorted(SYSTEM_CATEGORIES)],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Later system errors of these categories join the incident.",
    )
    codes = forms.MultipleChoiceField(
        choices=CODE_CHOICES, required=False, help_text="… and of these codes (ctrl-click for several)."
    )
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def clean(self):
        cleaned = super().clean() or {}
        if not cleaned.get("categories") and not cleaned.get("codes"):
            raise forms.ValidationError("name at least one category or code the incident covers")
        return cleaned


class NoteForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="note")


class MergeForm(forms.Form):
    target = forms.IntegerField(min_value=1, label="merge into incident #")


# --- the admin ------------------------------------------------------------------------------
@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = (
        "number",
        "badge",
        "title",
        "start",
        "end",
        "runs_count",
        "workflows_count",
        "organizations_count",
        "codes_display",
        "opened_by",
    )
    list_display_links = ("number", "title")
    list_filter = ("status", "opened_by", ("merged_into", admin.EmptyFieldListFilter))
    list_select_related = ("merged_into",)
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    ordering = ("-start", "-id")
    search_fields = ("=id", "title")
    actions = ("resolve_selected", "merge_selected")
    change_form_template = "admin/incidents/incident/change_form.html"

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.display(description="#", ordering="id")
    def number(self, obj: Incident) -> str:
        return format_html("<strong>#{}</strong>", obj.pk)

    @admin.display(description="status")
    def badge(self, obj: Incident) -> str:
        return status_badge(obj)

    @admin.display(description="codes")
    def codes_display(self, obj: Incident) -> str:
        return format_html("<code>{}</code>", ", ".join(obj.codes)) if obj.codes else "–"

    # -- list actions ----------------------------------------------------------------------
    @admin.action(description="Resolve the selected incidents", permissions=["change"])
    def resolve_selected(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        done = 0
        for incident in queryset[:100]:
            try:
                services.resolve(incident, author=_actor(request))
            except services.IncidentRefused as exc:
                messages.warning(request, str(exc))
            else:
                done += 1
        if done:
            messages.success(request, f"{done} incident(s) resolved.")

    @admin.action(description="Merge the selected incidents into the oldest of them", permissions=["change"])
    def merge_selected(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        chosen = list(queryset.order_by("start", "pk")[:100])
        if len(chosen) < 2:
            messages.error(request, "Select at least two incidents to merge.")
            return
        target = chosen[0]
        for source in chosen[1:]:
            try:
                target = services.merge(source, target, author=_actor(request))
            except services.IncidentRefused as exc:
                messages.warning(request, str(exc))
        messages.success(request, f"Merged into #{target.pk}.")

    # -- views -----------------------------------------------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:object_id>/annotate/", view(self.annotate_view), name="incidents_incident_annotate"),
            path("<int:object_id>/resolve/", view(self.resolve_view), name="incidents_incident_resolve"),
            path("<int:object_id>/merge/", view(self.merge_view), name="incidents_incident_merge"),
            path("<int:object_id>/rerun/", view(self.rerun_view), name="incidents_incident_rerun"),
            path("<int:object_id>/resume/", view(self.resume_view), name="incidents_incident_resume"),
            *super().get_urls(),
        ]

    def _operator_incident(self, request: HttpRequest, object_id) -> Incident:
        if not self.has_change_permission(request):
            raise PermissionDenied
        return get_object_or_404(Incident, pk=object_id)

    def _back(self, incident_id) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:incidents_incident_change", args=[incident_id]))

    def add_view(self, request: HttpRequest, form_url="", extra_context=None) -> HttpResponse:
        """An operator opens an incident by hand: the form calls services.open_incident."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = OpenIncidentForm(request.POST or None, initial={"start": timezone.now().replace(microsecond=0)})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            incident = services.open_incident(
                title=data["title"],
                start=data["start"],
                opened_by=OpenedBy.OPERATOR,
                author=_actor(request),
                categories=data["categories"],
                codes=data["codes"],
                note=data["note"],
            )
            messages.success(request, f"Incident #{incident.pk} opened.")
            return self._back(incident.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Open an incident",
            "form": form,
        }
        return TemplateResponse(request, "admin/incidents/incident/open.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not str(object_id).isdigit():
            raise Http404("no such incident")
        incident = get_object_or_404(Incident.objects.select_related("merged_into"), pk=object_id)
        data = chart.series(incident)
        by_code = (
            IncidentRun.objects.filter(incident=incident)
            .values_list("error_code")
            .annotate(n=Count("pk"))
            .order_by("-n", "error_code")
        )
        safe = recovery.safe_to_rerun(incident).count()
        extra = {
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
            "incident": incident,
            "badge": status_badge(incident),
            "chart_svg": chart.svg(data, incident),
            "chart_total": data.total,
            "runs_by_code": list(by_code),
            "runs_url": f"{reverse('admin:executions_execution_changelist')}?{urlencode({'incident': incident.pk})}",
            "notes": list(IncidentNote.objects.filter(incident=incident).order_by("at", "id")),
            "merged": list(Incident.objects.filter(merged_into=incident).order_by("pk")),
            "can_operate": self.has_change_permission(request),
            "note_form": NoteForm(),
            "merge_form": MergeForm(),
            "safe_count": safe,
            "this_click": min(safe, BULK_RERUN_LIMIT),
            "limit": BULK_RERUN_LIMIT,
            "others_count": recovery.resumable_others(incident).count(),
            "resume_needs": recovery.RESUME_NEEDS,
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    @method_decorator(require_POST)
    def annotate_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        incident = self._operator_incident(request, object_id)
        form = NoteForm(request.POST)
        if form.is_valid():
            services.annotate(incident, form.cleaned_data["text"], author=_actor(request))
            messages.success(request, "Note added.")
        else:
            messages.error(request, "A note needs some text.")
        return self._back(incident.pk)

    @method_decorator(require_POST)
    def resolve_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        incident = self._operator_incident(request, object_id)
        try:
            services.resolve(incident, author=_actor(request), note=request.POST.get("note", "").strip())
        except services.IncidentRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Incident #{incident.pk} resolved.")
        return self._back(incident.pk)

    @method_decorator(require_POST)
    def merge_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        incident = self._operator_incident(request, object_id)
        form = MergeForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Name the incident to merge into.")
            return self._back(incident.pk)
        target = Incident.objects.filter(pk=form.cleaned_data["target"]).first()
        if target is None:
            messages.error(request, f"There is no incident #{form.cleaned_data['target']}.")
            return self._back(incident.pk)
        try:
            services.merge(incident, target, author=_actor(request))
        except services.IncidentRefused as exc:
            messages.error(request, str(exc))
            return self._back(incident.pk)
        messages.success(request, f"Incident #{incident.pk} merged into #{target.pk}.")
        return self._back(target.pk)

    def rerun_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Re-run the incident's runs that did no work: a count first, then a confirmation
        re-running at most BULK_RERUN_LIMIT of them (the bulk re-run's rules)."""
        incident = self._operator_incident(request, object_id)
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            result = recovery.rerun_safe_runs(incident, actor=_actor(request))
            _report_bulk(request, result)
            return HttpResponseRedirect(reverse("admin:incidents_incident_rerun", args=[incident.pk]))
        count = recovery.safe_to_rerun(incident).count()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Re-run the runs of incident #{incident.pk} that did no work",
            "incident": incident,
            "count": count,
            "limit": BULK_RERUN_LIMIT,
            "this_click": min(count, BULK_RERUN_LIMIT),
            "others_count": recovery.may_have_partly_run(incident).count(),
            "resume_needs": recovery.RESUME_NEEDS,
            "runs_url": f"{reverse('admin:executions_execution_changelist')}?{urlencode({'incident': incident.pk})}",
        }
        return TemplateResponse(request, "admin/incidents/incident/rerun.html", context)

    def resume_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Resume the incident's runs that may have partly run: a count first, then a
        confirmation resuming at most BULK_RERUN_LIMIT of them (the bulk resume's rules)."""
        incident = self._operator_incident(request, object_id)
        refused: list[tuple] = []
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            result = recovery.resume_others(incident, actor=_actor(request))
            _report_bulk(request, result, done="resumed")
            refused = result.refused
        count = recovery.resumable_others(incident).count()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Resume the runs of incident #{incident.pk} that may have partly run",
            "incident": incident,
            "count": count,
            "limit": BULK_RERUN_LIMIT,
            "this_click": min(count, BULK_RERUN_LIMIT),
            "refused": refused,
            "resume_needs": recovery.RESUME_NEEDS,
            "runs_url": f"{reverse('admin:executions_execution_changelist')}?{urlencode({'incident': incident.pk})}",
        }
        return TemplateResponse(request, "admin/incidents/incident/resume.html", context)
