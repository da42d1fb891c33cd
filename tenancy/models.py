"""Tenancy: organizations, their members and their secrets (DESIGN.md §5).

The models keep `app_label = "executions"`, where they were born: their tables, admin
URLs (/admin/executions/organization/...), content types and permissions stay as they
are; their Python home is here. The cipher is tenancy.cipher (pure functions)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenancy.cipher import decrypt, encrypt

APP_LABEL = "executions"


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = APP_LABEL

    def __str__(self) -> str:
        return self.name


class Member(models.Model):
    """A user belongs to exactly one organization; API tokens are per user (DRF authtoken)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="members")

    class Meta:
        app_label = APP_LABEL

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization}"


class OrganizationSecret(models.Model):
    """A secret a workflow references as {{ secrets.NAME }}; encrypted at rest."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=100)
    ciphertext = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = APP_LABEL
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="secret_org_name_unique")]

    def __str__(self) -> str:
        return f"{self.organization.slug}/{self.name}"

    def set_value(self, plaintext: str) -> None:
        self.ciphertext = encrypt(plaintext)

    def get_value(self) -> str:
        return decrypt(self.ciphertext)
