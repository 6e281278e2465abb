"""The native engine scores several requests in one forward pass exactly as the per-item reference does,
whatever the strategy, and splits over-long requests without changing a score."""

from __future__ import annotations

import pytest
import torch

from mixlm.codec import bytes_to_tokens
from mixlm.schemas import ItemText
from ranker_service.engines.base import ScoreRequest
from ranker_service.engines.native import NativeEngine, split_long
from mixlm.encoding import encode_rows

TEXTS = ["Senior Python engineer, Berlin", "Registered nurse, night shifts", "Data scientist (NLP)",
         "Forklift driver", "Backend developer Go/Python", "Pastry chef"]


@pytest.fixture(scope="module")
def rows(tiny_model):
    items = [ItemText(item_id=f"i{i}", title="", text=t, content_hash=b"h", updated_at=1) for i, t in enumerate(TEXTS)]
    return encode_rows(tiny_model, items, "bf16")


def reference(model, query, rows, user_context=None):
    """One sequence per item (the naive layout), on the same decoded item tokens."""
    tokens = [bytes_to_tokens(r.tokens, r.n_tokens, r.dim, r.dtype) for r in rows]
    return model.score_mixed(query, tokens, user_context=user_context, multi_item=False).tolist()


@pytest.mark.parametrize("strategy", ["multi_item", "prefix_cached", "naive"])
def test_every_strategy_matches_the_per_item_reference_for_a_batch_of_requests(tiny_model, rows, strategy):
    engine = NativeEngine(tiny_model, strategy=strategy)
    batch = [ScoreRequest("python jobs in berlin", item_tokens=rows),
             ScoreRequest("nurse", "likes nights", item_tokens=rows[1:3])]
    out = engine.score(batch)
    assert len(out.scores) == 2 and [len(s) for s in out.scores] == [6, 2]
    assert out.scores[0] == pytest.approx(reference(tiny_model, "python jobs in berlin", rows), abs=1e-5)
    assert out.scores[1] == pytest.approx(reference(tiny_model, "nurse", rows[1:3], "likes nights"), abs=1e-5)
    assert set(out.timings_ms) == {"assemble", "score"}


def test_requests_longer_than_a_sequence_are_split_without_changing_scores(tiny_model, rows):
    whole = NativeEngine(tiny_model, max_sequence_tokens=100_000).score([ScoreRequest("python", item_tokens=rows)])
    split = NativeEngine(tiny_model, max_sequence_tokens=20).score([ScoreRequest("python", item_tokens=rows)])
    assert split.scores[0] == pytest.approx(whole.scores[0], abs=1e-5)


def test_split_long_keeps_item_order_and_repeats_the_prefix():
    prefix = torch.zeros(10, 4)
    items = [torch.full((3, 4), float(i)) for i in range(5)]
    pieces, owner = split_long([(prefix, items), (prefix, items[:1])], max_sequence_tokens=16)
    assert owner == [0, 0, 0, 1]
    assert [len(group) for _, group in pieces] == [2, 2, 1, 1]
    flat = [int(t[0, 0]) for _, group in pieces[:3] for t in group]
    assert flat == [0, 1, 2, 3, 4]
    assert all(p is prefix for p, _ in pieces)


def test_cost_grows_with_items_and_query(tiny_model, rows):
    engine = NativeEngine(tiny_model)
    small = engine.cost(ScoreRequest("q", item_tokens=rows[:1]))
    assert engine.cost(ScoreRequest("q", item_tokens=rows)) > small
    assert engine.cost(ScoreRequest("q" * 400, item_tokens=rows[:1])) > small
