"""Scrub known credential shapes from text: the second line of defence.

The first is structural (`core.foreign_errors`): only our own errors' text leaves a worker. Those
details pass through here as they are made (`core.errors.SyncError`), in case one quotes a
provider's answer holding a token.
"""

from __future__ import annotations

import re

_PATTERNS = [
    re.compile(r"ya29\.[\w.\-]+"),  # Google access tokens
    re.compile(r"1//[\w.\-]+"),  # Google refresh tokens
    re.compile(r"lin_(?:api|oauth)_[\w]+"),  # Linear API keys and OAuth tokens
    re.compile(r"(?i)(bearer\s+)[\w.\-~+/=]+"),
    re.compile(r"(?i)((?:access|refresh|id)_token[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"),
    re.compile(r"(?i)((?:client_secret|api_key|password|token)=)[^\s&\"']+"),
    re.compile(r"gAAAAA[\w\-=]{20,}"),  # Fernet ciphertext of our own stored tokens
]

REDACTED = "[redacted]"


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text
