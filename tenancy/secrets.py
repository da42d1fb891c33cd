"""An organization's secrets, decrypted for a run (templates reference them as
{{ secrets.NAME }}). A failure here is the platform's (C-0004), never the workflow's."""

from __future__ import annotations

from django.db import DatabaseError

from failures.errors import DatabaseFault
from tenancy.cipher import decrypt
from tenancy.models import OrganizationSecret


def load_organization_secrets(organization_id: int) -> dict[str, str]:
    """All of an organization's secrets, decrypted."""
    try:
        rows = list(
            OrganizationSecret.objects.filter(organization_id=organization_id).values_list("name", "ciphertext")
        )
    except DatabaseError as exc:
        raise DatabaseFault(f"could not read organization secrets: {exc}") from exc
    return {name: decrypt(ciphertext) for name, ciphertext in rows}
