"""Organization scoping: every API query starts from the caller's organization."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from tenancy.members import organization_of


class IsOrganizationMember(BasePermission):
    """Authenticated and a member of an organization (a staff user in none gets 403)."""

    message = "Your user belongs to no organization."

    def has_permission(self, request, view) -> bool:
        return organization_of(request.user) is not None
