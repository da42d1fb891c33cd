"""Organization secrets are stored encrypted, decrypt with rotated keys, and a key that
no longer decrypts is the platform's C-0004, never the workflow's fault."""

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test import override_settings

from failures.classifier import classify
from failures.errors import SecretStoreError
from tenancy.models import OrganizationSecret
from tenancy.secrets import load_organization_secrets
from tests.factories import make_org

pytestmark = pytest.mark.django_db
OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def _stored(secret_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT ciphertext FROM executions_organizationsecret WHERE id = %s", [secret_id])
        return cursor.fetchone()[0]


def test_the_database_never_holds_the_plaintext():
    secret = OrganizationSecret(organization=make_org(), name="API_KEY")
    secret.set_value("sk-live-very-secret")
    secret.save()
    assert "sk-live-very-secret" not in _stored(secret.pk)
    assert OrganizationSecret.objects.get(pk=secret.pk).get_value() == "sk-live-very-secret"


def test_a_secret_written_with_the_previous_key_still_decrypts_after_a_rotation():
    org = make_org()
    with override_settings(SECRETS_ENCRYPTION_KEYS=[OLD]):
        secret = OrganizationSecret(organization=org, name="TOKEN")
        secret.set_value("t0k3n")
        secret.save()
    with override_settings(SECRETS_ENCRYPTION_KEYS=[NEW, OLD]):
        assert load_organization_secrets(org.pk) == {"TOKEN": "t0k3n"}


def test_a_secret_no_configured_key_decrypts_is_a_secret_store_failure_c0004():
    org = make_org()
    with override_settings(SECRETS_ENCRYPTION_KEYS=[OLD]):
        secret = OrganizationSecret(organization=org, name="TOKEN")
        secret.set_value("t0k3n")
        secret.save()
    with override_settings(SECRETS_ENCRYPTION_KEYS=[NEW]):
        with pytest.raises(SecretStoreError) as failure:
            load_organization_secrets(org.pk)
    result = classify(failure.value)
    assert (result.error_type, result.code, result.category) == ("system", "C-0004", "auth")
    assert "t0k3n" not in str(failure.value)
