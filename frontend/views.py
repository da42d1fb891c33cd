"""The organization's runs pages (DESIGN.md §7): server-rendered, behind Django's login,
every query scoped to the user's organization (another organization's run is a 404).

A run still in progress refreshes itself: its page polls a small JSON view and stops at
the first terminal status, read from the shared TERMINAL group that the server hands the
page (never a list kept in JavaScript).
"""

from __future__ import annotations

import base64
import binascii
import math
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import partial, wraps

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from executions import presentation, queries, resume, services
from executions.api.throttling import TriggerRateThrottle
from executions.models import Execution
from executions.outputs import run_output
from executions.presentation import rerun_notice
from failures.statuses import ALL_STATUSES, ERROR_STATUSES, IN_PROGRESS, TERMINAL, Actor, ExecutionStatus
from tenancy.members import organization_of
from tenancy.models import Organization
from workflows.models import Workflow

S = ExecutionStatus
PAGE_SIZE = 50


def organization_member(view: Callable) -> Callable:
    """Logged in (else the login page) and in an organization (else 403)."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        org = organization_of(request.user)
        if org is None:
            return render(request, "frontend/no_organization.html", status=403)
        request.organization = org
        return view(request, *args, **kwargs)

    return wrapped


def _org(request: HttpRequest) -> Organization:
    return request.organization  # set by organization_member


def _rate_limited(request: HttpRequest) -> bool:
    """Runs started from the pages share the API's per-user budget (CONVEYOR_TRIGGER_RATE)."""
    throttle = TriggerRateThrottle()
    if throttle.allow_request(request, None):
        return False
    messages.error(request, f"Too many runs started: try again in {math.ceil(throttle.wait() or 1)} s.")
    return True


def _actor(request: HttpRequest) -> str:
    return f"page:{request.user.get_username()}"


def _start_a_run(request: HttpRequest, start: Callable[[], Execution], *, back: HttpResponse, queued: str):
    """Start a run (within the user's rate) and show it; or say why not: on the page the
    action came from, or on the new run's page when it could not be queued."""
    if _rate_limited(request):
        return back
    try:
        run = start()
    except services.FAILURES as failure:
        answer = services.answer_for(failure)
        messages.error(request, answer.message)
        return redirect("frontend:run-detail", answer.run_id) if answer.not_queued else back
    messages.success(request, queued)
    return redirect("frontend:run-detail", run.pk)


def _failed(request: HttpRequest, failure: Exception, run_id: uuid.UUID) -> HttpResponse:
    """Say why, and show the run it is about (the new one, when it could not be queued)."""
    answer = services.answer_for(failure)
    messages.error(request, answer.message)
    return redirect("frontend:run-detail", answer.run_id or run_id)


def _run_or_404(request: HttpRequest, run_id: uuid.UUID) -> Execution:
    return get_object_or_404(Execution.objects.select_related("workflow"), pk=run_id, organization=_org(request))


# --- runs list ------------------------------------------------------------------------------
class RunFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "All statuses"), *[(s, S(s).label) for s in ALL_STATUSES]])
    workflow = forms.ModelChoiceField(queryset=Workflow.objects.none(), required=False, empty_label="All workflows")

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workflow"].queryset = Workflow.objects.filter(organization=organization).order_by("name")


def _encode_cursor(run: Execution) -> str:
    raw = f"{run.created_at.isoformat()}|{run.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, run_id = raw.split("|")
        created = parse_datetime(stamp)
        return (created, uuid.UUID(run_id)) if created else None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def _older_than(runs: QuerySet[Execution], cursor: tuple[datetime, uuid.UUID]) -> QuerySet[Execution]:
    created, run_id = cursor
    return runs.filter(Q(created_at__lt=created) | Q(created_at=created, pk__lt=run_id))


@require_GET
@organization_member
def runs(request: HttpRequest) -> HttpResponse:
    org = _org(request)
    form = RunFilterForm(request.GET or None, organization=org)
    queryset = Execution.objects.filter(organization=org).select_related("workflow")
    if form.is_bound and not form.is_valid():
        queryset = queryset.none()  # an unknown filter value shows its error, never every run
    elif form.is_valid():
        if form.cleaned_data["status"]:
            queryset = queryset.filter(status=form.cleaned_data["status"])
        if form.cleaned_data["workflow"]:
            queryset = queryset.filter(workflow=form.cleaned_data["workflow"])
    cursor = _decode_cursor(request.GET.get("before", ""))
    if cursor:
        queryset = _older_than(queryset, cursor)
    page = list(queryset.order_by("-created_at", "-pk")[: PAGE_SIZE + 1])
    older = None
    if len(page) > PAGE_SIZE:
        page = page[:PAGE_SIZE]
        params = request.GET.copy()
        params["before"] = _encode_cursor(page[-1])
        older = f"?{params.urlencode()}"
    newest = None
    if cursor:
        params = request.GET.copy()
        params.pop("before", None)
        newest = f"?{params.urlencode()}" if params else "?"
    return render(
        request,
        "frontend/runs.html",
        {"form": form, "runs": page, "older_url": older, "newest_url": newest, "organization": org},
    )


# --- run detail and its refresh -------------------------------------------------------------
def _run_context(run: Execution) -> dict:
    steps = list(run.steps.all())
    return {
        "run": run,
        "steps": steps,
        "output": run_output(run, steps),
        "explanation": presentation.explanation(run.status, run.error_type, run.error_code),
        "rerun_notice": rerun_notice(run),
        "resumable": run.status in ERROR_STATUSES,
        "incident": presentation.incident_notice(run),
        "is_terminal": run.is_terminal,
        "in_progress": run.status in IN_PROGRESS,
    }


@require_GET
@organization_member
def run_detail(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    run = _run_or_404(request, run_id)
    context = _run_context(run)
    context.update(
        confirm_resume=request.GET.get("confirm_resume", "") if context["resumable"] else "",
        terminal_statuses=sorted(TERMINAL),
        status_url=reverse("frontend:run-status", args=[run.pk]),
        refresh_ms=settings.CONVEYOR_RUN_REFRESH_MS,
    )
    return render(request, "frontend/run_detail.html", context)


@require_GET
@organization_member
def run_status(request: HttpRequest, run_id: uuid.UUID) -> JsonResponse:
    """What the refreshing page needs: the status and the re-rendered parts of the page."""
    run = _run_or_404(request, run_id)
    context = _run_context(run)
    return JsonResponse(
        {
            "id": str(run.pk),
            "status": run.status,
            "terminal": run.is_terminal,
            "status_html": render_to_string("frontend/_run_status.html", context, request=request),
            "steps_html": render_to_string("frontend/_run_steps.html", context, request=request),
            "outcome_html": render_to_string("frontend/_run_outcome.html", context, request=request),
            "actions_html": render_to_string("frontend/_run_actions.html", context, request=request),
            "io_html": render_to_string("frontend/_run_io.html", context, request=request),
        }
    )


@require_POST
@organization_member
def run_rerun(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    run = _run_or_404(request, run_id)
    start = partial(services.rerun_run, run, actor=_actor(request))
    return _start_a_run(request, start, back=redirect("frontend:run-detail", run.pk), queued="Re-run queued.")


@require_POST
@organization_member
def run_resume(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Resume from the first step that did not succeed; a step that may repeat and is
    not idempotent sends the user back to the run with a confirmation naming it."""
    run = _run_or_404(request, run_id)
    confirmed = request.POST.get("confirm_repeat") == "yes"
    if not confirmed:
        try:
            resume_plan = resume.plan(run)
        except services.ResumeRefused as refused:
            messages.error(request, str(refused))
            return redirect("frontend:run-detail", run.pk)
        if resume_plan.needs_confirmation:
            messages.warning(
                request,
                f"Step {resume_plan.step_id} may already have run and is not declared safe to repeat: "
                "confirm to resume anyway.",
            )
            return redirect(f"{reverse('frontend:run-detail', args=[run.pk])}?confirm_resume={resume_plan.step_id}")
    start = partial(services.resume_run, run, actor=_actor(request), origin="api", confirm_repeat=confirmed)
    return _start_a_run(request, start, back=redirect("frontend:run-detail", run.pk), queued="Resume queued.")


@require_POST
@organization_member
def run_cancel(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    run = _run_or_404(request, run_id)
    try:
        services.cancel_run(run.pk, actor=Actor.API, who=_actor(request))
    except services.FAILURES as failure:
        return _failed(request, failure, run.pk)
    else:
        messages.success(request, "Run cancelled.")
    return redirect("frontend:run-detail", run.pk)


# --- workflows ------------------------------------------------------------------------------
@require_GET
@organization_member
def workflows(request: HttpRequest) -> HttpResponse:
    org = _org(request)
    items = list(Workflow.objects.alive().filter(organization=org).order_by("name"))
    counts = queries.counts_by_workflow(Execution.objects.filter(organization=org))
    rows = [
        {
            "workflow": wf,
            "counts": [(status, counts.get(wf.pk, {}).get(status, 0)) for status in ALL_STATUSES],
        }
        for wf in items
    ]
    return render(request, "frontend/workflows.html", {"rows": rows, "statuses": ALL_STATUSES})


def _workflow_or_404(request: HttpRequest, workflow_id: int) -> Workflow:
    workflow = Workflow.objects.alive().filter(organization=_org(request), pk=workflow_id).first()
    if workflow is None:
        raise Http404("no such workflow")
    return workflow


@require_GET
@organization_member
def workflow_detail(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = _workflow_or_404(request, workflow_id)
    runs_of = Execution.objects.filter(workflow=workflow)
    return render(
        request,
        "frontend/workflow_detail.html",
        {
            "workflow": workflow,
            "recent": queries.recent_runs(runs_of),
            "counts": queries.status_counts(runs_of),
        },
    )


@require_POST
@organization_member
def workflow_run_now(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = _workflow_or_404(request, workflow_id)
    start = partial(services.run_now, workflow, actor=_actor(request))
    return _start_a_run(request, start, back=redirect("frontend:workflow-detail", workflow.pk), queued="Run queued.")
