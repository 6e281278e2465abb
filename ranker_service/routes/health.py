"""Liveness and readiness (model loaded, store reachable): open, so probes need no secret; Prometheus metrics,
which need the API key when keys are configured (scrapers send it as a bearer token)."""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ranker_service import openapi
from ranker_service.errors import ErrorBody
from ranker_service.http_io import encode
from ranker_service.security import require_api_key

router = APIRouter(tags=["operations"])


class Health(msgspec.Struct, omit_defaults=True):
    status: str
    model_version: str | None = None
    engine: str | None = None


_HEALTH = {"application/json": {"schema": openapi.register(Health)}}


@router.get("/healthz", summary="The process is up", response_class=Response,
            responses={200: {"description": "alive", "content": _HEALTH}})
async def healthz() -> Response:
    return encode(Health("ok"))


@router.get("/readyz", summary="Model loaded and feature store reachable (503 otherwise)", response_class=Response,
            responses={200: {"description": "ready", "content": _HEALTH},
                       503: {"description": "not ready: store unreachable or model not loaded",
                             "content": {"application/json": {"schema": openapi.SCHEMA_REF[ErrorBody]}}}})
async def readyz(request: Request) -> Response:
    svc = getattr(request.app.state, "service", None)
    if svc is None:
        return encode(ErrorBody("model not loaded yet"), status=503)
    await svc.store_call(svc.store.ping)  # StoreUnavailable -> 503 with Retry-After
    return encode(Health("ready", svc.model.model_version, svc.engine.name))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, dependencies=[Depends(require_api_key)],
            responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}},
                       401: {"description": "no or wrong API key (when keys are configured)",
                             "content": {"application/json": {"schema": openapi.SCHEMA_REF[ErrorBody]}}}})
async def metrics(request: Request) -> Response:
    m = request.app.state.metrics
    return Response(m.render(), media_type=m.content_type)
