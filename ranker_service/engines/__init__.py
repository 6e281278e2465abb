"""Ranker engines behind one protocol (engines/base.py): native (default), text (teacher), sglang."""

from __future__ import annotations

from mixlm.model import MixLM
from mixlm.settings import Settings
from ranker_service.engines.base import BatchScores, Engine, ScoreRequest


def build_engine(settings: Settings, model: MixLM) -> Engine:
    """The engine MIXLM_ENGINE names, over the loaded model (the SGLang engine uses only its tokenizer)."""
    if settings.engine == "text":
        from ranker_service.engines.text import TextEngine

        return TextEngine(model, max_batch_tokens=settings.max_batch_tokens)
    if settings.engine == "sglang":
        from ranker_service.engines.sglang import SGLangEngine

        return SGLangEngine(model, settings.sglang_url)
    from ranker_service.engines.native import NativeEngine

    return NativeEngine(model, max_batch_tokens=settings.max_batch_tokens)


__all__ = ["BatchScores", "Engine", "ScoreRequest", "build_engine"]
