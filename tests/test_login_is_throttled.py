"""Failed sign-ins are throttled (django-axes) on the runs pages and the admin: after
CONVEYOR_LOGIN_FAILURE_LIMIT failures for one username from one address, that pair is
refused — right password included — with a 429 page that says why and for how long, until
the cool-off has passed. Other addresses and other users are unaffected. Real requests to
the real login views; time moved with time-machine."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from frontend.metrics import LOGIN_LOCKOUTS
from tests.ui import PASSWORD, member

pytestmark = pytest.mark.django_db

LOGIN_PAGES = {"runs": "/login/", "admin": "/admin/login/"}
LIMIT = 5  # CONVEYOR_LOGIN_FAILURE_LIMIT's default


@pytest.fixture(params=sorted(LOGIN_PAGES))
def site(request):
    return request.param


@pytest.fixture
def user(site):
    if site == "admin":
        return get_user_model().objects.create_superuser(username="ops", password=PASSWORD, email="")
    return member(username="ops")


def sign_in(site: str, password: str, *, address: str = "198.51.100.7", username: str = "ops"):
    client = Client(REMOTE_ADDR=address)
    return client, client.post(LOGIN_PAGES[site], {"username": username, "password": password})


def lockouts(site: str) -> float:
    return LOGIN_LOCKOUTS.labels(site=site)._value.get()


def fail(site: str, times: int, **who) -> None:
    for attempt in range(1, times + 1):
        _, response = sign_in(site, "wrong", **who)
        # The form again with its error; the limit-th failure is the lockout itself.
        assert response.status_code == (429 if attempt == LIMIT else 200)


def test_failures_below_the_limit_only_show_the_form_again(site, user, settings):
    assert settings.AXES_FAILURE_LIMIT == LIMIT
    fail(site, LIMIT - 1)
    client, response = sign_in(site, PASSWORD)
    assert response.status_code == 302
    assert client.session.get("_auth_user_id") == str(user.pk)


def test_the_limit_locks_the_username_and_address_out_with_a_clear_429(site, user, settings):
    before = lockouts(site)
    fail(site, LIMIT - 1)
    _, response = sign_in(site, "wrong")  # the limit-th failure is itself refused

    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed sign-ins" in page
    assert f"failed {LIMIT} times" in page and "15 minutes" in page
    assert response["Retry-After"] == "900"
    assert lockouts(site) == before + 1

    client, response = sign_in(site, PASSWORD)  # the right password does not get through
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_lockout_does_not_reach_other_addresses_or_other_users(site, user, settings):
    fail(site, LIMIT)
    _, elsewhere = sign_in(site, PASSWORD, address="203.0.113.9")
    assert elsewhere.status_code == 302

    if site == "admin":
        get_user_model().objects.create_superuser(username="other", password=PASSWORD, email="")
    else:
        member(username="other")
    _, other = sign_in(site, PASSWORD, username="other")
    assert other.status_code == 302


def test_sign_in_works_again_after_the_cool_off(site, user, settings):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        fail(site, LIMIT)
        clock.shift(settings.AXES_COOLOFF_TIME - timedelta(seconds=5))
        assert sign_in(site, PASSWORD)[1].status_code == 429  # an attempt restarts the wait
        clock.shift(settings.AXES_COOLOFF_TIME - timedelta(seconds=5))
        assert sign_in(site, "wrong")[1].status_code == 429
        clock.shift(settings.AXES_COOLOFF_TIME + timedelta(seconds=1))
        assert sign_in(site, PASSWORD)[1].status_code == 302


def test_a_success_clears_the_count(site, user, settings):
    fail(site, LIMIT - 1)
    assert sign_in(site, PASSWORD)[1].status_code == 302
    fail(site, LIMIT - 1)
    assert sign_in(site, PASSWORD)[1].status_code == 302
