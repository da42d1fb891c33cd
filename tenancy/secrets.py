"""An organization's secrets, decrypted for a run (templates reference them as
{{ secrets.NAME }}). A failure here is the platform's (C-0004), never the workflow's."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import DatabaseError

from failures.errors import DatabaseFault
from tenancy.cipher import decrypt
from tenancy.models import OrganizationSecret


def load_organization_secrets(organization_id: int, names: Iterable[str] | None = None) -> dict[str, str]:
    """An organization's secrets, decrypted: all of them, or only those in `names` (a run
    is handed only what its templates reference, so nothing else is decrypted)."""
    query = OrganizationSecret.objects.filter(organization_id=organization_id)
    if names is not None:
        wanted = sorted(set(names))
        if not wanted:
            return {}
        query = query.filter(name__in=wanted)
    try:
        rows = list(query.values_list("name", "ciphertext"))
    except DatabaseError as exc:
        raise DatabaseFault(f"could not read organization secrets: {exc}") from exc
    return {name: decrypt(ciphertext) for name, ciphertext in rows}
