"""HTTP Basic auth for the REST API: the account SID and auth token, or an API key and secret."""

from __future__ import annotations

import base64
import hmac

from shared.settings import Settings

__all__ = ["authorized"]


def authorized(header: str | None, settings: Settings) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    pairs = [(settings.account_sid, settings.auth_token)]
    if settings.api_key_sid and settings.api_key_secret:
        pairs.append((settings.api_key_sid, settings.api_key_secret))
    return any(hmac.compare_digest(user, u) and hmac.compare_digest(password, p) for u, p in pairs)
