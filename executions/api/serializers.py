"""What the API shows. A customer sees the customer-facing error of a run and of its
steps, never the internal message, the classifier rule, the worker's host, a claim token
or anything a system error's stored text may hold (a stack trace, SQL, a host name)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from executions.models import Execution, Step
from executions.outputs import run_output
from executions.presentation import incident_notice, rerun_notice, step_error_text
from failures.errors import InvalidDefinition
from failures.statuses import ALL_STATUSES, ERROR_STATUSES, TERMINAL, ErrorType, ExecutionStatus, TriggerType
from workflows.definitions import runtime_problems, validate_definition
from workflows.models import Runtime, Workflow
from workflows.triggers import WORKFLOW_TRIGGERS, InvalidTrigger, validate_trigger

S = ExecutionStatus


class WorkflowSerializer(serializers.ModelSerializer):
    trigger_type = serializers.ChoiceField(
        choices=[(t, TriggerType(t).label) for t in WORKFLOW_TRIGGERS], default=TriggerType.MANUAL
    )
    trigger_config = serializers.JSONField(required=False, default=dict)
    definition = serializers.JSONField(
        help_text='{"steps": [{"id": ..., "action": ..., "config": {...}}]}; errors are keyed like steps[1].config.url'
    )
    runtime = serializers.ChoiceField(choices=[("", "platform default"), *Runtime.choices], required=False)

    class Meta:
        model = Workflow
        fields = (
            "id",
            "name",
            "description",
            "enabled",
            "trigger_type",
            "trigger_config",
            "definition",
            "version",
            "runtime",
            "concurrency_limit",
            "deadline_seconds",
            "system_retry_max_attempts",
            "system_retry_backoff_seconds",
            "system_retry_resume",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("id", "version", "created_at", "updated_at")

    def validate_definition(self, value):
        try:
            return validate_definition(value)
        except InvalidDefinition as exc:
            # One entry per problem, keyed by where it is: {"steps[1].config.url": [...]}.
            raise serializers.ValidationError({key: [message] for key, message in exc.errors.items()}) from None

    def validate(self, attrs):
        definition = attrs.get("definition", getattr(self.instance, "definition", None))
        runtime = attrs.get("runtime", getattr(self.instance, "runtime", "")) or settings.DEFAULT_RUNTIME
        if isinstance(definition, dict) and isinstance(definition.get("steps"), list):
            # A database callable under the isolated runtime (decision 0013).
            problems = runtime_problems(definition["steps"], runtime)
            if problems:
                raise serializers.ValidationError({"definition": {key: [message] for key, message in problems.items()}})
        trigger_type = attrs.get("trigger_type", getattr(self.instance, "trigger_type", TriggerType.MANUAL))
        trigger_config = attrs.get("trigger_config", getattr(self.instance, "trigger_config", {}))
        try:
            attrs["trigger_config"] = validate_trigger(trigger_type, trigger_config)
        except InvalidTrigger as exc:
            errors: dict[str, list[str]] = {}
            config_errors: dict[str, list[str]] = {}
            for key, message in exc.errors.items():
                if key.startswith("trigger_config."):
                    config_errors[key.removeprefix("trigger_config.")] = [message]
                else:
                    errors.setdefault(key, []).append(message)
            detail: dict[str, object] = {**errors, **({"trigger_config": config_errors} if config_errors else {})}
            raise serializers.ValidationError(detail) from None  # type: ignore[arg-type]
        return attrs


class RunErrorSerializer(serializers.Serializer):
    """A failed run's error as its organization sees it."""

    type = serializers.CharField(help_text="user, external or system")
    category = serializers.CharField()
    code = serializers.CharField(help_text="PREFIX-NNNN for a system error, empty otherwise")
    message = serializers.CharField(help_text="customer-facing: a system error's catalogue text and code")
    safe_to_rerun = serializers.BooleanField(help_text="true only when the run provably did no work")
    cause_code = serializers.CharField(
        help_text="E-0002 (a step used up its retries): the last attempt's own code; empty otherwise"
    )


def run_error(execution: Execution) -> dict | None:
    if execution.status not in ERROR_STATUSES or not execution.error_type:
        return None
    return {
        "type": execution.error_type,
        "category": execution.error_category,
        "code": execution.error_code,
        "message": execution.customer_message,
        "safe_to_rerun": execution.safe_to_rerun,
        "cause_code": execution.error_cause_code,
    }


class RunSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=[(s, S(s).label) for s in ALL_STATUSES], read_only=True)
    status_label = serializers.SerializerMethodField()
    workflow_name = serializers.CharField(source="workflow.name", read_only=True)
    terminal = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()

    class Meta:
        model = Execution
        fields: tuple[str, ...] = (
            "id",
            "workflow",
            "workflow_name",
            "workflow_version",
            "status",
            "status_label",
            "terminal",
            "trigger_type",
            "error",
            "attempt",
            "rerun_of",
            "created_at",
            "queued_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "steps_total",
            "steps_started",
            "steps_succeeded",
            "steps_failed",
        )
        read_only_fields: tuple[str, ...] = fields

    def get_status_label(self, obj: Execution) -> str:
        return S(obj.status).label

    def get_terminal(self, obj: Execution) -> bool:
        return obj.status in TERMINAL

    @extend_schema_field(RunErrorSerializer(allow_null=True))
    def get_error(self, obj: Execution) -> dict | None:
        return run_error(obj)


class StepSerializer(serializers.ModelSerializer):
    error = serializers.SerializerMethodField()
    duration_ms = serializers.SerializerMethodField()

    class Meta:
        model = Step
        fields = (
            "step_id",
            "action",
            "position",
            "status",
            "started_at",
            "finished_at",
            "duration_ms",
            "output",
            "error",
            "reused",
            "attempts",
        )
        read_only_fields = fields

    attempts = serializers.SerializerMethodField(
        help_text="a step with a retry policy: one entry per attempt (null otherwise); a system error's text is "
        "internal and left out"
    )

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_attempts(self, obj: Step) -> list[dict] | None:
        if obj.attempts is None:
            return None
        shown = ("attempt", "started_at", "finished_at", "outcome", "error_type", "error_code", "retry_in_s")
        entries = []
        for record in obj.attempts:
            entry = {name: record.get(name) for name in shown if name in record}
            if record.get("error_type") in (ErrorType.USER, ErrorType.EXTERNAL):
                entry["error_message"] = record.get("error_message", "")
            entries.append(entry)
        return entries

    @extend_schema_field(OpenApiTypes.STR)
    def get_error(self, obj: Step) -> str | None:
        if not obj.error_type:
            return None
        run = self.context.get("run")
        # A system error's step text is internal: the run's customer message instead.
        return step_error_text(obj.error_type, obj.error_message, run.customer_message if run else "")

    @extend_schema_field(OpenApiTypes.INT)
    def get_duration_ms(self, obj: Step) -> int | None:
        if obj.finished_at is None:
            return None
        return max(0, int((obj.finished_at - obj.started_at).total_seconds() * 1000))


class RunIncidentSerializer(serializers.Serializer):
    """The platform incident a run was part of: when it started and was resolved, and the
    sentence the pages show. No internal text (title, notes, codes) reaches the API."""

    started_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    ongoing = serializers.BooleanField()
    notice = serializers.CharField()


class RunDetailSerializer(RunSerializer):
    output = serializers.SerializerMethodField()
    steps = serializers.SerializerMethodField()
    rerun_notice = serializers.SerializerMethodField()
    incident = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = (*RunSerializer.Meta.fields, "input", "output", "rerun_notice", "resumed_from", "incident", "steps")
        read_only_fields = fields

    resumed_from = serializers.SerializerMethodField(help_text='a resume: "resumed from <run> at step <id>"')

    def get_rerun_notice(self, obj: Execution) -> str:
        return rerun_notice(obj)

    @extend_schema_field(
        {
            "nullable": True,
            "description": 'the run\'s output, {"steps": {step id: output}, "result": the last output}; '
            "null until the run succeeds",
        }
    )
    def get_output(self, obj: Execution) -> object:
        # Put together from the step rows, where each output is stored (executions/outputs.py).
        return run_output(obj, obj.steps.all())

    def get_resumed_from(self, obj: Execution) -> str:
        return obj.resumed_notice

    @extend_schema_field(RunIncidentSerializer(allow_null=True))
    def get_incident(self, obj: Execution) -> dict | None:
        found = incident_notice(obj)
        return found.as_data() if found is not None else None

    @extend_schema_field(StepSerializer(many=True))
    def get_steps(self, obj: Execution) -> list[dict]:
        steps = StepSerializer(obj.steps.all(), many=True, context={**self.context, "run": obj})
        return list(steps.data)


class TriggerRunSerializer(serializers.Serializer):
    input = serializers.DictField(required=False, default=dict, help_text="the run's input (a JSON object)")


class RunAcceptedSerializer(serializers.Serializer):
    run_id = serializers.UUIDField()
    status = serializers.CharField()


class RerunAcceptedSerializer(RunAcceptedSerializer):
    rerun_of = serializers.UUIDField()


class RunNotQueuedSerializer(serializers.Serializer):
    run_id = serializers.UUIDField()
    error = serializers.CharField(help_text="customer-facing: the platform could not queue the run")


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class ResumeRequestSerializer(serializers.Serializer):
    confirm_repeat = serializers.BooleanField(
        default=False,
        help_text="resume even though the interrupted step may already have run and is not idempotent",
    )


class ResumeAcceptedSerializer(RerunAcceptedSerializer):
    resume_step = serializers.CharField(help_text="the step the resume starts at")


class ResumeRefusedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    step_id = serializers.CharField(required=False, help_text="confirmation needed: the step that may repeat")
    confirm_with = serializers.DictField(required=False)
