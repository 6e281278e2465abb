"""The ranker's FastAPI app factory (HTTP only: routes -> batcher -> engine).

``create_app(settings)`` builds everything in the lifespan: the model (unless given), the feature store
(unless given), the engine, the micro-batcher; shutdown closes what the app opened. Nothing is created at
import time and nothing reads the environment here: settings come from the caller.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from feature_store.base import FeatureStore, open_store
from mixlm.errors import StoreUnavailable
from mixlm.model import MixLM
from mixlm.settings import Settings
from ranker_service import errors, openapi, page, security
from ranker_service.batcher import MicroBatcher
from ranker_service.engines import Engine, build_engine
from ranker_service.metrics import Metrics
from ranker_service.routes import health, rank, rerank
from ranker_service.state import Service, run_engine_batch

log = logging.getLogger(__name__)
KNOWN_ROUTES = frozenset({"/rank", "/v1/rerank", "/healthz", "/readyz", "/metrics", "/", "/items", "/openapi.json",
                          "/docs", "/redoc"})


class CountRequests:
    """Pure ASGI middleware (keeps disconnect messages flowing): counts responses by route and status."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = [500]

        async def send_counted(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            route = scope["path"] if scope["path"] in KNOWN_ROUTES else "other"
            self.metrics.requests.labels(route, str(status[0])).inc()


def _open_store(settings: Settings) -> FeatureStore:
    store = open_store(settings)
    try:
        store.init()
    except StoreUnavailable as e:  # serve anyway: /readyz says 503 and requests get 503 until it is back
        log.warning("feature store unavailable at startup: %s", e)
    return store


def create_app(settings: Settings | None = None, *, model: MixLM | None = None, store: FeatureStore | None = None,
               engine: Engine | None = None) -> FastAPI:
    """The ranker app. Given model/store/engine are used as they are and left open on shutdown."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from mixlm.weights import build_mixlm

        the_model = model if model is not None else await asyncio.to_thread(build_mixlm, settings)
        the_store = store if store is not None else await asyncio.to_thread(_open_store, settings)
        the_engine = engine if engine is not None else build_engine(settings, the_model)
        batcher = MicroBatcher(partial(run_engine_batch, the_engine), the_engine.cost,
                               window_ms=settings.batch_window_ms, max_batch_tokens=settings.max_batch_tokens,
                               max_queue=settings.max_queue, on_batch=metrics.observe_batch,
                               on_queue=metrics.queue_depth.set)
        batcher.start()
        store_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mixlm-store")
        app.state.service = Service(settings, the_model, the_store, the_engine, batcher, metrics, store_executor)
        log.info("ranker ready: model_version=%s engine=%s", the_model.model_version, the_engine.name)
        try:
            yield
        finally:
            await batcher.close()
            store_executor.shutdown(wait=True)
            if engine is None:
                the_engine.close()
            if store is None:
                the_store.close()
            del app.state.service

    # FastAPI's own /openapi.json, /docs and /redoc are open; security.install_docs mounts them behind the key
    app = FastAPI(title="MixLM ranker", version="0.1.0", lifespan=lifespan, openapi_url=None, docs_url=None,
                  redoc_url=None,
                  description="Scores job postings for a query with the MixLM ranker over the feature store.")
    app.state.metrics = metrics
    app.state.settings = settings  # the API-key check reads it (also before the lifespan has run)
    errors.install(app)
    openapi.install(app, settings)
    security.install_docs(app)
    app.include_router(rank.router)
    app.include_router(rerank.router)
    app.include_router(health.router)
    app.include_router(page.router)  # the search page at / and GET /items (issue 9)
    app.add_middleware(CountRequests, metrics=metrics)
    return app
