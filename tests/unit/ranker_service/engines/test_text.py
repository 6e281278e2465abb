"""The text engine is the teacher path: the same ranker over item text, as MixLM.score_text computes it."""

from __future__ import annotations

import pytest

from ranker_service.engines.base import ScoreRequest
from ranker_service.engines.text import TextEngine


def test_text_engine_matches_score_text_per_request(tiny_model):
    texts = ["Python engineer", "Nurse", "Welder with ten years of experience in shipyards"]
    engine = TextEngine(tiny_model)
    out = engine.score([ScoreRequest("python", item_texts=texts), ScoreRequest("nurse", item_texts=texts[:1])])
    assert out.scores[0] == pytest.approx(tiny_model.score_text("python", texts, multi_item=False).tolist(), abs=1e-5)
    assert out.scores[1] == pytest.approx(tiny_model.score_text("nurse", texts[:1]).tolist(), abs=1e-5)
    assert engine.item_input == "text"
