"""API keys (Settings.api_keys): X-API-Key or `Authorization: Bearer`, compared in constant time.

With keys configured, only the probes (/healthz, /readyz) and the static search page shell at / stay open:
the page holds no data and sends the key its user types. /metrics and the API documents (/openapi.json,
/docs, /redoc) need a key like every data route; Prometheus sends one as a bearer token
(`authorization: {type: Bearer, credentials: ...}` in its scrape config).
"""

from __future__ import annotations

import hmac

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import HTMLResponse, JSONResponse

from ranker_service.errors import Unauthorized

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})  # everything else asks for a key when keys are set

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
    # app.state.settings is set by create_app, so this works before the lifespan has loaded the model too
    keys = request.app.state.settings.api_keys
    if not keys:
        return
    given = api_key or (bearer.credentials if bearer else None)
    if not given:
        raise Unauthorized("an API key is required (X-API-Key header or Authorization: Bearer)")
    if not key_matches(given, keys):
        raise Unauthorized("wrong API key")


def install_docs(app: FastAPI) -> None:
    """/openapi.json, /docs and /redoc behind the key (create the app with openapi_url/docs_url/redoc_url=None).
    A browser cannot add the header to the documents' own fetch, so with keys on, read the schema with a client
    that sends it (curl -H 'X-API-Key: ...' /openapi.json)."""
    guarded = [Depends(require_api_key)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
    async def openapi_json() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=guarded)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

    @app.get("/redoc", include_in_schema=False, dependencies=guarded)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")
