"""API keys (Settings.api_keys): X-API-Key or `Authorization: Bearer`, compared in constant time.
Health and metrics routes stay open so probes and scrapers need no secret."""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ranker_service.errors import Unauthorized

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="One of MIXLM_API_KEYS")
_bearer = HTTPBearer(auto_error=False, description="One of MIXLM_API_KEYS as a bearer token")


def key_matches(given: str, keys: list[str]) -> bool:
    """True if given equals one of keys; every key is compared, so timing does not tell which one was close."""
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given.encode(), key.encode())
    return ok


async def require_api_key(
    request: Request,
    api_key: str | None = Depends(_api_key_header),
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> None:
    keys = request.app.state.service.settings.api_keys
    if not keys:
        return
    given = api_key or (bearer.credentials if bearer else None)
    if not given:
        raise Unauthorized("an API key is required (X-API-Key header or Authorization: Bearer)")
    if not key_matches(given, keys):
        raise Unauthorized("wrong API key")
