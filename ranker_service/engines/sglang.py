"""The SGLang engine: a client of a running SGLang server's ``POST /v1/score`` (select with
``MIXLM_ENGINE=sglang`` and ``MIXLM_SGLANG_URL``).

One HTTP call per ranking request uses SGLang's multi-item scoring (the query once, then every item, with
FlashInfer's item-aware mask, sgl-project/sglang PR #10979) and token embedding overrides (PR #20960): each
item is sent as T_S placeholder token ids followed by the readout suffix, and ``item_embed_overrides`` puts
the stored item tokens at the placeholders. ``label_token_ids=[yes, no]`` with ``apply_softmax`` returns
P(yes) over the pair, the same readout as the native engine (paper §4.2).

Server: needs a CUDA GPU, FlashInfer, and an SGLang build that contains both PRs above (its
``ScoringRequest`` has ``embed_override_token_id`` and ``item_embed_overrides``; the optional extra
``mixlm[sglang]`` only bounds it from below)::

    python -m sglang.launch_server --model-path <ranker folder saved by training/, HF format> \\
        --port 30000 --attention-backend flashinfer --disable-radix-cache --chunked-prefill-size -1 \\
        --multi-item-scoring-delimiter <id of the last token of mixlm.prompts.ITEM_SUFFIX>

Choosing the suffix's last token ("?") as the delimiter makes SGLang read each item's label logits at the same
position the native engine reads them (the item's last token). One difference remains: SGLang also puts a
delimiter between the query and the first item, so every item sees one extra token after the prefix.
NOT verified here: this machine has no GPU and SGLang needs one, so only the request building and response
parsing below are tested (as pure functions); agreement with the native engine is unmeasured.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import httpx

from mixlm import prompts
from mixlm.codec import bytes_to_tokens
from mixlm.model import MixLM
from ranker_service.engines.base import BatchScores, ScoreRequest
from ranker_service.errors import EngineUnavailable

log = logging.getLogger(__name__)


def build_score_payload(
    prefix_ids: Sequence[int],
    item_vectors: Sequence[Sequence[Sequence[float]]],
    suffix_ids: Sequence[int],
    *,
    placeholder_id: int,
    label_token_ids: Sequence[int],
    model: str = "default",
) -> dict[str, Any]:
    """The /v1/score body for one request. The suffix's last token is the server's multi-item delimiter,
    so each item carries the suffix without it: [placeholder] * T_S + suffix[:-1]."""
    if not item_vectors:
        raise ValueError("a score request needs at least one item")
    body_ids = list(suffix_ids[:-1])
    return {
        "model": model,
        "query": list(prefix_ids),
        "items": [[placeholder_id] * len(vectors) + body_ids for vectors in item_vectors],
        "label_token_ids": list(label_token_ids),
        "apply_softmax": True,
        "item_first": False,
        "embed_override_token_id": placeholder_id,
        "item_embed_overrides": [[list(map(float, v)) for v in vectors] for vectors in item_vectors],
    }


def parse_scores(payload: dict[str, Any], n_items: int) -> list[float]:
    """/v1/score answer -> P(yes) per item (the first label's probability)."""
    scores = payload.get("scores")
    if not isinstance(scores, list) or len(scores) != n_items:
        raise EngineUnavailable(f"SGLang returned {len(scores) if isinstance(scores, list) else 'no'} scores "
                                f"for {n_items} items")
    return [float(s[0]) for s in scores]


class SGLangEngine:
    name = "sglang"
    item_input = "tokens"

    def __init__(self, model: MixLM, url: str, timeout_s: float = 30.0, served_model: str = "default",
                 placeholder_id: int | None = None):
        self.model = model  # only the tokenizer and the readout ids are used; the ranker runs in SGLang
        self.url = url.rstrip("/") + "/v1/score"
        self.served_model = served_model
        tok = model.tokenizer
        self.placeholder_id = placeholder_id if placeholder_id is not None else tok.eos_token_id
        self.suffix_ids = model.ids(prompts.ITEM_SUFFIX).tolist()
        self.labels = [model.ranker.yes_id, model.ranker.no_id]
        self._client = httpx.Client(timeout=timeout_s)

    def cost(self, request: ScoreRequest) -> int:
        prefix = 40 + (len(request.query) + len(request.user_context or "")) // 4
        return prefix + request.n_items * (self.model.n_item_tokens + len(self.suffix_ids))

    def payload(self, request: ScoreRequest) -> dict[str, Any]:
        prefix_ids = self.model.ids(prompts.ranker_prefix(request.query, request.user_context)).tolist()
        vectors = [bytes_to_tokens(r.tokens, r.n_tokens, r.dim, r.dtype).float().tolist() for r in request.item_tokens]
        return build_score_payload(prefix_ids, vectors, self.suffix_ids, placeholder_id=self.placeholder_id,
                                   label_token_ids=self.labels, model=self.served_model)

    def score(self, batch: Sequence[ScoreRequest]) -> BatchScores:
        t0 = time.perf_counter()
        payloads = [self.payload(r) for r in batch]
        t1 = time.perf_counter()
        out = []
        for request, payload in zip(batch, payloads):
            try:
                response = self._client.post(self.url, json=payload)
                response.raise_for_status()
            except httpx.HTTPError as e:
                raise EngineUnavailable(f"SGLang server at {self.url}: {e}") from e
            out.append(parse_scores(response.json(), request.n_items))
        t2 = time.perf_counter()
        return BatchScores(out, {"assemble": 1000 * (t1 - t0), "score": 1000 * (t2 - t1)})

    def close(self) -> None:
        self._client.close()
