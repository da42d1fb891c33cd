"""In headless Chromium: the admin's runs list and the organization's runs page render
(styles, badges, filters, the tooltip) and are captured as screenshots; with
CONVEYOR_SAVE_SCREENSHOTS=1 they are saved as docs/admin-runs.png and docs/runs-page.png."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from failures.catalogue import ErrorCategory
from tests.factories import make_execution, make_org, make_workflow
from tests.ui import browser_page, live_server, log_in, member

pytestmark = [pytest.mark.django_db(transaction=True)]
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture
def out_dir(tmp_path) -> Path:
    return DOCS if os.environ.get("CONVEYOR_SAVE_SCREENSHOTS") == "1" else tmp_path


@pytest.fixture
def showcase():
    org = make_org("acme")
    user = member(org, username="alice")
    billing, sync, nightly = (make_workflow(org, name=n) for n in ("billing-webhook", "crm-sync", "nightly-report"))
    now = timezone.now()
    system = {"error_type": "system", "error_category": ErrorCategory.INFRASTRUCTURE}
    rows = [
        (billing, "running", {}),
        (sync, "pending", {}),
        (nightly, "success", {"duration_ms": 2140}),
        (billing, "system_error", {**system, "error_code": "P-0005", "duration_ms": 900_012}),
        (sync, "error", {"error_type": "user", "error_category": "workflow", "duration_ms": 312}),
        (billing, "success", {"duration_ms": 1804}),
        (nightly, "system_error", {**system, "error_code": "P-0003", "duration_ms": 64_210}),
        (sync, "cancelled", {"duration_ms": 4020}),
        (billing, "error", {"error_type": "external", "error_category": "external_service", "duration_ms": 15_003}),
        (nightly, "skipped", {}),
        (billing, "system_error", {**system, "error_code": "MS-0001", "duration_ms": 31}),
        (sync, "success", {"duration_ms": 998}),
    ]
    for i, (workflow, status, fields) in enumerate(rows):
        make_execution(workflow, status=status, created_at=now - timedelta(minutes=3 * i), **fields)
    return user


def test_the_admin_runs_list_and_the_runs_page_render_and_are_captured(showcase, out_dir):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser(username="operator", password="pw-for-tests-only", email="")
    with live_server() as url, browser_page(width=1600, height=900) as page:
        page.goto(f"{url}/admin/login/?next=/admin/executions/execution/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", "pw-for-tests-only")
        page.click("input[type=submit]")
        page.wait_for_selector("#result_list")
        assert page.locator("#result_list .cv-badge-system_error").count() == 3
        assert page.locator("#changelist-filter").is_visible()
        page.screenshot(path=str(out_dir / "admin-runs.png"), full_page=True)

        page.context.clear_cookies()
        log_in(page, url, showcase.username)
        page.locator("tr.cv-run .cv-badge-system_error").first.hover()
        page.locator("tr.cv-run [role=tooltip]").first.wait_for(state="visible")
        page.wait_for_timeout(300)  # past the tooltip's fade-in
        page.screenshot(path=str(out_dir / "runs-page.png"), full_page=True)

    for name in ("admin-runs.png", "runs-page.png"):
        assert (out_dir / name).stat().st_size > 10_000, name
