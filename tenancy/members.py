"""Who a user works for: a user belongs to exactly one organization (DESIGN.md §5)."""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist

from tenancy.models import Organization


def organization_of(user) -> Organization | None:
    """The user's organization, or None (anonymous, or a user in no organization)."""
    if user is None or not user.is_authenticated:
        return None
    try:
        return user.membership.organization
    except ObjectDoesNotExist:
        return None
