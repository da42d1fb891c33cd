"""The OpenAPI schema is served at /api/schema/, is a valid OpenAPI 3 document, and
describes every endpoint of the API, with the status filter accepting every status."""

import pytest
from openapi_spec_validator import validate

from failures.statuses import ALL_STATUSES

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_a_valid_openapi_document(schema):
    validate(schema)


def test_the_schema_describes_every_endpoint(schema):
    operations = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert operations >= {
        ("/api/workflows/", "get"),
        ("/api/workflows/", "post"),
        ("/api/workflows/{id}/", "get"),
        ("/api/workflows/{id}/", "put"),
        ("/api/workflows/{id}/", "patch"),
        ("/api/workflows/{id}/", "delete"),
        ("/api/workflows/{id}/runs/", "post"),
        ("/api/runs/", "get"),
        ("/api/runs/{id}/", "get"),
        ("/api/runs/{id}/rerun/", "post"),
        ("/api/runs/{id}/cancel/", "post"),
        ("/api/runs/{id}/wait/", "get"),
    }


def test_the_status_filter_offers_every_status_system_error_included(schema):
    (status,) = [p for p in schema["paths"]["/api/runs/"]["get"]["parameters"] if p["name"] == "status"]
    assert status["schema"]["items"]["enum"] == list(ALL_STATUSES)
    assert set(schema["paths"]["/api/workflows/{id}/runs/"]["post"]["responses"]) >= {"202", "503"}


def test_the_webhook_intake_is_described_with_its_signature_and_every_answer(schema):
    intake = schema["paths"]["/hooks/{token}/"]["post"]
    assert intake["security"] == [{"webhookSignature": [], "webhookTimestamp": []}]
    assert schema["components"]["securitySchemes"]["webhookSignature"]["name"] == "X-Conveyor-Signature"
    assert [p["name"] for p in intake["parameters"]] == ["token", "X-Conveyor-Event-Id"]
    assert set(intake["responses"]) == {"202", "400", "401", "404", "413", "415", "429", "503"}


def test_the_answers_drf_gives_every_view_are_documented(schema):
    runs = schema["paths"]["/api/runs/"]["get"]["responses"]
    assert {"400", "401", "403", "404", "406"} <= set(runs)
    create = schema["paths"]["/api/workflows/"]["post"]["responses"]
    assert {"400", "415"} <= set(create)
    detail = schema["components"]["schemas"]["RunDetail"]["properties"]["output"]
    assert detail["nullable"] is True
