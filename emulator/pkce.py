"""PKCE (RFC 7636) as Google and Linear check it at the token endpoint."""

from __future__ import annotations

import base64
import hashlib
import hmac

METHODS = ("plain", "S256")


def verifier_matches(challenge: str, method: str, verifier: str | None) -> bool:
    """Whether `verifier` answers the challenge recorded at authorize; a missing one never does."""
    if not verifier:
        return False
    expected = verifier
    if method == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return hmac.compare_digest(expected.encode(), challenge.encode())
