"""Organization scoping: every API query starts from the caller's organization."""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from rest_framework.permissions import BasePermission

from executions.models import Organization


def organization_of(user) -> Organization | None:
    """The user's organization, or None (anonymous, or a user in no organization)."""
    if user is None or not user.is_authenticated:
        return None
    try:
        return user.membership.organization
    except ObjectDoesNotExist:
        return None


class IsOrganizationMember(BasePermission):
    """Authenticated and a member of an organization (a staff user in none gets 403)."""

    message = "Your user belongs to no organization."

    def has_permission(self, request, view) -> bool:
        return organization_of(request.user) is not None
