"""The text engine: the full-text teacher path (paper §4.2.2), the baseline MixLM is compared against.

Same ranker and strategies as the native engine; each item is its text's token embeddings (truncated to
max_item_text_tokens) instead of its stored item tokens, so the handler fetches item text from the store.
"""

from __future__ import annotations

from mixlm.model import MixLM
from ranker_service.engines.base import ScoreRequest
from ranker_service.engines.native import NativeEngine, Segments, Strategy


class TextEngine(NativeEngine):
    name = "text"
    item_input = "text"

    def __init__(self, model: MixLM, strategy: Strategy = "multi_item", max_batch_tokens: int = 16_384,
                 max_sequence_tokens: int = 4096):
        super().__init__(model, strategy, max_batch_tokens, max_sequence_tokens)

    def cost(self, request: ScoreRequest) -> int:
        prefix = 40 + (len(request.query) + len(request.user_context or "")) // 4
        cap = self.model.max_item_text_tokens
        return prefix + sum(min(len(t) // 4 + 1, cap) + self._suffix_len for t in request.item_texts)

    def segments(self, request: ScoreRequest) -> Segments:
        prefix = self.model.prefix_embeds(request.query, request.user_context)
        return prefix, [self.model.text_item(t) for t in request.item_texts]
