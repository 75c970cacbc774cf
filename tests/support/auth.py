"""Bearer tokens for test users, signed with the session's dev secret."""

from __future__ import annotations

JWT_SECRET = "calsync-test-jwt-secret-0123456789abcdef"


def bearer(user_id: str, **claims: object) -> dict[str, str]:
    from api.auth import issue_dev_token

    return {"Authorization": f"Bearer {issue_dev_token(JWT_SECRET, user_id, **claims)}"}
