"""Small builders for the model graph (no factory library: a few functions suffice)."""

from __future__ import annotations

import uuid

from django.contrib.auth import get_user_model
from django.utils import timezone

from executions.models import Execution
from failures.statuses import ExecutionStatus, TriggerType
from tenancy.models import Member, Organization
from workflows.models import Workflow

NOOP_DEFINITION = {"steps": [{"id": "noop", "action": "transform", "config": {"output": {"ok": True}}}]}


def make_org(slug: str | None = None) -> Organization:
    slug = slug or f"org-{uuid.uuid4().hex[:8]}"
    return Organization.objects.create(name=slug.title(), slug=slug)


def make_user(org: Organization, username: str | None = None, *, staff: bool = False):
    user = get_user_model().objects.create_user(
        username=username or f"user-{uuid.uuid4().hex[:8]}", password="pw-for-tests-only", is_staff=staff
    )
    Member.objects.create(user=user, organization=org)
    return user


def make_workflow(org: Organization | None = None, *, definition: dict | None = None, **fields) -> Workflow:
    org = org or make_org()
    return Workflow.objects.create(
        organization=org, name=fields.pop("name", "wf"), definition=definition or NOOP_DEFINITION, **fields
    )


def make_execution(workflow: Workflow | None = None, *, status: str = ExecutionStatus.PENDING, **fields) -> Execution:
    workflow = workflow or make_workflow()
    now = timezone.now()
    fields.setdefault("queued_at", now)
    return Execution.objects.create(
        workflow=workflow,
        organization=workflow.organization,
        workflow_version=workflow.version,
        trigger_type=fields.pop("trigger_type", TriggerType.MANUAL),
        status=status,
        **fields,
    )
