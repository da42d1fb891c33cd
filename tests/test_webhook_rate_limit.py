"""The webhook intake answers 429 with Retry-After past its rate, before any other work."""

import pytest
from django.core.cache import cache
from django.test import override_settings

pytestmark = pytest.mark.django_db


@override_settings(CONVEYOR_WEBHOOK_RATE="3/minute")
def test_a_flood_on_one_intake_url_is_refused_with_429_and_retry_after(client):
    cache.clear()
    answers = [client.post("/hooks/some-unknown-token/", data=b"{}", content_type="application/json") for _ in range(5)]
    assert [a.status_code for a in answers] == [404, 404, 404, 429, 429]
    assert int(answers[-1]["Retry-After"]) >= 1
