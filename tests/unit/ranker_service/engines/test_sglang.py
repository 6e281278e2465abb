"""The SGLang engine's /v1/score request building and response parsing, as pure functions.

A running SGLang server needs a CUDA GPU, which this machine does not have: the HTTP round trip and the
agreement of SGLang's scores with the native engine are NOT tested here.
"""

from __future__ import annotations

import pytest

from mixlm import prompts
from mixlm.codec import content_hash
from mixlm.schemas import ItemText
from ranker_service.engines.base import ScoreRequest
from ranker_service.engines.sglang import SGLangEngine, build_score_payload, parse_scores
from ranker_service.errors import EngineUnavailable
from mixlm.encoding import encode_rows


def test_payload_puts_one_placeholder_per_item_token_and_the_suffix_without_the_delimiter():
    payload = build_score_payload([1, 2, 3], [[[0.5, 1.0]], [[2.0, 3.0]]], [7, 8, 9], placeholder_id=0,
                                  label_token_ids=[9805, 787])
    assert payload["query"] == [1, 2, 3]
    assert payload["items"] == [[0, 7, 8], [0, 7, 8]]  # 9 is the server's multi-item delimiter
    assert payload["embed_override_token_id"] == 0
    assert payload["item_embed_overrides"] == [[[0.5, 1.0]], [[2.0, 3.0]]]
    assert payload["label_token_ids"] == [9805, 787]
    assert payload["apply_softmax"] is True and payload["item_first"] is False


def test_payload_with_several_item_tokens_repeats_the_placeholder():
    payload = build_score_payload([1], [[[0.0], [1.0], [2.0]]], [5, 6], placeholder_id=42, label_token_ids=[1, 2])
    assert payload["items"] == [[42, 42, 42, 5]]


def test_empty_request_is_refused():
    with pytest.raises(ValueError):
        build_score_payload([1], [], [5], placeholder_id=0, label_token_ids=[1, 2])


def test_parse_scores_reads_the_yes_probability_and_checks_the_count():
    assert parse_scores({"scores": [[0.9, 0.1], [0.2, 0.8]]}, 2) == [0.9, 0.2]
    with pytest.raises(EngineUnavailable):
        parse_scores({"scores": [[0.9, 0.1]]}, 2)
    with pytest.raises(EngineUnavailable):
        parse_scores({"error": "boom"}, 1)


def test_engine_builds_the_payload_from_stored_item_tokens(tiny_model):
    items = [ItemText(item_id="a", title="", text="Python engineer", content_hash=content_hash("", "x"), updated_at=1)]
    rows = encode_rows(tiny_model, items, "bf16")
    engine = SGLangEngine(tiny_model, "http://127.0.0.1:1")
    payload = engine.payload(ScoreRequest("python", item_tokens=rows))
    suffix = engine.suffix_ids
    assert payload["query"] == tiny_model.ids(prompts.ranker_prefix("python")).tolist()
    assert len(payload["item_embed_overrides"][0]) == tiny_model.n_item_tokens
    assert len(payload["item_embed_overrides"][0][0]) == tiny_model.dim
    assert payload["items"][0] == [engine.placeholder_id] * tiny_model.n_item_tokens + suffix[:-1]
    assert payload["label_token_ids"] == [tiny_model.ranker.yes_id, tiny_model.ranker.no_id]
    engine.close()


def test_unreachable_server_is_engine_unavailable(tiny_model):
    items = [ItemText(item_id="a", title="", text="x", content_hash=b"h", updated_at=1)]
    engine = SGLangEngine(tiny_model, "http://127.0.0.1:9", timeout_s=2)  # nothing listens on port 9
    with pytest.raises(EngineUnavailable):
        engine.score([ScoreRequest("q", item_tokens=encode_rows(tiny_model, items, "bf16"))])
    engine.close()
