"""Upgrading keeps existing data untouched: a database at the schema of the last release
(before the layers: models born in `executions` and living there), with rows in every
table, migrates to the current schema, and the same rows are read through the models'
new homes (tenancy.models, workflows.models, executions.models), with the admin URLs
and content types they always had."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

# The last release's leaf migrations (before this change).
PREVIOUS_RELEASE = [
    ("executions", "0003_runs_list_filter_indexes"),
    ("scheduler", "0001_initial"),
    ("reaper", "0001_initial"),
    ("observability", "0001_initial"),
    ("messaging", None),
]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state([target for target in targets if target[1]]).apps


@pytest.fixture
def previous_release():
    apps = migrate(PREVIOUS_RELEASE)
    yield apps
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_rows_written_under_the_previous_schema_are_read_through_the_new_homes(previous_release):
    apps = previous_release
    now = timezone.now()
    Organization = apps.get_model("executions", "Organization")
    Workflow = apps.get_model("executions", "Workflow")
    Execution = apps.get_model("executions", "Execution")
    org = Organization.objects.create(name="Acme", slug="acme", created_at=now)
    apps.get_model("executions", "OrganizationSecret").objects.create(
        organization=org, name="API_KEY", ciphertext="opaque", created_at=now, updated_at=now
    )
    workflow = Workflow.objects.create(
        organization=org,
        name="billing",
        definition={"steps": [{"id": "t", "action": "transform", "config": {"output": 1}}]},
        trigger_type="manual",
        trigger_config={},
        created_at=now,
        updated_at=now,
    )
    run_id = uuid.uuid4()
    run = Execution.objects.create(
        id=run_id,
        workflow=workflow,
        organization=org,
        trigger_type="manual",
        status="system_error",
        error_type="system",
        error_category="infrastructure",
        error_code="P-0005",
        dispatch_key="manual:1",
        created_at=now,
    )
    apps.get_model("executions", "Step").objects.create(
        execution=run, step_id="t", action="transform", position=0, status="success", started_at=now
    )
    apps.get_model("executions", "Transition").objects.create(
        execution=run, from_status="pending", to_status="system_error", actor="reaper", move="fail", at=now
    )
    apps.get_model("scheduler", "ScheduleState").objects.create(
        workflow=workflow, fingerprint="* * * * *|UTC", armed_at=now
    )

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    from executions.models import Execution as CurrentExecution
    from executions.models import Step, Transition
    from scheduler.models import ScheduleState
    from tenancy.models import Organization as CurrentOrganization
    from tenancy.models import OrganizationSecret
    from workflows.models import Workflow as CurrentWorkflow

    assert CurrentOrganization.objects.get(slug="acme").name == "Acme"
    assert OrganizationSecret.objects.get(organization__slug="acme").ciphertext == "opaque"
    current = CurrentWorkflow.objects.get(name="billing")
    assert current.definition["steps"][0]["id"] == "t" and current.organization.slug == "acme"
    moved = CurrentExecution.objects.get(pk=run_id)
    assert (moved.status, moved.error_code, moved.workflow_id, moved.dispatch_key) == (
        "system_error",
        "P-0005",
        current.pk,
        "manual:1",
    )
    assert moved.customer_message.endswith("(reference P-0005)")
    assert Step.objects.get(execution=moved).step_id == "t"
    assert Transition.objects.get(execution=moved).actor == "reaper"
    assert ScheduleState.objects.get(workflow=current).fingerprint == "* * * * *|UTC"
    # The models kept their app label: same tables, content types and admin URLs.
    for model, table in ((CurrentOrganization, "executions_organization"), (CurrentWorkflow, "executions_workflow")):
        assert model._meta.db_table == table
        assert ContentType.objects.get_for_model(model).app_label == "executions"
    assert (
        reverse("admin:executions_workflow_change", args=[current.pk])
        == f"/admin/executions/workflow/{current.pk}/change/"
    )
    assert reverse("admin:executions_organization_changelist") == "/admin/executions/organization/"
