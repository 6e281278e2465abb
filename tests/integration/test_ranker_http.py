"""The ranker over HTTP: the tiny model with the SQLite store in-process (httpx / TestClient), the real
Cassandra from `mixlm services up`, and a real `mixlm serve` (uvicorn) process with the SmolLM2 weights."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import msgspec
import pytest
from fastapi.testclient import TestClient

from encoder_worker.launch import free_port
from feature_store.base import FeatureStore, open_store
from feature_store.sqlite import SQLiteStore
from mixlm.codec import bytes_to_tokens, content_hash
from mixlm.errors import StoreUnavailable
from mixlm.schemas import ItemText, RankRequest, RankResponse, RerankResponse
from mixlm.settings import Settings
from ranker_service.app import create_app
from ranker_service.engines.native import NativeEngine
from mixlm.encoding import encode_rows
from ranker_service.item_encoding import documents_as_items

TEXTS = {
    "py-berlin": "Senior Python engineer, Berlin. Django, Postgres, Kafka.",
    "nurse": "Registered nurse for night shifts in a city hospital.",
    "ds": "Data scientist, NLP and ranking models, remote.",
    "chef": "Pastry chef for a hotel kitchen.",
    "go-dev": "Backend developer, Go and Python microservices.",
    "welder": "Welder with shipyard experience (text only: cold start)",
    "driver": "Forklift driver, warehouse (text only: cold start)",
}
WITH_TOKENS = ["py-berlin", "nurse", "ds", "chef", "go-dev"]


def items() -> list[ItemText]:
    return [ItemText(item_id=k, title="", text=v, content_hash=content_hash("", v), updated_at=1_700_000_000_000 + i)
            for i, (k, v) in enumerate(TEXTS.items())]


def seed(store: FeatureStore, model) -> None:
    store.put_items(items())
    store.put_embeddings(encode_rows(model, [it for it in items() if it.item_id in WITH_TOKENS], "bf16"))


def direct_scores(model, store: FeatureStore, query: str, ids: list[str]) -> dict[str, float]:
    """MixLM.score_mixed on the item tokens as stored: what /rank must return."""
    rows = store.get_embeddings(model.model_version, ids)
    tokens = [bytes_to_tokens(rows[i].tokens, rows[i].n_tokens, rows[i].dim, rows[i].dtype) for i in ids]
    return dict(zip(ids, model.score_mixed(query, tokens).tolist()))


@pytest.fixture
def store(tiny_settings, tiny_model):
    s = SQLiteStore(tiny_settings.resolved_sqlite_path())
    s.init()
    seed(s, tiny_model)
    yield s
    s.close()


def client(settings: Settings, model, store, **kw) -> TestClient:
    return TestClient(create_app(settings, model=model, store=store, **kw))


def test_rank_orders_items_by_the_direct_mixed_scores(tiny_settings, tiny_model, store):
    with client(tiny_settings, tiny_model, store) as c:
        r = c.post("/rank", json={"query": "python developer", "item_ids": WITH_TOKENS})
    assert r.status_code == 200
    body = msgspec.json.decode(r.content, type=RankResponse)  # strictly the documented schema
    expected = direct_scores(tiny_model, store, "python developer", WITH_TOKENS)
    assert [x.item_id for x in body.results] == sorted(expected, key=lambda i: -expected[i])
    for x in body.results:
        assert x.score == pytest.approx(expected[x.item_id], abs=1e-5)
    assert body.model_version == tiny_model.model_version and body.missing == []
    assert {"store", "assemble", "score", "total"} <= set(body.timings_ms)


def test_top_k_keeps_the_best_and_repeated_ids_are_scored_once(tiny_settings, tiny_model, store):
    with client(tiny_settings, tiny_model, store) as c:
        full = c.post("/rank", json={"query": "nurse", "item_ids": WITH_TOKENS}).json()["results"]
        top = c.post("/rank", json={"query": "nurse", "item_ids": WITH_TOKENS + ["nurse"], "top_k": 2}).json()
    assert top["results"] == full[:2]


def test_missing_ids_are_reported_and_cold_start_encodes_and_writes_back_up_to_the_limit(tiny_settings, tiny_model,
                                                                                        store):
    settings = tiny_settings.model_copy(update={"cold_start_limit": 1})
    ids = ["py-berlin", "welder", "driver", "no-such-item"]
    with client(settings, tiny_model, store) as c:
        body = c.post("/rank", json={"query": "welding", "item_ids": ids}).json()
    scored = {x["item_id"] for x in body["results"]}
    assert scored == {"py-berlin", "welder"}  # welder: text, encoded on the fly (the limit is 1)
    assert body["missing"] == ["driver", "no-such-item"]
    written = store.get_embeddings(tiny_model.model_version, ["welder", "driver"])
    assert list(written) == ["welder"]
    welder = next(it for it in items() if it.item_id == "welder")
    assert written["welder"].source_updated_at == welder.updated_at
    assert written["welder"].content_hash == welder.content_hash
    expected = direct_scores(tiny_model, store, "welding", ["py-berlin", "welder"])
    for x in body["results"]:
        assert x["score"] == pytest.approx(expected[x["item_id"]], abs=1e-5)


def test_cold_start_off_reports_text_only_items_as_missing(tiny_settings, tiny_model, store):
    settings = tiny_settings.model_copy(update={"cold_start_limit": 0})
    with client(settings, tiny_model, store) as c:
        body = c.post("/rank", json={"query": "x", "item_ids": ["welder", "driver"]}).json()
    assert body["results"] == [] and body["missing"] == ["welder", "driver"]
    assert store.get_embeddings(tiny_model.model_version, ["welder"]) == {}


def test_text_engine_ranks_by_the_teacher_scores(tiny_settings, tiny_model, store):
    settings = tiny_settings.model_copy(update={"engine": "text"})
    ids = ["py-berlin", "nurse", "welder", "no-such-item"]
    with client(settings, tiny_model, store) as c:
        body = c.post("/rank", json={"query": "python", "item_ids": ids}).json()
    found = ids[:3]
    expected = dict(zip(found, tiny_model.score_text("python", [TEXTS[i] for i in found]).tolist()))
    assert body["missing"] == ["no-such-item"]
    assert {x["item_id"]: pytest.approx(expected[x["item_id"]], abs=1e-5) for x in body["results"]} == {
        x["item_id"]: x["score"] for x in body["results"]}


def test_rerank_scores_raw_documents_with_the_same_ranker(tiny_settings, tiny_model, store):
    docs = ["Python engineer", "Nurse", "Chef", "Go developer"]
    with client(tiny_settings, tiny_model, store) as c:
        r = c.post("/v1/rerank", json={"query": "python", "documents": docs, "top_n": 3, "return_documents": True})
    assert r.status_code == 200
    body = msgspec.json.decode(r.content, type=RerankResponse)
    rows = encode_rows(tiny_model, documents_as_items(docs), "bf16")
    expected = tiny_model.score_mixed("python", [bytes_to_tokens(x.tokens, x.n_tokens, x.dim, x.dtype) for x in rows])
    order = sorted(range(4), key=lambda i: -expected[i])[:3]
    assert [x.index for x in body.results] == order
    assert [x.document.text for x in body.results] == [docs[i] for i in order]
    for x in body.results:
        assert x.relevance_score == pytest.approx(float(expected[x.index]), abs=1e-5)


@pytest.mark.parametrize("payload, field", [
    ({"query": "q"}, "item_ids"),
    ({"query": "", "item_ids": ["a"]}, "query"),
    ({"query": "   ", "item_ids": ["a"]}, "query"),
    ({"query": "q", "item_ids": ["a", 3]}, "item_ids[1]"),
    ({"query": "q", "item_ids": ["a"], "top_k": -1}, "top_k"),
])
def test_invalid_bodies_are_422_naming_the_field(tiny_settings, tiny_model, store, payload, field):
    with client(tiny_settings, tiny_model, store) as c:
        r = c.post("/rank", json=payload)
    assert r.status_code == 422 and r.json()["field"] == field


def test_too_many_items_and_too_large_bodies_are_413(tiny_settings, tiny_model, store):
    settings = tiny_settings.model_copy(update={"max_items": 3, "max_body_bytes": 2048})
    with client(settings, tiny_model, store) as c:
        assert c.post("/rank", json={"query": "q", "item_ids": ["a", "b", "c", "d"]}).status_code == 413
        assert c.post("/v1/rerank", json={"query": "q", "documents": ["a"] * 4}).status_code == 413
        assert c.post("/rank", json={"query": "q" * 4000, "item_ids": ["a"]}).status_code == 413


def test_api_key_is_required_on_ranking_routes_but_not_on_health(tiny_settings, tiny_model, store):
    settings = tiny_settings.model_copy(update={"api_keys": ["k-one", "k-two"]})
    body = {"query": "q", "item_ids": ["nurse"]}
    with client(settings, tiny_model, store) as c:
        assert c.post("/rank", json=body).status_code == 401
        assert c.post("/rank", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/v1/rerank", json={"query": "q", "documents": ["d"]}).status_code == 401
        assert c.post("/rank", json=body, headers={"X-API-Key": "k-two"}).status_code == 200
        assert c.post("/rank", json=body, headers={"Authorization": "Bearer k-one"}).status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        assert c.get("/metrics").status_code == 401  # scrapers send the key too (docs/OPERATIONS.md)
        assert c.get("/metrics", headers={"Authorization": "Bearer k-one"}).status_code == 200


class Switchable(FeatureStore):
    """The real SQLite store behind a switch that makes it unreachable (fault injection, not a fake store)."""

    def __init__(self, inner: FeatureStore):
        self.inner, self.down = inner, False

    def _call(self, name: str, *args):
        if self.down:
            raise StoreUnavailable("store switched off by the test")
        return getattr(self.inner, name)(*args)

    def init(self): return self._call("init")
    def ping(self): return self._call("ping")
    def put_embeddings(self, rows): return self._call("put_embeddings", rows)
    def get_embeddings(self, version, ids): return self._call("get_embeddings", version, ids)
    def put_items(self, rows): return self._call("put_items", rows)
    def get_items(self, ids): return self._call("get_items", ids)
    def delete_items(self, version, deletes): return self._call("delete_items", version, deletes)
    def scan_items(self, batch_size=500): return self._call("scan_items", batch_size)


def test_store_down_is_503_with_retry_after_and_not_ready(tiny_settings, tiny_model, store):
    flaky = Switchable(store)
    with client(tiny_settings, tiny_model, flaky) as c:
        assert c.post("/rank", json={"query": "q", "item_ids": ["nurse"]}).status_code == 200
        flaky.down = True
        r = c.post("/rank", json={"query": "q", "item_ids": ["nurse"]})
        assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
        assert "Traceback" not in r.text
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "retry-after" in ready.headers
        assert c.get("/healthz").status_code == 200
        flaky.down = False
        assert c.get("/readyz").status_code == 200


class SpyEngine(NativeEngine):
    """The real native engine, recording the size of every batch; can hold the engine thread on a gate."""

    def __init__(self, model, gate: threading.Event | None = None):
        super().__init__(model)
        self.batch_sizes: list[int] = []
        self.gate, self.entered = gate, threading.Event()

    def score(self, batch):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.batch_sizes.append(len(batch))
        return super().score(batch)


@asynccontextmanager
async def running(app):
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ranker") as c:
            yield c


def test_concurrent_requests_are_batched_together_with_the_same_scores_as_alone(tiny_settings, tiny_model, store):
    queries = ["python", "nurse nights", "data science", "pastry", "go backend", "berlin"]
    settings = tiny_settings.model_copy(update={"batch_window_ms": 200.0})
    alone_settings = tiny_settings.model_copy(update={"batch_window_ms": 0.0})

    async def main():
        spy = SpyEngine(tiny_model)
        async with running(create_app(settings, model=tiny_model, store=store, engine=spy)) as c:
            together = await asyncio.gather(*(c.post("/rank", json={"query": q, "item_ids": WITH_TOKENS})
                                              for q in queries))
        async with running(create_app(alone_settings, model=tiny_model, store=store)) as c:
            alone = [await c.post("/rank", json={"query": q, "item_ids": WITH_TOKENS}) for q in queries]
        return spy.batch_sizes, together, alone

    sizes, together, alone = asyncio.run(main())
    assert max(sizes) > 1 and sum(sizes) == len(queries)
    for t, a in zip(together, alone):
        t_scores = {x["item_id"]: x["score"] for x in t.json()["results"]}
        a_scores = {x["item_id"]: x["score"] for x in a.json()["results"]}
        assert t_scores.keys() == a_scores.keys()
        for k in t_scores:
            assert t_scores[k] == pytest.approx(a_scores[k], abs=1e-5)


def test_full_queue_is_429_with_retry_after(tiny_settings, tiny_model, store):
    settings = tiny_settings.model_copy(update={"max_queue": 1, "batch_window_ms": 0.0, "max_batch_tokens": 64})
    body = {"query": "q", "item_ids": ["nurse"]}

    async def main():
        gate = threading.Event()
        spy = SpyEngine(tiny_model, gate)
        app = create_app(settings, model=tiny_model, store=store, engine=spy)
        async with running(app) as c:
            first = asyncio.ensure_future(c.post("/rank", json=body))
            while not spy.entered.is_set():  # the first request holds the engine thread
                await asyncio.sleep(0.01)
            second = asyncio.ensure_future(c.post("/rank", json=body))
            while app.state.service.batcher.depth < 1:  # the second one waits in the queue
                await asyncio.sleep(0.01)
            third = await c.post("/rank", json=body)
            gate.set()
            return third, await first, await second

    third, first, second = asyncio.run(main())
    assert third.status_code == 429 and int(third.headers["retry-after"]) >= 1
    assert first.status_code == 200 and second.status_code == 200


def test_metrics_count_requests_items_and_batches(tiny_settings, tiny_model, store):
    with client(tiny_settings, tiny_model, store) as c:
        c.post("/rank", json={"query": "q", "item_ids": ["nurse", "nope"]})
        c.post("/rank", json={"query": "q"})
        text = c.get("/metrics").text
    assert 'mixlm_requests_total{route="/rank",status="200"} 1.0' in text
    assert 'mixlm_requests_total{route="/rank",status="422"} 1.0' in text
    assert 'mixlm_items_total{outcome="missing",route="rank"} 1.0' in text
    assert "mixlm_batch_requests_count 1.0" in text
    assert 'mixlm_stage_seconds_count{route="rank",stage="score"} 1.0' in text
    assert "mixlm_queue_depth" in text


def test_openapi_schemas_are_the_msgspec_schemas(tiny_settings, tiny_model, store):
    with client(tiny_settings, tiny_model, store) as c:
        doc = c.get("/openapi.json").json()
    _, components = msgspec.json.schema_components([RankRequest], ref_template="#/components/schemas/{name}")
    published = doc["components"]["schemas"]["RankRequest"]
    assert published["properties"]["item_ids"].pop("maxItems") == tiny_settings.max_items
    assert published == msgspec.json.decode(msgspec.json.encode(components["RankRequest"]))
    rank = doc["paths"]["/rank"]["post"]
    assert rank["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/RankRequest")
    assert rank["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/RankResponse")
    assert {"401", "413", "422", "429", "503"} <= set(rank["responses"])
    assert "/v1/rerank" in doc["paths"] and "/readyz" in doc["paths"]


# --- the real Cassandra from `mixlm services up` ----------------------------------------------------------
CASSANDRA_KEYSPACE = "mixlm_test_ranker"


@pytest.mark.integration
def test_rank_over_cassandra_matches_direct_scores_and_cold_starts(cassandra_hosts, tiny_settings, tiny_model):
    settings = tiny_settings.model_copy(update={"cassandra_hosts": cassandra_hosts,
                                                "cassandra_keyspace": CASSANDRA_KEYSPACE, "cold_start_limit": 1})
    run = uuid.uuid4().hex[:8]  # this run's own ids: runs can share the keyspace
    seeded = [ItemText(item_id=f"{run}-{it.item_id}", title=it.title, text=it.text, content_hash=it.content_hash,
                       updated_at=it.updated_at) for it in items()]
    ids = [f"{run}-{k}" for k in ("py-berlin", "nurse", "ds", "welder", "driver")] + [f"{run}-ghost"]
    store = open_store(settings)
    store.init()
    try:
        store.put_items(seeded)
        store.put_embeddings(encode_rows(tiny_model, seeded[:3], "bf16"))
        with TestClient(create_app(settings, model=tiny_model)) as c:  # the app opens its own Cassandra store
            assert c.get("/readyz").status_code == 200
            body = c.post("/rank", json={"query": "python", "item_ids": ids}).json()
        assert body["missing"] == [f"{run}-driver", f"{run}-ghost"]
        scored = [x["item_id"] for x in body["results"]]
        assert set(scored) == {ids[0], ids[1], ids[2], f"{run}-welder"}
        expected = direct_scores(tiny_model, store, "python", scored)
        assert scored == sorted(expected, key=lambda i: -expected[i])
        for x in body["results"]:
            assert x["score"] == pytest.approx(expected[x["item_id"]], abs=1e-5)
        written = store.get_embeddings(tiny_model.model_version, [f"{run}-welder"])[f"{run}-welder"]
        assert written.source_updated_at == seeded[5].updated_at
    finally:
        store.close()


@pytest.mark.integration
def test_unreachable_cassandra_starts_not_ready_and_answers_503(cassandra_hosts, tiny_settings, tiny_model):
    settings = tiny_settings.model_copy(update={"cassandra_hosts": cassandra_hosts, "cassandra_port": free_port(),
                                                "cassandra_connect_timeout_s": 1.0})
    with TestClient(create_app(settings, model=tiny_model)) as c:
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"]
        r = c.post("/rank", json={"query": "q", "item_ids": ["a"]})
        assert r.status_code == 503 and "Cassandra" in r.json()["detail"]


# --- a real `mixlm serve` process with the real SmolLM2 weights -----------------------------------------
@pytest.mark.real_model
def test_mixlm_serve_process_ranks_with_the_real_weights(tmp_path, real_model):
    db = tmp_path / "store.sqlite"
    store = SQLiteStore(db)
    store.init()
    store.put_items(items())  # text only: the server cold-starts every item under its own model_version
    port = free_port()
    env = {**os.environ, "MIXLM_BASE_MODEL": "smollm2-135m", "MIXLM_WEIGHTS": "none", "MIXLM_DTYPE": "fp32",
           "MIXLM_DEVICE": "cpu", "MIXLM_SQLITE_PATH": str(db), "MIXLM_COLD_START_LIMIT": "16",
           "MIXLM_CASSANDRA_HOSTS": "[]", "MIXLM_PORT": str(port)}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mixlm"), "serve", "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            time.sleep(0.5)
        else:
            pytest.fail("mixlm serve did not become ready in 120 s")
        ids = list(TEXTS)
        r = httpx.post(f"{base}/rank", json={"query": "python developer in berlin", "item_ids": ids + ["ghost"]},
                       timeout=120)
        assert r.status_code == 200
        body = r.json()
        assert body["model_version"] == real_model.model_version and body["missing"] == ["ghost"]
        expected = direct_scores(real_model, store, "python developer in berlin", ids)  # tokens it wrote back
        assert [x["item_id"] for x in body["results"]] == sorted(expected, key=lambda i: -expected[i])
        for x in body["results"]:
            assert x["score"] == pytest.approx(expected[x["item_id"]], abs=1e-4)
    finally:
        proc.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status still says why it stopped.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        store.close()
