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
