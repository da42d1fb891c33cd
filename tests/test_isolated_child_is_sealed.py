"""The isolated runtime's child holds nothing of the platform: read from /proc while its
step blocks, its environment has none of the worker's secrets or connection strings and
its descriptors are its pipes and its stderr file, no socket (so no PostgreSQL or SQS
connection). It never loads the platform's settings, and it is handed only the secrets
its workflow's templates reference (docs/decisions/0013)."""

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from executions.enqueue import enqueue
from executions.models import Execution
from executions.outputs import run_output
from pipeline.forkserver import ENVIRONMENT_ALLOW_LIST, sealed_environment
from pipeline.runtimes import child_payload
from pipeline.supervision import load_claimed
from tenancy.cipher import encrypt
from tenancy.models import OrganizationSecret
from tests.e2e import running_with_step, supervisor_pids, wait_for, wait_status
from tests.factories import make_execution, make_org, make_workflow
from workflows.runtime_settings import NAMES

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

USED, UNUSED = "used-secret-4f1c9a7e", "unused-secret-9b2d6e30"
ADMIN_PASSWORD = "admin-password-73a1c5"
HOLDING = {
    "steps": [
        {"id": "token", "action": "transform", "config": {"output": {"auth": "Bearer {{ secrets.USED }}"}}},
        {"id": "hold", "action": "delay", "config": {"seconds": 6}},
    ]
}


def _org_with_secrets():
    org = make_org()
    for name, value in (("USED", USED), ("UNUSED", UNUSED)):
        OrganizationSecret.objects.create(organization=org, name=name, ciphertext=encrypt(value))
    return org


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def _descriptors(pid: int) -> dict[int, str]:
    fds = {}
    for entry in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds[int(entry)] = os.readlink(f"/proc/{pid}/fd/{entry}")
        except FileNotFoundError:
            pass  # closed meanwhile
    return fds


SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL|DATABASE_URL")


def _platform_secrets(worker_pid: int) -> dict[str, str]:
    """Every secret of the worker's environment (keys, passwords, credentials, the
    database URL): none of these values may reach a child."""
    return {name: value for name, value in _environ(worker_pid).items() if SECRET_NAME.search(name) and value}


def test_a_running_isolated_child_holds_no_platform_secret_connection_or_unreferenced_secret(pipeline):
    worker = pipeline.worker(CONVEYOR_ADMIN_PASSWORD=ADMIN_PASSWORD)
    org = _org_with_secrets()
    execution = enqueue(make_workflow(org, definition=HOLDING), trigger_type="manual").execution
    wait_for(lambda: running_with_step(execution.pk), timeout=30)
    _, child = supervisor_pids(execution.pk)
    assert child is not None
    forbidden = _platform_secrets(worker.pid)
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY", "CONVEYOR_SECRETS_ENCRYPTION_KEYS", "AWS_SECRET_ACCESS_KEY"} <= set(
        forbidden
    )
    assert forbidden["CONVEYOR_ADMIN_PASSWORD"] == ADMIN_PASSWORD

    environ = _environ(child)
    fds = _descriptors(child)
    raw_environ = Path(f"/proc/{child}/environ").read_bytes().decode()

    assert set(environ) <= {*ENVIRONMENT_ALLOW_LIST, "PYTHONPATH", "PYTHONDONTWRITEBYTECODE"}, environ
    leaked = [name for name, value in forbidden.items() if value in raw_environ]
    assert not leaked, f"the child's environment holds {leaked}"
    assert USED not in raw_environ and UNUSED not in raw_environ
    sockets = {fd: target for fd, target in fds.items() if target.startswith("socket:")}
    assert not sockets, f"the child holds sockets {sockets} (a database or broker connection)"
    # Its input pipe, its output pipe, its stderr file: 0 in; 1, 2 stderr; 3 out.
    assert {0, 1, 2, 3} <= set(fds), fds
    assert fds[0].startswith("pipe:") and fds[3].startswith("pipe:"), fds
    extra = {fd: t for fd, t in fds.items() if fd > 3 and not t.startswith(("anon_inode:[pidfd]", "pipe:"))}
    assert not extra, f"the child inherited {extra}"

    done = wait_status(execution.pk, timeout=60)
    assert done.status == "success", done.error_message
    assert run_output(done)["steps"]["token"] == {"auth": "Bearer ***"}


def test_the_child_is_handed_the_referenced_secrets_only_and_no_platform_setting(settings):
    org = _org_with_secrets()
    execution = make_execution(make_workflow(org, definition=HOLDING))
    claimed = load_claimed(Execution.objects.select_related("workflow").get(pk=execution.pk), uuid.uuid4())

    payload = child_payload(claimed)
    text = json.dumps(payload)

    assert payload["context"]["secrets"] == {"USED": USED}
    assert UNUSED not in text
    for value in (
        django_settings.SECRET_KEY,
        django_settings.MESSAGE_SIGNING_KEY,
        *django_settings.SECRETS_ENCRYPTION_KEYS,
        django_settings.DATABASES["default"]["NAME"],
    ):
        assert value and value not in text
    assert set(payload["settings"]) == set(NAMES)


def test_the_fork_server_loads_the_engine_and_actions_without_django_settings(tmp_path):
    """What a forked child inherits: the engine and every action imported, Django's
    settings never configured, config.settings never imported."""
    probe = (
        "import sys; from pipeline import forkserver; forkserver._preload(['tests.callables']);"
        "from django.conf import settings; import json;"
        "print(json.dumps({'configured': settings.configured, 'platform': 'config.settings' in sys.modules,"
        "'engine': 'workflows.engine' in sys.modules, 'http': 'workflows.actions.http' in sys.modules}))"
    )
    env = sealed_environment(str(django_settings.BASE_DIR), os.environ)
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=django_settings.BASE_DIR, capture_output=True, check=True
    )
    assert json.loads(out.stdout) == {"configured": False, "platform": False, "engine": True, "http": True}
