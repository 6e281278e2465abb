"""On the real SmolLM2-135M weights (fp32), the native engine's multi-item scores equal the per-item reference."""

from __future__ import annotations

import pytest
import torch

from mixlm.codec import tokens_to_bytes
from mixlm.schemas import ItemEmbedding
from ranker_service.engines.base import ScoreRequest
from ranker_service.engines.native import NativeEngine


def _rows(model, n: int, seed: int) -> list[ItemEmbedding]:
    # Item tokens at the scale of real hidden states (what the encoder writes), one row per item.
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        tokens = torch.randn(model.n_item_tokens, model.dim, generator=g) * 2.0
        rows.append(ItemEmbedding(model_version=model.model_version, item_id=f"i{i}", tokens=tokens_to_bytes(tokens, "bf16"),
                                  n_tokens=model.n_item_tokens, dim=model.dim, dtype="bf16", content_hash=b"h",
                                  source_updated_at=1, encoded_at=1))
    return rows


@pytest.mark.real_model
def test_multi_item_equals_per_item_reference_on_real_weights(real_model):
    encoded = real_model.encode_items(["Senior Python engineer in Berlin", "Night-shift nurse", "Pastry chef"])
    encoded_rows = [ItemEmbedding(model_version=real_model.model_version, item_id=f"e{i}",
                                  tokens=tokens_to_bytes(t, "bf16"), n_tokens=t.shape[0], dim=t.shape[1], dtype="bf16",
                                  content_hash=b"h", source_updated_at=1, encoded_at=1) for i, t in enumerate(encoded)]
    batch = [ScoreRequest("python developer", item_tokens=encoded_rows + _rows(real_model, 22, 0)),
             ScoreRequest("nurse", "prefers night shifts", item_tokens=_rows(real_model, 10, 1))]
    multi = NativeEngine(real_model, strategy="multi_item").score(batch).scores
    per_item = NativeEngine(real_model, strategy="naive").score(batch).scores
    cached = NativeEngine(real_model, strategy="prefix_cached").score(batch).scores
    for m, ref, c in zip(multi, per_item, cached):
        assert len(m) == len(ref)
        assert max(abs(a - b) for a, b in zip(m, ref)) <= 1e-4
        assert max(abs(a - b) for a, b in zip(c, ref)) <= 1e-4
    assert max(multi[0]) - min(multi[0]) > 1e-3  # the scores do differ between items: the check has teeth
