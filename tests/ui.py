"""Helpers of the interface tests (API, admin, pages): clients logged in as a user of an
organization."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tenancy.models import Organization
from tests.factories import make_org, make_user

PASSWORD = "pw-for-tests-only"


def api_client(user) -> APIClient:
    """An API client authenticated the way customers are: with the user's token."""
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def member(org: Organization | None = None, **kwargs):
    return make_user(org or make_org(), **kwargs)


def staff_client(username: str = "operator") -> tuple[Client, object]:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_superuser(username=username, password=PASSWORD, email="")
    client = Client()
    client.force_login(user)
    return client, user


@contextlib.contextmanager
def live_server() -> Iterator[str]:
    """A live server in a thread of the test process, for one test; yields its base URL.

    Unlike pytest-django's `live_server`, it changes no setting (127.0.0.1 is already an
    allowed host), so it composes with the `producer_app` fixture, which re-evaluates the
    settings module. Needs a transactional database (the server's threads see only
    committed rows)."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.servers.basehttp import ThreadedWSGIServer
    from django.test.testcases import LiveServerThread

    class JoiningServer(ThreadedWSGIServer):
        # Closing the server waits for its request threads, which close their database
        # connections, so the test database can be flushed and dropped after it.
        daemon_threads = False
        block_on_close = True

    class ServerThread(LiveServerThread):
        server_class = JoiningServer

    thread = ServerThread("127.0.0.1", static_handler=StaticFilesHandler, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    try:
        yield f"http://127.0.0.1:{thread.port}"
    finally:
        thread.terminate()


CHROMIUM = "/usr/bin/chromium"  # Debian's chromium: never `playwright install`
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def browser_page(*, width: int = 1280, height: int = 900):
    """A headless Chromium page (Playwright driving the system browser).

    Playwright's sync API runs an event loop in this thread, which makes Django refuse
    ORM calls from it ("async context"): the test's own database calls are synchronous
    and safe, so DJANGO_ALLOW_ASYNC_UNSAFE is set while the browser is open."""
    import os

    from django.db import connections
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.set_default_timeout(10_000)
                yield page
            finally:
                browser.close()
                # ORM calls made while Playwright's loop runs get connections of their own
                # (asgiref sees an async context): close them here, in that context.
                connections.close_all()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def log_in(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    """Log in through the organization's login form."""
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/runs/")
