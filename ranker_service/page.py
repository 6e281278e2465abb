"""The search page at ``/`` (plain HTML + JS, no build step) and ``GET /items``, which gives it titles.

/rank answers ids and scores only (its schema stays as DESIGN.md fixes it); the page looks up titles
here, from the same feature store the ranker reads. Without ``ids`` it lists the store's items (up to
Settings.max_items), which is what the page's "all items" choice ranks.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

import msgspec

from fastapi import APIRouter, Depends, Query
from starlette.responses import HTMLResponse, Response

from feature_store.base import MAX_READ, FeatureStore
from mixlm.schemas import ItemsResponse, ItemSummary, ItemText
from ranker_service import openapi
from ranker_service.errors import ERROR_RESPONSES, ErrorBody, TooManyItems
from ranker_service.http_io import encode
from ranker_service.security import require_api_key
from ranker_service.state import Service, service

PAGE = Path(__file__).parent / "static" / "index.html"

router = APIRouter()


def inline_schema(cls: type) -> dict[str, Any]:
    """cls's JSON schema with its $defs inlined (ranker_service.openapi registers only /rank's and /v1/rerank's)."""
    schema = msgspec.json.schema(cls)
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        return [resolve(v) for v in node] if isinstance(node, list) else node

    return resolve(schema)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def search_page() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


def split_ids(raw: list[str]) -> list[str]:
    """``?ids=a,b&ids=c`` -> [a, b, c]: commas and repeats both work, order kept, duplicates dropped."""
    ids = (part.strip() for value in raw for part in value.split(","))
    return list(dict.fromkeys(i for i in ids if i))


def list_items(store: FeatureStore, limit: int) -> list[ItemText]:
    """The first ``limit`` live items of the store, in its scan order."""
    return list(islice((it for batch in store.scan_items() for it in batch), limit))


@router.get(
    "/items",
    summary="Titles and fields of stored items (the search page's labels)",
    tags=["items"],
    dependencies=[Depends(require_api_key)],
    response_class=Response,
    responses={200: {"description": "The items found, in the order asked; unknown or deleted ids in `missing`. "
                                    "Without `ids`: the first `limit` items of the store.",
                      "content": {"application/json": {"schema": inline_schema(ItemsResponse)}}},
               # The error codes it can answer, with the ErrorBody it answers them with (429 needs the batcher).
               **{code: {"description": text, "content": {"application/json": {"schema": openapi.SCHEMA_REF[ErrorBody]}}}
                  for code, text in ERROR_RESPONSES.items() if code != 429}},
)
async def items(
    ids: list[str] = Query(default=[], description="Item ids, comma-separated or repeated; none = list the store"),
    limit: int | None = Query(default=None, ge=1, description="Most items to list when no ids are given"),
    svc: Service = Depends(service),
) -> Response:
    cap = min(svc.settings.max_items, MAX_READ)
    wanted = split_ids(ids)
    if len(wanted) > cap:
        raise TooManyItems(f"{len(wanted)} ids, at most {cap} per request")
    if wanted:
        found: dict[str, ItemText] = await svc.store_call(svc.store.get_items, wanted)
        body = ItemsResponse(items=[_summary(found[i]) for i in wanted if i in found],
                             missing=[i for i in wanted if i not in found])
    else:
        listed = await svc.store_call(list_items, svc.store, min(limit or cap, cap))
        body = ItemsResponse(items=[_summary(it) for it in listed])
    return encode(body)


def _summary(item: ItemText) -> ItemSummary:
    return ItemSummary(item_id=item.item_id, title=item.title, fields=item.fields)
