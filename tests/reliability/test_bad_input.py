"""Bad input is refused, never crashes anything (issue 10, "Bad input").

- schemathesis walks every operation of the ranker's own OpenAPI document (valid and schema-violating
  examples): no 500, and status codes, headers and bodies match the document;
- the encoder worker's decode path is fuzzed with random bytes and random JSON objects: ``process()`` never
  raises on them, each bad message lands in the batch's dead letters with its offset;
- the configured limits: query too long (422 naming the field), too many items (413), oversized body (413).
"""

from __future__ import annotations

import msgspec
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings, strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from encoder_worker.core import EncoderCore, Message
from feature_store.base import open_store
from feature_store.sqlite import SQLiteStore
from mixlm.codec import content_hash
from mixlm.encoding import encode_rows
from mixlm.schemas import ItemText
from mixlm.settings import Settings
from ranker_service.app import create_app

REAL_HOME = Settings().home  # the converted tiny model cache, shared with tests/conftest.py
LIMITS = {"max_items": 8, "max_query_chars": 200, "max_body_bytes": 4096, "cold_start_limit": 2}
STORED = {"py": "Python engineer, Berlin.", "nurse": "Night nurse, city hospital.", "chef": "Pastry chef."}
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 40}  # -> up to 230 requests
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


def _seed(path, model) -> None:
    store = SQLiteStore(path)
    store.init()
    rows = [ItemText(item_id=k, title="", text=v, content_hash=content_hash("", v), updated_at=1_700_000_000_000)
            for k, v in STORED.items()]
    store.put_items(rows)
    store.put_embeddings(encode_rows(model, rows[:2], "bf16"))
    store.close()


@pytest.fixture(scope="module")
def ranker_app(tmp_path_factory, tiny_model):
    """The ranker app on the tiny model over a seeded SQLite store, small limits so examples stay cheap."""
    tmp = tmp_path_factory.mktemp("bad_input")
    s = Settings(home=REAL_HOME, base_model="tiny", dtype="fp32", weights="none", device="cpu",
                 sqlite_path=tmp / "store.sqlite", weights_dir=tmp / "weights", **LIMITS)
    _seed(s.resolved_sqlite_path(), tiny_model)
    return create_app(s, model=tiny_model)


@pytest.fixture(scope="module")
def ranker_schema(ranker_app):
    return schemathesis.openapi.from_asgi("/openapi.json", ranker_app)


def _operations(schema) -> dict[str, object]:
    return {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in schema.get_all_operations())}


def test_the_schema_documents_every_public_route(ranker_schema):
    assert set(_operations(ranker_schema)) >= {"POST /rank", "POST /v1/rerank", "GET /items", "GET /healthz",
                                               "GET /readyz", "GET /metrics"}


# Valid examples (the handler must answer 2xx/4xx as documented) and schema-violating ones (must be refused
# as documented, never a 500). schemathesis' pytest loader does not run under pytest 9, so the operations
# are walked here with their hypothesis strategies.
# Operations without a body or bounded parameters have no schema-violating example to send.
P, N = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
@pytest.mark.parametrize("operation, mode", [("POST /rank", P), ("POST /rank", N), ("POST /v1/rerank", P),
                                             ("POST /v1/rerank", N), ("GET /items", P), ("GET /healthz", P),
                                             ("GET /readyz", P), ("GET /metrics", P)])
def test_every_operation_answers_within_its_documented_schema_and_never_500(ranker_schema, operation, mode):
    op = _operations(ranker_schema)[operation]
    calls = []

    @settings(max_examples=EXAMPLES[mode], deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case):
        calls.append(case.call_and_validate(checks=CHECKS).status_code)

    run()
    assert calls and all(code < 500 for code in calls)


# --- the encoder worker's decode path ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def worker_core(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("fuzz_worker")
    s = Settings(home=REAL_HOME, base_model="tiny", dtype="fp32", weights="none", device="cpu",
                 sqlite_path=tmp / "store.sqlite", max_text_chars=300, worker_batch_size=8)
    store = open_store(s)
    store.init()
    yield EncoderCore(tiny_model, store, s)
    store.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# Objects shaped like a JobUpdate, with any field missing, mistyped or out of range.
update_like = st.fixed_dictionaries({}, optional={
    "item_id": st.text(max_size=20) | json_values,
    "op": st.sampled_from(["upsert", "delete", "UPSERT", ""]) | json_values,
    "updated_at": st.integers(min_value=-2**70, max_value=2**70) | json_values,
    "title": st.text(max_size=50) | json_values,
    "text": st.text(max_size=400) | json_values,
    "fields": st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=3) | json_values,
    "surprise": json_values,
})
raw_values = (st.binary(max_size=200) | json_values.map(msgspec.json.encode)
              | update_like.map(msgspec.json.encode) | st.none())
keys = st.none() | st.binary(max_size=12) | st.text(max_size=12).map(str.encode)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(st.tuples(keys, raw_values), min_size=1, max_size=6))
def test_worker_process_never_raises_on_arbitrary_messages_and_dead_letters_what_it_cannot_use(worker_core, batch):
    messages = [Message(key=k, value=v, offset=i) for i, (k, v) in enumerate(batch)]
    result = worker_core.process(messages)  # must not raise
    dead = {d.offset for d in result.dead_letters}
    written = {it.item_id for it in result.items} | {i for i, _ in result.deletes}
    for m in messages:
        if m.offset in dead:
            continue
        # Anything not dead-lettered was a valid update: its item id is written, or it was deduplicated
        # (superseded / unchanged / stale) against another update of the same item.
        key = m.key.decode() if m.key is not None else None
        item_id = key if m.value is None else msgspec.json.decode(m.value)["item_id"]
        assert item_id in written or result.superseded + result.unchanged + result.stale > 0
    assert all(d.error for d in result.dead_letters)
    assert len(dead) == len(result.dead_letters)  # one dead letter per bad message, by its own offset


def test_worker_dead_letters_carry_the_message_and_its_source_offset(worker_core):
    bad = [Message(key=b"k", value=b"\xff\xfe not json", partition=3, offset=41),
           Message(key=b"\xff", value=b'{"item_id": "x"}', partition=3, offset=42),
           Message(key=None, value=None, partition=3, offset=43),
           Message(key=b"a", value=b'{"item_id": "b", "op": "upsert", "updated_at": 1, "text": "t"}', offset=44),
           Message(key=b"x", value=msgspec.json.encode({"item_id": "x", "op": "upsert", "updated_at": 1,
                                                        "text": "y" * 1000}), offset=45)]
    result = worker_core.process(bad)
    assert [d.offset for d in result.dead_letters] == [41, 42, 43, 44, 45]
    assert [d.value for d in result.dead_letters] == [m.value for m in bad]
    assert dict(result.dead_letters[0].headers())["source_offset"] == b"41"
    assert "too long" in result.dead_letters[4].error and result.items == []


# --- limits --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(ranker_app):
    with TestClient(ranker_app) as c:
        yield c


@pytest.mark.parametrize("path, payload, field", [
    ("/rank", {"query": "q" * 201, "item_ids": ["py"]}, "query"),
    ("/rank", {"query": "q", "user_context": "u" * 201, "item_ids": ["py"]}, "user_context"),
    ("/v1/rerank", {"query": "q" * 201, "documents": ["d"]}, "query"),
    ("/rank", {"query": "   ", "item_ids": ["py"]}, "query"),
])
def test_too_long_or_blank_query_is_422_naming_the_field(client, path, payload, field):
    r = client.post(path, json=payload)
    assert r.status_code == 422 and r.json()["field"] == field


def test_query_at_the_limit_is_accepted(client):
    r = client.post("/rank", json={"query": "q" * 200, "item_ids": ["py", "nurse"]})
    assert r.status_code == 200 and {x["item_id"] for x in r.json()["results"]} == {"py", "nurse"}


@pytest.mark.parametrize("path, payload", [
    ("/rank", {"query": "q", "item_ids": [f"i{n}" for n in range(9)]}),
    ("/v1/rerank", {"query": "q", "documents": ["d"] * 9}),
])
def test_too_many_items_is_413(client, path, payload):
    r = client.post(path, json=payload)
    assert r.status_code == 413 and "at most 8" in r.json()["detail"]


def test_too_many_ids_on_items_is_413(client):
    assert client.get("/items", params={"ids": ",".join(f"i{n}" for n in range(9))}).status_code == 413


def test_body_over_max_body_bytes_is_413_declared_or_streamed(client):
    big = msgspec.json.encode({"query": "q", "documents": ["x" * 5000]})
    assert client.post("/v1/rerank", content=big, headers={"content-type": "application/json"}).status_code == 413

    def chunks():  # no Content-Length: the limit holds while streaming the body
        yield big[:2000]
        yield big[2000:]

    r = client.post("/v1/rerank", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_large_document_text_under_the_body_limit_is_scored(client):
    r = client.post("/v1/rerank", json={"query": "python", "documents": ["y" * 3000, "short"]})
    assert r.status_code == 200 and len(r.json()["results"]) == 2
