"""Typed msgspec schemas at every boundary: the Kafka wire, the feature store, the HTTP API."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

ItemId = Annotated[str, Meta(min_length=1, max_length=256)]
Millis = Annotated[int, Meta(ge=0, description="milliseconds since the Unix epoch")]


# --- Kafka: topic mixlm.items.v1, key = item_id --------------------------------------------------
class JobUpdate(Struct, kw_only=True):
    """One change to a job posting. op='delete' (or a null Kafka value) removes it."""

    item_id: ItemId
    op: Literal["upsert", "delete"]
    updated_at: Millis
    title: str = ""
    text: str = ""
    fields: dict[str, str] = {}


# --- feature store ---------------------------------------------------------------------------------
class ItemEmbedding(Struct, kw_only=True):
    """Item tokens of one item under one model_version (table item_embeddings)."""

    model_version: str
    item_id: str
    tokens: bytes  # little-endian bf16/fp16, shape [n_tokens, dim]
    n_tokens: int
    dim: int
    dtype: Literal["bf16", "fp16"]
    content_hash: bytes
    source_updated_at: int  # ms; the write timestamp, so a stale update never wins
    encoded_at: int  # ms


class ItemText(Struct, kw_only=True):
    """What the platform knows of an item's text (table items): for backfill, re-encoding and the teacher."""

    item_id: str
    title: str
    text: str
    fields: dict[str, str] = {}
    content_hash: bytes
    updated_at: int  # ms


# --- HTTP: POST /rank -------------------------------------------------------------------------------
class RankRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    query: Annotated[str, Meta(min_length=1)]
    item_ids: Annotated[list[ItemId], Meta(min_length=1)]
    top_k: Annotated[int, Meta(ge=1)] | None = None
    user_context: str | None = None


class RankResult(Struct):
    item_id: str
    score: float


class RankResponse(Struct, kw_only=True):
    model_version: str
    results: list[RankResult]
    missing: list[str]
    timings_ms: dict[str, float]


# --- HTTP: POST /v1/rerank (Cohere/Jina shape) -------------------------------------------------------
class RerankRequest(Struct, kw_only=True):
    query: Annotated[str, Meta(min_length=1)]
    documents: Annotated[list[str], Meta(min_length=1)]
    top_n: Annotated[int, Meta(ge=1)] | None = None
    return_documents: bool = False
    model: str | None = None


class RerankDocument(Struct):
    text: str


class RerankResult(Struct, kw_only=True, omit_defaults=True):
    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankResponse(Struct, kw_only=True):
    id: str
    results: list[RerankResult]
    meta: dict[str, object] = {}


def decode_job_update(raw: bytes) -> JobUpdate:
    """Strict decode of one Kafka value; raises msgspec.ValidationError/DecodeError with the field named."""
    return msgspec.json.decode(raw, type=JobUpdate)


# --- HTTP: GET /items (the search page's titles; ranker_service/page.py) -----------------------------
class ItemSummary(Struct, kw_only=True):
    item_id: str
    title: str
    fields: dict[str, str] = {}


class ItemsResponse(Struct, kw_only=True):
    items: list[ItemSummary]
    missing: list[str] = []
