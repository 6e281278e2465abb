"""POST /v1/rerank: raw documents in the Cohere/Jina rerank shape, scored by the same ranker.

MixLM engines encode the documents into item tokens first (not stored); the text engine reads them as is.
"""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from mixlm.schemas import RerankDocument, RerankRequest, RerankResponse, RerankResult
from ranker_service.engines.base import ScoreRequest
from ranker_service.errors import TooManyItems
from ranker_service.http_io import decode_body, encode
from mixlm.encoding import encode_rows
from ranker_service.item_encoding import documents_as_items
from ranker_service.openapi import body, responses
from ranker_service.routes.rank import check_query, score_one
from ranker_service.security import require_api_key
from ranker_service.state import Service, service

router = APIRouter(dependencies=[Depends(require_api_key)], tags=["ranking"])


@router.post(
    "/v1/rerank",
    summary="Rerank raw documents for a query (Cohere/Jina shape)",
    response_class=Response,
    openapi_extra=body(RerankRequest),
    responses=responses(RerankResponse, "Documents by relevance_score (P(yes)), highest first."),
)
async def rerank(request: Request, svc: Service = Depends(service)) -> Response:
    t0 = time.perf_counter()
    settings = svc.settings
    req = await decode_body(request, RerankRequest, settings.max_body_bytes)
    check_query(req.query, None, settings)
    if len(req.documents) > settings.max_items:
        raise TooManyItems(f"{len(req.documents)} documents, at most {settings.max_items} per request")
    timings: dict[str, float] = {}
    if svc.engine.item_input == "tokens":
        t1 = time.perf_counter()
        rows = await svc.batcher.run_exclusive(encode_rows, svc.model, documents_as_items(req.documents),
                                               settings.store_dtype)
        timings["encode"] = 1000 * (time.perf_counter() - t1)
        score_request = ScoreRequest(req.query, item_tokens=rows)
    else:
        score_request = ScoreRequest(req.query, item_texts=req.documents)
    scores, stage_ms = await score_one(request, svc, score_request)
    timings.update(stage_ms)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[: req.top_n]
    results = [RerankResult(index=i, relevance_score=scores[i],
                            document=RerankDocument(req.documents[i]) if req.return_documents else None) for i in order]
    timings["total"] = 1000 * (time.perf_counter() - t0)
    svc.metrics.items.labels("rerank", "scored").inc(len(scores))
    svc.metrics.observe_stages("rerank", timings)
    meta = {"model_version": svc.model.model_version, "engine": svc.engine.name,
            "timings_ms": {k: round(v, 3) for k, v in timings.items()}}
    return encode(RerankResponse(id=uuid.uuid4().hex, results=results, meta=meta))
