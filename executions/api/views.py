"""The REST API views. Every queryset starts from the caller's organization, so another
organization's workflow or run answers 404 exactly like one that does not exist."""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from executions import notify, services
from executions.api.filters import RunFilter
from executions.api.permissions import IsOrganizationMember
from executions.api.serializers import (
    DetailSerializer,
    RerunAcceptedSerializer,
    ResumeAcceptedSerializer,
    ResumeRefusedSerializer,
    ResumeRequestSerializer,
    RunAcceptedSerializer,
    RunDetailSerializer,
    RunNotQueuedSerializer,
    RunSerializer,
    TriggerRunSerializer,
    WorkflowSerializer,
)
from executions.api.throttling import TriggerRateThrottle
from executions.models import Execution
from failures.statuses import TERMINAL, Actor
from tenancy.members import organization_of
from tenancy.models import Organization
from workflows.models import Workflow

WAIT_MAX_S = 30.0


class NewestFirstCursorPagination(CursorPagination):
    """Keyset pagination, newest first: a page costs the same on page 1 and page 10,000
    and never counts the table."""

    ordering = ("-created_at", "-pk")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int:
        # DRF ignores a page_size it cannot read and clamps one past the maximum; a clear
        # 400 tells the caller what the schema says instead.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError(
                {self.page_size_query_param: [f"must be a whole number from 1 to {self.max_page_size}"]}
            )
        return int(raw)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
                parameter["description"] = f"runs per page, 1 to {self.max_page_size} (default {self.page_size})"
        return parameters


class OrganizationScoped(GenericAPIView):
    permission_classes = (IsAuthenticated, IsOrganizationMember)

    @property
    def organization(self) -> Organization:
        org = organization_of(self.request.user)
        assert org is not None  # IsOrganizationMember ran first
        return org

    def actor_name(self) -> str:
        return f"api:{self.request.user.get_username()}"


def _failed(failure: services.ActionRefused | services.EnqueueFailed) -> Response:
    answer = services.answer_for(failure)
    if answer.not_queued:
        return Response({"run_id": str(answer.run_id), "error": answer.message}, status=answer.status)
    return Response({"detail": answer.message}, status=answer.status)


def _accepted(execution: Execution, **extra) -> Response:
    body = {"run_id": str(execution.pk), "status": execution.status, **extra}
    response = Response(body, status=status.HTTP_202_ACCEPTED)
    response["Location"] = reverse("api:run-detail", kwargs={"pk": execution.pk})
    return response


@extend_schema_view(
    list=extend_schema(summary="List the organization's workflows"),
    create=extend_schema(summary="Create a workflow (the definition is validated, errors per field)"),
    retrieve=extend_schema(summary="A workflow"),
    update=extend_schema(summary="Replace a workflow"),
    partial_update=extend_schema(summary="Change a workflow"),
    destroy=extend_schema(summary="Delete a workflow (soft delete: its runs keep it)"),
)
class WorkflowViewSet(OrganizationScoped, viewsets.ModelViewSet):
    serializer_class = WorkflowSerializer
    lookup_value_regex = "[0-9]+"
    pagination_class = NewestFirstCursorPagination

    def get_queryset(self) -> QuerySet[Workflow]:
        return Workflow.objects.alive().filter(organization=self.organization)

    def perform_create(self, serializer) -> None:
        serializer.save(organization=self.organization)

    def perform_destroy(self, instance: Workflow) -> None:
        instance.deleted_at = timezone.now()
        instance.save(update_fields=["deleted_at", "updated_at"])

    @extend_schema(
        summary="Run the workflow now",
        request=TriggerRunSerializer,
        responses={
            202: RunAcceptedSerializer,
            409: OpenApiResponse(DetailSerializer, description="the workflow is disabled"),
            429: OpenApiResponse(DetailSerializer, description="rate limited"),
            503: OpenApiResponse(RunNotQueuedSerializer, description="the run could not be queued"),
        },
    )
    @action(detail=True, methods=["post"], url_path="runs", url_name="runs")
    def trigger(self, request: Request, pk=None) -> Response:
        workflow = self.get_object()
        body = TriggerRunSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            execution = services.run_now(workflow, actor=self.actor_name(), input=body.validated_data["input"])
        except services.FAILURES as failure:
            return _failed(failure)
        return _accepted(execution)

    def get_throttles(self):
        if self.action == "trigger":
            return [TriggerRateThrottle()]
        return super().get_throttles()


RUN_LOOKUP = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="the run's id")


@extend_schema_view(
    list=extend_schema(summary="List the organization's runs"),
    retrieve=extend_schema(summary="A run, its steps and its customer-facing error", parameters=[RUN_LOOKUP]),
)
class RunViewSet(OrganizationScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    pagination_class = NewestFirstCursorPagination
    lookup_value_regex = "[0-9a-fA-F-]{36}"
    filter_backends = (DjangoFilterBackend,)
    filterset_class = RunFilter

    def filter_queryset(self, queryset):
        # The filters are the list's; a run's own endpoints ignore them.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def get_throttles(self):
        if self.action in ("rerun", "resume"):
            return [TriggerRateThrottle()]
        return super().get_throttles()

    def get_serializer_class(self):
        return RunSerializer if self.action == "list" else RunDetailSerializer

    def get_queryset(self) -> QuerySet[Execution]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the filters' model
            return Execution.objects.none()
        queryset = Execution.objects.filter(organization=self.organization).select_related("workflow")
        if self.action == "list":
            return queryset
        return queryset.prefetch_related("steps")

    def get_object(self) -> Execution:
        try:
            uuid.UUID(str(self.kwargs["pk"]))
        except ValueError:
            raise Http404("no such run") from None
        return super().get_object()

    @extend_schema(
        summary="Re-run a finished run",
        request=None,
        parameters=[RUN_LOOKUP],
        responses={
            202: RerunAcceptedSerializer,
            409: OpenApiResponse(DetailSerializer, description="the run is not finished or its workflow cannot run"),
            429: OpenApiResponse(DetailSerializer, description="rate limited"),
            503: OpenApiResponse(RunNotQueuedSerializer, description="the new run could not be queued"),
        },
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, pk=None) -> Response:
        execution = self.get_object()
        try:
            child = services.rerun_run(execution, actor=self.actor_name())
        except services.FAILURES as failure:
            return _failed(failure)
        return _accepted(child, rerun_of=str(execution.pk))

    @extend_schema(
        summary="Resume a failed run from the first step that did not succeed",
        description="The steps that succeeded are reused (not run again); the resumed steps send the original "
        "run's Idempotency-Key. If the interrupted step may already have run and is not idempotent, the answer is "
        '409 naming it unless the body says {"confirm_repeat": true}.',
        request=ResumeRequestSerializer,
        parameters=[RUN_LOOKUP],
        responses={
            202: ResumeAcceptedSerializer,
            409: OpenApiResponse(
                ResumeRefusedSerializer, description="not a failed run, definition changed, or confirmation needed"
            ),
            429: OpenApiResponse(DetailSerializer, description="rate limited"),
            503: OpenApiResponse(RunNotQueuedSerializer, description="the new run could not be queued"),
        },
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk=None) -> Response:
        execution = self.get_object()
        # A body that is not an object is a 400 naming it, never read as "no options".
        body = ResumeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            child = services.resume_run(
                execution,
                actor=self.actor_name(),
                origin="api",
                confirm_repeat=body.validated_data["confirm_repeat"],
            )
        except services.ResumeNeedsConfirmation as refused:
            return Response(
                {"detail": str(refused), "step_id": refused.step_id, "confirm_with": {"confirm_repeat": True}},
                status=status.HTTP_409_CONFLICT,
            )
        except services.FAILURES as failure:
            return _failed(failure)
        return _accepted(child, rerun_of=str(execution.pk), resume_step=child.resume_step)

    @extend_schema(
        summary="Cancel a pending or running run (a running run's runtime is stopped)",
        request=None,
        parameters=[RUN_LOOKUP],
        responses={200: RunSerializer, 409: OpenApiResponse(DetailSerializer, description="already finished")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        execution = self.get_object()
        try:
            services.cancel_run(execution.pk, actor=Actor.API, who=self.actor_name())
        except services.FAILURES as failure:
            return _failed(failure)
        execution.refresh_from_db()
        return Response(RunSerializer(execution).data)

    @extend_schema(
        summary="Wait until the run is finished, or until the timeout (at most 30 s)",
        parameters=[
            RUN_LOOKUP,
            OpenApiParameter(
                "timeout",
                OpenApiTypes.NUMBER,
                description=f"seconds to wait (default and maximum {WAIT_MAX_S:.0f}); "
                "the answer's `terminal` says whether the run finished",
            ),
        ],
        responses={200: RunDetailSerializer},
    )
    @action(detail=True, methods=["get"])
    def wait(self, request: Request, pk=None) -> Response:
        execution = self.get_object()
        timeout = _wait_timeout(request.query_params.get("timeout"))
        deadline = time.monotonic() + timeout
        current = execution.status
        if current not in TERMINAL and timeout > 0:
            with notify.waiting_on(execution.pk) as waiter:
                # Read again once subscribed: a terminal write committed between the read
                # above and the subscription is seen here, one after it is notified
                # (executions/notify.py). Then one read per wake-up: the whole run after
                # a notification, its status after a poll interval.
                current = self._status(execution, current)
                while current not in TERMINAL and (remaining := deadline - time.monotonic()) > 0:
                    if waiter.wait(remaining):
                        execution = self.get_queryset().get(pk=execution.pk)
                        current = execution.status
                    else:
                        current = self._status(execution, current)
        if current != execution.status:
            execution = self.get_queryset().get(pk=execution.pk)
        return Response(RunDetailSerializer(execution).data)

    @staticmethod
    def _status(execution: Execution, last: str) -> str:
        return Execution.objects.filter(pk=execution.pk).values_list("status", flat=True).first() or last


def _wait_timeout(raw: str | None) -> float:
    if raw in (None, ""):
        return min(settings.CONVEYOR_WAIT_DEFAULT_S, WAIT_MAX_S)
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError({"timeout": ["must be a number of seconds"]}) from None
    if value != value or value < 0:  # NaN or negative
        raise ValidationError({"timeout": ["must be a number of seconds, 0 or more"]})
    return min(value, WAIT_MAX_S)
