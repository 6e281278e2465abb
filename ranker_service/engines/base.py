"""The engine seam: one `Engine` protocol between the micro-batcher and whatever runs the ranker.

Engines never see HTTP; handlers never touch tensors. A request reaches an engine as plain data: the query
and, per item, either its stored item tokens (an ``ItemEmbedding`` row, for MixLM engines) or its text (for
the full-text teacher engine). ``score(batch)`` scores several requests at once and returns P(yes) per item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence, runtime_checkable

from mixlm.schemas import ItemEmbedding

ItemInput = Literal["tokens", "text"]


@dataclass
class ScoreRequest:
    """One ranking request as an engine sees it: items are item-token rows or item texts, never both."""

    query: str
    user_context: str | None = None
    item_tokens: Sequence[ItemEmbedding] = ()
    item_texts: Sequence[str] = ()

    @property
    def n_items(self) -> int:
        return len(self.item_tokens) or len(self.item_texts)


@dataclass
class BatchScores:
    """P(yes) per item, per request (in the batch's order), and where the engine spent its time."""

    scores: list[list[float]]
    timings_ms: dict[str, float] = field(default_factory=dict)  # "assemble", "score"


@runtime_checkable
class Engine(Protocol):
    name: str
    item_input: ItemInput  # what the handler must fetch from the store: item tokens or item text

    def cost(self, request: ScoreRequest) -> int:
        """Tokens this request adds to a forward pass (the batcher's budget unit)."""
        ...

    def score(self, batch: Sequence[ScoreRequest]) -> BatchScores:
        """Score every request of the batch; blocking, run in the engine's worker thread."""
        ...

    def close(self) -> None: ...
