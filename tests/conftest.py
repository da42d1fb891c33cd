"""Shared fixtures. End-to-end ones (real moto, proxy, worker and beat processes) come
from tests/harness; see bench/README.md and tests/test_harness_smoke.py for their use.

    moto_endpoint            session   "http://127.0.0.1:<port>" of moto's SQS server (own process)
    sqs_proxy                function  TcpProxy in front of moto: .url, .cut(), .restore()
    sqs_queues               function  SqsQueues: fresh <prefix>runs/maintenance/dead-letter on moto
    queue_prefix             function  that prefix, e.g. "t1a2b3c4d-"
    worker_env               function  env overrides for worker/beat processes (test DB, proxy, prefix)
    producer_app             function  config.celery.app, with the test process set to worker_env
    celery_processes         function  CeleryProcesses: .start_worker(...), .start_beat(...); all
                                       killed at teardown, logs printed if the test failed

``@pytest.mark.sqs_visibility_timeout(n)`` sets the visibility timeout of the test's queues
(default 30 s): an existing queue keeps its own, kombu's option does not apply to it.
"""

from __future__ import annotations

import pytest

from tests.harness.moto_server import MotoServer
from tests.harness.processes import (
    CeleryProcesses,
    build_worker_env,
    database_url_from_settings,
    settings_for_worker_env,
)
from tests.harness.sqs import SqsQueues, new_prefix
from tests.harness.tcp_proxy import TcpProxy

DEFAULT_VISIBILITY_TIMEOUT_S = 30


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sqs_visibility_timeout(seconds): visibility timeout of the test's fresh SQS queues"
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"harness_report_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The production hasher costs ~0.5 s a password on these machines, by design; tests
    # that make users or sign in would spend minutes on it and learn nothing more.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    # The wait endpoint's listener holds a connection to the test database of its own;
    # it must be closed before pytest-django drops that database.
    yield
    from executions.notify import listener

    listener.stop()


def _test_failed(request) -> bool:
    report = getattr(request.node, "harness_report_call", None)
    return report is None or report.failed


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    server = MotoServer(log_path=tmp_path_factory.mktemp("moto") / "moto.log").start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def sqs_proxy(moto_endpoint):
    host, port = moto_endpoint.rsplit("//", 1)[1].split(":")
    with TcpProxy(host, int(port)) as proxy:
        yield proxy


@pytest.fixture
def sqs_queues(request, moto_endpoint):
    marker = request.node.get_closest_marker("sqs_visibility_timeout")
    visibility_timeout = int(marker.args[0]) if marker else DEFAULT_VISIBILITY_TIMEOUT_S
    queues = SqsQueues(moto_endpoint, new_prefix(), visibility_timeout=visibility_timeout).create()
    yield queues
    queues.delete_all()


@pytest.fixture
def queue_prefix(sqs_queues):
    return sqs_queues.prefix


@pytest.fixture
def worker_env(sqs_proxy, queue_prefix, sqs_queues, transactional_db):
    from django.conf import settings

    return build_worker_env(
        database_url=database_url_from_settings(settings.DATABASES["default"]),
        sqs_endpoint_url=sqs_proxy.url,
        queue_prefix=queue_prefix,
        visibility_timeout=sqs_queues.visibility_timeout,
    )


@pytest.fixture
def producer_app(worker_env):
    with settings_for_worker_env(worker_env) as app:
        yield app


@pytest.fixture
def celery_processes(request, tmp_path, worker_env, producer_app):
    processes = CeleryProcesses(tmp_path / "celery", default_env=worker_env)
    yield processes
    survivors = processes.stop_all()
    if _test_failed(request) and processes.started:
        print(processes.logs())
    assert not survivors, f"processes left behind: {survivors}"


# The end-to-end pipeline fixture (tests/e2e.py), available to every test module.
from tests.e2e import pipeline  # noqa: E402, F401
