"""The hotline caller's number: stored encrypted (AES-GCM, key from the environment) or not
at all, and read back only for administrators."""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_VARIABLE = "IOC_OPEN311_CALLER_KEY"
"""Base64 of 32 random bytes; without it hotline callers' numbers are not stored."""


class CallerKeyError(ValueError):
    pass


def caller_key(environ: dict[str, str] | None = None) -> bytes | None:
    raw = (environ if environ is not None else dict(os.environ)).get(KEY_VARIABLE)
    if not raw:
        return None
    try:
        key = base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise CallerKeyError(f"{KEY_VARIABLE} is not base64") from exc
    if len(key) != 32:
        raise CallerKeyError(f"{KEY_VARIABLE} must hold 32 bytes, not {len(key)}")
    return key


def seal(key: bytes, number: str, request_label: bytes = b"open311-caller") -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, number.encode(), request_label)


def unseal(key: bytes, sealed: bytes, request_label: bytes = b"open311-caller") -> str:
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], request_label).decode()
