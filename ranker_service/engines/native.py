"""The native engine: the MixLM ranker in PyTorch, many requests per forward pass (paper §5.2.2).

Default strategy is multi-item scoring: one sequence per request (shared prefix once, then every item's
tokens, a block mask so each item sees only the prefix and itself). The naive path (one sequence per item)
and in-batch prefix caching (prefix KV once per request, reused by every item) are kept for `mixlm bench
engine`. No KV cache outlives a call: prefill-only scoring has no decode phase (§5.2.4).
Runs on the model's device and dtype (bf16 on CUDA by default).
"""

from __future__ import annotations

import time
from typing import Literal, Sequence

import torch

from mixlm.codec import bytes_to_tokens
from mixlm.model import MixLM, Ranker, pack, p_yes
from ranker_service.engines.base import BatchScores, ScoreRequest

Strategy = Literal["multi_item", "prefix_cached", "naive"]
STRATEGIES: tuple[Strategy, ...] = ("naive", "prefix_cached", "multi_item")
Segments = tuple[torch.Tensor, Sequence[torch.Tensor]]  # (prefix [P, D], items [[L_i, D], ...])


def split_long(requests: Sequence[Segments], max_sequence_tokens: int) -> tuple[list[Segments], list[int]]:
    """Cut requests whose packed sequence would exceed max_sequence_tokens into several sequences that
    each repeat the prefix (attention memory grows with L^2). -> pieces, and the request index of each."""
    pieces, owner = [], []
    for r, (prefix, items) in enumerate(requests):
        group: list[torch.Tensor] = []
        length = prefix.shape[0]
        for item in items:
            if group and length + item.shape[0] > max_sequence_tokens:
                pieces.append((prefix, group))
                owner.append(r)
                group, length = [], prefix.shape[0]
            group.append(item)
            length += item.shape[0]
        pieces.append((prefix, group))
        owner.append(r)
    return pieces, owner


@torch.inference_mode()
def run_strategy(
    ranker: Ranker, requests: Sequence[Segments], strategy: Strategy = "multi_item", max_sequence_tokens: int | None = None
) -> list[torch.Tensor]:
    """Score (prefix, items) requests with one of the three Table 11 strategies -> P(yes) per item, per request."""
    if strategy == "prefix_cached":
        return [p_yes(ranker.forward_prefix_cached(prefix, list(items))).cpu() for prefix, items in requests]
    pieces, owner = list(requests), list(range(len(requests)))
    if strategy == "multi_item" and max_sequence_tokens:
        pieces, owner = split_long(requests, max_sequence_tokens)
    logits, _ = ranker(pack(pieces, multi_item=strategy == "multi_item"))
    flat = p_yes(logits).cpu()
    per_piece = torch.split(flat, [len(items) for _, items in pieces])
    out: list[list[torch.Tensor]] = [[] for _ in requests]
    for r, scores in zip(owner, per_piece):
        out[r].append(scores)
    return [torch.cat(parts) for parts in out]


class NativeEngine:
    """MixLM multi-item scoring over stored item tokens (or the naive / prefix-cached paths)."""

    name = "native"
    item_input = "tokens"

    def __init__(self, model: MixLM, strategy: Strategy = "multi_item", max_batch_tokens: int = 16_384,
                 max_sequence_tokens: int = 2048):
        self.model = model
        self.strategy = strategy
        self.max_batch_tokens = max_batch_tokens
        self.max_sequence_tokens = max_sequence_tokens
        with torch.inference_mode():
            self._suffix = model.suffix_embeds()
        self._suffix_len = int(self._suffix.shape[0])

    def cost(self, request: ScoreRequest) -> int:
        # The prefix is ~40 tokens of template plus the query; ~4 characters per token is close enough here.
        prefix = 40 + (len(request.query) + len(request.user_context or "")) // 4
        return prefix + request.n_items * (self.model.n_item_tokens + self._suffix_len)

    def _items(self, request: ScoreRequest) -> list[torch.Tensor]:
        rows = request.item_tokens
        tokens = torch.stack([bytes_to_tokens(r.tokens, r.n_tokens, r.dim, r.dtype) for r in rows])
        tokens = tokens.to(self.model.device, self.model.dtype)
        suffix = self._suffix.expand(len(rows), -1, -1)
        return list(torch.cat([tokens, suffix], 1).unbind(0))

    def segments(self, request: ScoreRequest) -> Segments:
        """The request's mixed prompt (§4.2.3): prefix embeddings, then per item its tokens + readout suffix."""
        return self.model.prefix_embeds(request.query, request.user_context), self._items(request)

    def score(self, batch: Sequence[ScoreRequest]) -> BatchScores:
        t0 = time.perf_counter()
        with torch.inference_mode():
            requests = [self.segments(r) for r in batch]
        t1 = time.perf_counter()
        scores = run_strategy(self.model.ranker, requests, self.strategy, self.max_sequence_tokens)
        t2 = time.perf_counter()
        return BatchScores([s.tolist() for s in scores], {"assemble": 1000 * (t1 - t0), "score": 1000 * (t2 - t1)})

    def close(self) -> None:
        if self.model.device.type == "cuda":
            torch.cuda.empty_cache()
