"""What /rank scores: one batched store read for the request's ids, cold start for the few that have text
but no item tokens yet, and the list of ids that stay missing."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from feature_store.base import MAX_READ
from mixlm import prompts
from mixlm.errors import StoreUnavailable
from mixlm.schemas import ItemEmbedding
from mixlm.encoding import encode_rows
from ranker_service.item_encoding import row_fits
from ranker_service.state import Service

log = logging.getLogger(__name__)


def _read(get: Callable[..., dict], ids: list[str], *head: str) -> dict:
    """One store read per MAX_READ ids (a single read unless Settings.max_items is raised past it)."""
    out: dict = {}
    for i in range(0, len(ids), MAX_READ):
        out.update(get(*head, ids[i:i + MAX_READ]))
    return out


@dataclass
class Candidates:
    ids: list[str]  # ids that will be scored, in request order
    item_tokens: list[ItemEmbedding] = field(default_factory=list)  # aligned with ids (MixLM engines)
    item_texts: list[str] = field(default_factory=list)  # aligned with ids (text engine)
    missing: list[str] = field(default_factory=list)
    cold_started: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


async def fetch(svc: Service, ids: list[str]) -> Candidates:
    if svc.engine.item_input == "text":
        return await _fetch_texts(svc, ids)
    return await _fetch_tokens(svc, ids)


async def _fetch_tokens(svc: Service, ids: list[str]) -> Candidates:
    model = svc.model
    t0 = time.perf_counter()
    stored = await svc.store_call(_read, svc.store.get_embeddings, ids, model.model_version)
    usable = {i: r for i, r in stored.items() if row_fits(r, model.model_version, model.n_item_tokens, model.dim)}
    if len(usable) < len(stored):
        log.warning("ignored %d stored rows whose shape does not match the model", len(stored) - len(usable))
    timings = {"store": 1000 * (time.perf_counter() - t0)}
    absent = [i for i in ids if i not in usable]
    cold: list[str] = []
    limit = svc.settings.cold_start_limit
    if absent and limit > 0:
        t1 = time.perf_counter()
        texts = await svc.store_call(_read, svc.store.get_items, absent)
        todo = [texts[i] for i in absent if i in texts][:limit]
        if todo:
            rows = await svc.batcher.run_exclusive(encode_rows, model, todo, svc.settings.store_dtype)
            usable.update((r.item_id, r) for r in rows)
            cold = [r.item_id for r in rows]
            try:  # the answer does not depend on the write-back: a store hiccup here only costs a re-encode later
                await svc.store_call(svc.store.put_embeddings, rows)
            except StoreUnavailable as e:
                log.warning("cold-start write-back of %d items failed: %s", len(rows), e)
        timings["cold_start"] = 1000 * (time.perf_counter() - t1)
    found = [i for i in ids if i in usable]
    return Candidates(ids=found, item_tokens=[usable[i] for i in found], missing=[i for i in ids if i not in usable],
                      cold_started=cold, timings_ms=timings)


async def _fetch_texts(svc: Service, ids: list[str]) -> Candidates:
    t0 = time.perf_counter()
    items = await svc.store_call(_read, svc.store.get_items, ids)
    found = [i for i in ids if i in items]
    texts = [prompts.item_text(items[i].title, items[i].text, items[i].fields) for i in found]
    return Candidates(ids=found, item_texts=texts, missing=[i for i in ids if i not in items],
                      timings_ms={"store": 1000 * (time.perf_counter() - t0)})
