"""Checks every backend applies before writing: item tokens must decode (mixlm.codec) to the shape the
row claims, so a wrong dim, dtype or byte length fails loudly at write time, not in the ranker."""

from __future__ import annotations

from typing import Sequence

from mixlm.codec import bytes_to_tokens
from mixlm.errors import CodecError
from mixlm.schemas import ItemEmbedding, ItemText


def check_embeddings(rows: Sequence[ItemEmbedding]) -> None:
    for row in rows:
        if not row.model_version or not row.item_id:
            raise CodecError(f"item tokens need a model_version and an item_id, got {row.model_version!r}/{row.item_id!r}")
        try:
            bytes_to_tokens(row.tokens, row.n_tokens, row.dim, row.dtype)
        except CodecError as exc:
            raise CodecError(f"item {row.item_id!r} (model_version {row.model_version}): {exc}") from None
        if row.source_updated_at < 0:
            raise CodecError(f"item {row.item_id!r}: source_updated_at must be >= 0 ms, got {row.source_updated_at}")


def check_items(rows: Sequence[ItemText]) -> None:
    for row in rows:
        if not row.item_id or row.updated_at < 0:
            raise CodecError(f"item text needs an item_id and updated_at >= 0, got {row.item_id!r}/{row.updated_at}")
