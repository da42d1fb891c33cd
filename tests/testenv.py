"""Test-wide environment, loaded as a pytest plugin before pytest-django reads settings:
PostgreSQL (tests talk to the real thing).

Set before Django reads its settings; an explicit environment wins."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
os.environ.setdefault("DJANGO_SECRET_KEY", "conveyor-test-secret-key-0123456789abcdef0123456789")
os.environ.setdefault("CONVEYOR_MESSAGE_SIGNING_KEY", "conveyor-test-signing-key-0123456789")
os.environ.setdefault("CONVEYOR_SECRETS_ENCRYPTION_KEYS", "Zm9yLXRlc3RzLW9ubHktMDEyMzQ1Njc4OWFiY2RlZmc=")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
