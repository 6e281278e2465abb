"""Items on the request path: /v1/rerank's raw documents as transient items, and which stored rows fit the model.

Encoding itself is mixlm.encoding.encode_rows, shared with the encoder worker.
"""

from __future__ import annotations

from typing import Sequence

from mixlm.codec import content_hash
from mixlm.schemas import ItemEmbedding, ItemText


def documents_as_items(documents: Sequence[str]) -> list[ItemText]:
    """/v1/rerank documents as transient items (never stored): the document is the item's whole text."""
    return [ItemText(item_id=str(i), title="", text=d, content_hash=content_hash("", d), updated_at=0)
            for i, d in enumerate(documents)]


def row_fits(row: ItemEmbedding, model_version: str, n_tokens: int, dim: int) -> bool:
    """A stored row the ranker can use: its version, shape and byte length match the model."""
    return (row.model_version == model_version and row.n_tokens == n_tokens and row.dim == dim
            and len(row.tokens) == n_tokens * dim * 2)
