"""Encryption at rest for organization secrets and webhook signing secrets: Fernet, with
several keys so they can rotate (CONVEYOR_SECRETS_ENCRYPTION_KEYS; the first encrypts,
all decrypt). Pure functions of the configured keys: no database."""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from failures.errors import SecretStoreError


def _derived_key(secret: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(f"conveyor-secrets:{secret}".encode()).digest())


@cache
def _fernet(keys: tuple[str, ...], fallback: str) -> MultiFernet:
    raw = [k.encode() for k in keys] or [_derived_key(fallback)]
    return MultiFernet([Fernet(k) for k in raw])


def _box() -> MultiFernet:
    try:
        return _fernet(tuple(settings.SECRETS_ENCRYPTION_KEYS), settings.SECRET_KEY)
    except (ValueError, TypeError) as exc:
        raise SecretStoreError(f"secret encryption keys are invalid: {exc}") from None


def encrypt(plaintext: str) -> str:
    return _box().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _box().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretStoreError("a secret could not be decrypted with the configured keys") from None
