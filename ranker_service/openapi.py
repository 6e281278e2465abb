"""A true OpenAPI document: request and response bodies are the msgspec structs of mixlm/schemas.py,
rendered by msgspec itself (one source of truth), since the handlers decode and encode with msgspec."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from mixlm.schemas import RankRequest, RankResponse, RerankRequest, RerankResponse
from mixlm.settings import Settings
from ranker_service.errors import ERROR_RESPONSES, ErrorBody

REF = "#/components/schemas/{name}"
_STRUCTS = (RankRequest, RankResponse, RerankRequest, RerankResponse, ErrorBody)


def _any_json(t: type) -> dict[str, Any]:
    if t is object:  # RerankResponse.meta: free-form JSON values
        return {"description": "any JSON value"}
    raise NotImplementedError(t)


_REFS, COMPONENTS = msgspec.json.schema_components(_STRUCTS, ref_template=REF, schema_hook=_any_json)
SCHEMA_REF = {cls: ref for cls, ref in zip(_STRUCTS, _REFS)}


def register(cls: type) -> dict[str, Any]:
    """Add another msgspec struct to the document's components -> its $ref."""
    refs, components = msgspec.json.schema_components([cls], ref_template=REF, schema_hook=_any_json)
    COMPONENTS.update(components)
    SCHEMA_REF[cls] = refs[0]
    return refs[0]


def body(cls: type) -> dict[str, Any]:
    """openapi_extra for a route whose JSON body is decoded into cls."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": SCHEMA_REF[cls]}}}}


def responses(cls: type, description: str) -> dict[int | str, dict[str, Any]]:
    """The route's 200 body and every error code it can answer, with the ErrorBody schema."""
    error = {"application/json": {"schema": SCHEMA_REF[ErrorBody]}}
    out: dict[int | str, dict[str, Any]] = {200: {"description": description,
                                                 "content": {"application/json": {"schema": SCHEMA_REF[cls]}}}}
    for code, text in ERROR_RESPONSES.items():
        out[code] = {"description": text, "content": error}
    return out


def install(app: FastAPI, settings: Settings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(msgspec.json.decode(msgspec.json.encode(COMPONENTS)))
            # The configured limits are part of the contract (413 past them).
            schemas["RankRequest"]["properties"]["item_ids"]["maxItems"] = settings.max_items
            schemas["RerankRequest"]["properties"]["documents"]["maxItems"] = settings.max_items
            if not settings.api_keys:  # no keys configured: the routes are open, and the document says so
                for path in doc.get("paths", {}).values():
                    for operation in path.values():
                        operation.pop("security", None)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
