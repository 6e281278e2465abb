"""What one running app holds: created in the lifespan, closed on shutdown, reached by handlers via app.state."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from fastapi import Request

from feature_store.base import FeatureStore
from mixlm.model import MixLM
from mixlm.settings import Settings
from ranker_service.batcher import MicroBatcher
from ranker_service.engines.base import BatchScores, Engine, ScoreRequest
from ranker_service.metrics import Metrics


@dataclass
class Service:
    settings: Settings
    model: MixLM
    store: FeatureStore
    engine: Engine
    batcher: MicroBatcher[ScoreRequest, tuple[list[float], dict[str, float]]]
    metrics: Metrics
    store_executor: ThreadPoolExecutor  # store clients are sync: calls run here, off the event loop

    async def store_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.store_executor, fn, *args)


def run_engine_batch(engine: Engine, batch: list[ScoreRequest]) -> list[tuple[list[float], dict[str, float]]]:
    """The batcher's unit of work: one engine call; every request gets its scores and the batch's timings."""
    out: BatchScores = engine.score(batch)
    return [(scores, out.timings_ms) for scores in out.scores]


def service(request: Request) -> Service:
    """FastAPI dependency: the app's Service."""
    return request.app.state.service
