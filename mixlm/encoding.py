"""Item text -> stored item-token rows: the one path the encoder worker, backfill and the ranker's cold start share."""

from __future__ import annotations

import time
from typing import Sequence

from mixlm import prompts
from mixlm.codec import tokens_to_bytes
from mixlm.model import MixLM
from mixlm.schemas import ItemEmbedding, ItemText


def encode_rows(model: MixLM, items: Sequence[ItemText], store_dtype: str, batch_size: int = 16) -> list[ItemEmbedding]:
    """Encode items under the model's version; each row's write timestamp is the item's updated_at."""
    if not items:
        return []
    tokens = model.encode_items([prompts.item_text(it.title, it.text, it.fields) for it in items], batch_size=batch_size)
    encoded_at = int(time.time() * 1000)
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
            encoded_at=encoded_at,
        )
        for it, t in zip(items, tokens)
    ]
