"""Item text -> item-token rows (ItemEmbedding), for cold start and for /v1/rerank's raw documents.

The encoder worker does the same nearline; here it runs on the request path for a bounded few items.
"""

from __future__ import annotations

import time
from typing import Sequence

from mixlm import prompts
from mixlm.codec import content_hash, tokens_to_bytes
from mixlm.model import MixLM
from mixlm.schemas import ItemEmbedding, ItemText


def encode_rows(model: MixLM, items: Sequence[ItemText], store_dtype: str) -> list[ItemEmbedding]:
    """Encode items under the model's version; each row's write timestamp is the item's updated_at."""
    if not items:
        return []
    tokens = model.encode_items([prompts.item_text(it.title, it.text, it.fields) for it in items])
    now = int(time.time() * 1000)
    return [
        ItemEmbedding(
            model_version=model.model_version,
            item_id=it.item_id,
            tokens=tokens_to_bytes(t, store_dtype),
            n_tokens=int(t.shape[0]),
            dim=int(t.shape[1]),
            dtype=store_dtype,
            content_hash=it.content_hash,
            source_updated_at=it.updated_at,
            encoded_at=now,
        )
        for it, t in zip(items, tokens)
    ]


def documents_as_items(documents: Sequence[str]) -> list[ItemText]:
    """/v1/rerank documents as transient items (never stored): the document is the item's whole text."""
    return [ItemText(item_id=str(i), title="", text=d, content_hash=content_hash("", d), updated_at=0)
            for i, d in enumerate(documents)]


def row_fits(row: ItemEmbedding, model_version: str, n_tokens: int, dim: int) -> bool:
    """A stored row the ranker can use: its version, shape and byte length match the model."""
    return (row.model_version == model_version and row.n_tokens == n_tokens and row.dim == dim
            and len(row.tokens) == n_tokens * dim * 2)
