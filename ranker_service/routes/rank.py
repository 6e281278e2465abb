"""POST /rank: score stored items (by id) for a query with the MixLM ranker (DESIGN.md, "HTTP")."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from mixlm.schemas import RankRequest, RankResponse, RankResult
from mixlm.settings import Settings
from ranker_service import candidates
from ranker_service.engines.base import ScoreRequest
from ranker_service.errors import RequestInvalid, TooManyItems
from ranker_service.http_io import decode_body, encode, unless_disconnected
from ranker_service.openapi import body, responses
from ranker_service.security import require_api_key
from ranker_service.state import Service, service

router = APIRouter(dependencies=[Depends(require_api_key)], tags=["ranking"])


def check_query(query: str, user_context: str | None, settings: Settings) -> None:
    if not query.strip():
        raise RequestInvalid("query is blank", "query")
    if len(query) > settings.max_query_chars:
        raise RequestInvalid(f"query is longer than {settings.max_query_chars} characters", "query")
    if user_context and len(user_context) > settings.max_query_chars:
        raise RequestInvalid(f"user_context is longer than {settings.max_query_chars} characters", "user_context")


async def score_one(request: Request, svc: Service, score_request: ScoreRequest) -> tuple[list[float], dict[str, float]]:
    """Through the micro-batcher -> scores and the stage timings (queue, assemble, score)."""
    t0 = time.perf_counter()
    scores, engine_ms = await unless_disconnected(request, svc.batcher.submit(score_request))
    waited = 1000 * (time.perf_counter() - t0)
    timings = {"assemble": engine_ms.get("assemble", 0.0), "score": engine_ms.get("score", 0.0)}
    timings["queue"] = max(0.0, waited - timings["assemble"] - timings["score"])
    return scores, timings


@router.post(
    "/rank",
    summary="Rank stored items for a query",
    response_class=Response,
    openapi_extra=body(RankRequest),
    responses=responses(RankResponse, "Items sorted by score (P(yes)), highest first; ids without item tokens "
                                      "or text are listed in `missing`."),
)
async def rank(request: Request, svc: Service = Depends(service)) -> Response:
    t0 = time.perf_counter()
    settings = svc.settings
    req = await decode_body(request, RankRequest, settings.max_body_bytes)
    check_query(req.query, req.user_context, settings)
    if len(req.item_ids) > settings.max_items:
        raise TooManyItems(f"{len(req.item_ids)} item_ids, at most {settings.max_items} per request")
    ids = list(dict.fromkeys(req.item_ids))  # a repeated id is scored once
    found = await candidates.fetch(svc, ids)
    timings = {"store": 0.0, "assemble": 0.0, "score": 0.0, **found.timings_ms}
    results: list[RankResult] = []
    if found.ids:
        score_request = ScoreRequest(req.query, req.user_context, item_tokens=found.item_tokens,
                                     item_texts=found.item_texts)
        scores, stage_ms = await score_one(request, svc, score_request)
        timings.update(stage_ms)
        results = sorted((RankResult(i, s) for i, s in zip(found.ids, scores)), key=lambda r: -r.score)
    if req.top_k is not None:
        results = results[: req.top_k]
    timings["total"] = 1000 * (time.perf_counter() - t0)
    m = svc.metrics
    m.items.labels("rank", "scored").inc(len(found.ids))
    m.items.labels("rank", "missing").inc(len(found.missing))
    m.items.labels("rank", "cold_start").inc(len(found.cold_started))
    m.observe_stages("rank", timings)
    return encode(RankResponse(model_version=svc.model.model_version, results=results, missing=found.missing,
                               timings_ms={k: round(v, 3) for k, v in timings.items()}))
