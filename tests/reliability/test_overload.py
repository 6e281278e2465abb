"""Overload (issue 10, "Load", shortened for CI): waves of concurrent requests far above the batcher's queue.
Every answer is a full 200 or a 429 with Retry-After, nothing else; the queue drains after each wave and the
service then answers normally. (The long soak with memory and p99 belongs in `mixlm bench`.)"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import httpx

from feature_store.sqlite import SQLiteStore
from mixlm.codec import content_hash
from mixlm.encoding import encode_rows
from mixlm.schemas import ItemText
from ranker_service.app import create_app

TEXTS = {f"job{i}": f"Posting {i}: welding, forklifts, python, nursing." for i in range(16)}
WAVES, CONCURRENCY, MAX_QUEUE = 4, 64, 4


@asynccontextmanager
async def serving(app):
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ranker",
                                     timeout=120) as c:
            yield c


def test_waves_above_capacity_get_only_200_or_429_and_the_queue_drains(tiny_settings, tiny_model):
    store = SQLiteStore(tiny_settings.resolved_sqlite_path())
    store.init()
    rows = [ItemText(item_id=k, title="", text=v, content_hash=content_hash("", v), updated_at=1) for k, v in TEXTS.items()]
    store.put_items(rows)
    store.put_embeddings(encode_rows(tiny_model, rows, "bf16"))
    settings = tiny_settings.model_copy(update={"max_queue": MAX_QUEUE, "batch_window_ms": 5.0, "max_batch_tokens": 256})
    app = create_app(settings, model=tiny_model, store=store)
    ids = list(TEXTS)

    async def main():
        statuses: dict[int, int] = {}
        async with serving(app) as c:
            for wave in range(WAVES):
                answers = await asyncio.gather(*(c.post("/rank", json={"query": f"q{wave}-{n}", "item_ids": ids})
                                                 for n in range(CONCURRENCY)))
                for r in answers:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 200:
                        assert len(r.json()["results"]) == len(ids)
                    else:
                        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1, r.text
                assert app.state.service.batcher.depth == 0  # drained: nothing stuck in the queue
                after = await c.post("/rank", json={"query": "after", "item_ids": ids})
                assert after.status_code == 200
                statuses[200] += 1
            metrics = (await c.get("/metrics")).text
        return statuses, metrics

    statuses, metrics = asyncio.run(main())
    store.close()
    assert set(statuses) == {200, 429}, statuses  # overload shows as 429, never as 5xx or a hang
    assert 'mixlm_requests_total{route="/rank",status="429"}' in metrics
    print(f"overload: {sum(statuses.values())} requests tried {statuses}")
