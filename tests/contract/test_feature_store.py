"""One contract, every backend: SQLite (embedded) and the real Cassandra from `mixlm services up`.

Each test works under its own id prefix and model_version, so the Cassandra runs can share one keyspace.
"""

from __future__ import annotations

import socket
import uuid

import pytest
import torch

from feature_store.base import MAX_READ
from feature_store.cassandra import CassandraStore
from feature_store.sqlite import SQLiteStore
from mixlm.codec import bytes_to_tokens, content_hash, tokens_to_bytes
from mixlm.errors import CodecError, StoreUnavailable
from mixlm.schemas import ItemEmbedding, ItemText
from mixlm.settings import Settings

KEYSPACE = "mixlm_contract"
DIM = 576


@pytest.fixture(scope="session")
def contract_keyspace(cassandra_hosts):
    yield KEYSPACE
    store = CassandraStore(Settings(cassandra_hosts=cassandra_hosts, cassandra_keyspace=KEYSPACE))
    store._connect().execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=60)
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.integration),
                        pytest.param("cassandra-per-id", marks=pytest.mark.integration)])
def store(request, tmp_path):
    """SQLite; Cassandra reading in IN chunks (the default); Cassandra with one select per id."""
    if request.param == "sqlite":
        backend = SQLiteStore(tmp_path / "store.sqlite")
    else:
        hosts = request.getfixturevalue("cassandra_hosts")
        backend = CassandraStore(Settings(cassandra_hosts=hosts, cassandra_keyspace=request.getfixturevalue("contract_keyspace"),
                                          cassandra_read_batch=1 if request.param == "cassandra-per-id" else 50))
    backend.init()
    yield backend
    backend.close()


@pytest.fixture
def ns() -> str:
    """A unique prefix for this test's item ids and model_version."""
    return uuid.uuid4().hex[:10]


def embedding(ns: str, item_id: str, ts: int, seed: int = 0, dtype: str = "bf16", n_tokens: int = 2,
              chash: bytes = b"h" * 16) -> ItemEmbedding:
    tokens = torch.randn(n_tokens, DIM, generator=torch.Generator().manual_seed(seed))
    return ItemEmbedding(model_version=f"mv-{ns}", item_id=f"{ns}-{item_id}", tokens=tokens_to_bytes(tokens, dtype),
                         n_tokens=n_tokens, dim=DIM, dtype=dtype, content_hash=chash, source_updated_at=ts,
                         encoded_at=ts + 5)


def item(ns: str, item_id: str, ts: int, title: str = "Data engineer") -> ItemText:
    text, fields = f"Build pipelines ({item_id})", {"company": "Acme", "location": "Berlin"}
    return ItemText(item_id=f"{ns}-{item_id}", title=title, text=text, fields=fields,
                    content_hash=content_hash(title, text, fields), updated_at=ts)


def test_bf16_and_fp16_tokens_round_trip_bit_exact(store, ns):
    rows = [embedding(ns, "a", 100, seed=1, dtype="bf16"), embedding(ns, "b", 100, seed=2, dtype="fp16", n_tokens=1)]
    store.put_embeddings(rows)
    got = store.get_embeddings(f"mv-{ns}", [r.item_id for r in rows])
    assert got == {r.item_id: r for r in rows}
    for row in rows:
        back = bytes_to_tokens(got[row.item_id].tokens, row.n_tokens, row.dim, row.dtype)
        assert torch.equal(back.view(torch.int16), bytes_to_tokens(row.tokens, row.n_tokens, row.dim, row.dtype).view(torch.int16))


def test_stale_embedding_write_is_ignored_and_newer_one_wins(store, ns):
    store.put_embeddings([embedding(ns, "a", 200, seed=1)])
    store.put_embeddings([embedding(ns, "a", 100, seed=2)])
    assert store.get_embeddings(f"mv-{ns}", [f"{ns}-a"])[f"{ns}-a"] == embedding(ns, "a", 200, seed=1)
    store.put_embeddings([embedding(ns, "a", 300, seed=3)])
    assert store.get_embeddings(f"mv-{ns}", [f"{ns}-a"])[f"{ns}-a"] == embedding(ns, "a", 300, seed=3)


def test_stale_item_text_write_is_ignored(store, ns):
    store.put_items([item(ns, "a", 200, title="New title")])
    store.put_items([item(ns, "a", 100, title="Old title")])
    assert store.get_items([f"{ns}-a"])[f"{ns}-a"].title == "New title"


def test_replaying_the_same_writes_is_idempotent(store, ns):
    rows, texts = [embedding(ns, "a", 100), embedding(ns, "b", 100, seed=4)], [item(ns, "a", 100)]
    for _ in range(3):
        store.put_embeddings(rows)
        store.put_items(texts)
    assert store.get_embeddings(f"mv-{ns}", [f"{ns}-a", f"{ns}-b"]) == {r.item_id: r for r in rows}
    assert store.get_items([f"{ns}-a"]) == {f"{ns}-a": texts[0]}


def test_delete_then_late_older_upsert_stays_deleted(store, ns):
    store.put_items([item(ns, "a", 100)])
    store.put_embeddings([embedding(ns, "a", 100)])
    store.delete_items(f"mv-{ns}", [(f"{ns}-a", 200)])
    assert store.get_items([f"{ns}-a"]) == {} and store.get_embeddings(f"mv-{ns}", [f"{ns}-a"]) == {}
    store.put_items([item(ns, "a", 150)])  # arrived late, but older than the delete
    store.put_embeddings([embedding(ns, "a", 200)])  # same timestamp as the delete: the delete wins
    assert store.get_items([f"{ns}-a"]) == {} and store.get_embeddings(f"mv-{ns}", [f"{ns}-a"]) == {}
    store.put_items([item(ns, "a", 250)])  # a genuinely newer upsert brings it back
    assert set(store.get_items([f"{ns}-a"])) == {f"{ns}-a"}


def test_delete_older_than_the_stored_row_leaves_it(store, ns):
    store.put_items([item(ns, "a", 300)])
    store.put_embeddings([embedding(ns, "a", 300)])
    store.delete_items(f"mv-{ns}", [(f"{ns}-a", 200)])
    assert set(store.get_items([f"{ns}-a"])) == {f"{ns}-a"}
    assert set(store.get_embeddings(f"mv-{ns}", [f"{ns}-a"])) == {f"{ns}-a"}


def test_read_of_1000_ids_returns_the_present_ones_and_leaves_out_the_missing(store, ns):
    present = [embedding(ns, f"i{k}", 100 + k, seed=k, n_tokens=1) for k in range(MAX_READ) if k % 10]
    store.put_embeddings(present)
    ids = [f"{ns}-i{k}" for k in range(MAX_READ)]
    got = store.get_embeddings(f"mv-{ns}", ids)
    assert len(present) == 900 and got == {r.item_id: r for r in present}


def test_tokens_are_scoped_to_their_model_version(store, ns):
    store.put_embeddings([embedding(ns, "a", 100)])
    assert store.get_embeddings(f"other-{ns}", [f"{ns}-a"]) == {}


@pytest.mark.parametrize("change, message", [
    ({"dim": DIM + 1}, "need"),          # bytes do not match [n_tokens, dim]
    ({"dtype": "fp32"}, "dtype"),        # not a store dtype
    ({"n_tokens": 3}, "need"),           # more tokens than bytes
    ({"tokens": b"\x00" * 7}, "need"),   # odd byte length
])
def test_wrong_shape_or_dtype_is_rejected_and_nothing_is_written(store, ns, change, message):
    import msgspec

    good = embedding(ns, "good", 100)
    bad = msgspec.structs.replace(embedding(ns, "bad", 100), **change)
    with pytest.raises(CodecError, match=message):
        store.put_embeddings([good, bad])
    assert store.get_embeddings(f"mv-{ns}", [good.item_id, bad.item_id]) == {}


def test_missing_embeddings_lists_items_without_current_tokens(store, ns):
    texts = [item(ns, k, 100) for k in ("has", "stale", "none")]
    store.put_items(texts)
    store.put_embeddings([embedding(ns, "has", 100, chash=texts[0].content_hash),
                          embedding(ns, "stale", 100, chash=b"old-hash-0123456")])
    todo = {it.item_id for batch in store.missing_embeddings(f"mv-{ns}", batch_size=2) for it in batch}
    assert {i for i in todo if i.startswith(ns)} == {f"{ns}-stale", f"{ns}-none"}


def test_scan_items_pages_through_every_live_item_once(store, ns):
    store.put_items([item(ns, f"s{k:02d}", 100) for k in range(23)])
    store.delete_items(f"mv-{ns}", [(f"{ns}-s00", 200)])
    pages = list(store.scan_items(batch_size=5))
    seen = [it.item_id for page in pages for it in page]
    assert all(len(page) <= 5 for page in pages)
    assert len(seen) == len(set(seen))
    assert {i for i in seen if i.startswith(ns)} == {f"{ns}-s{k:02d}" for k in range(1, 23)}


def test_more_than_max_read_ids_is_refused(store, ns):
    with pytest.raises(ValueError, match=str(MAX_READ)):
        store.get_embeddings(f"mv-{ns}", [f"{ns}-{k}" for k in range(MAX_READ + 1)])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("backend", ["sqlite", "cassandra"])
def test_unreachable_store_raises_store_unavailable(backend, tmp_path):
    if backend == "sqlite":
        (tmp_path / "not-a-dir").write_text("")
        store = SQLiteStore(tmp_path / "not-a-dir" / "store.sqlite")
    else:
        store = CassandraStore(Settings(cassandra_hosts=["127.0.0.1"], cassandra_port=_closed_port(),
                                        cassandra_connect_timeout_s=1.0))
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.get_embeddings("mv", ["a"])
    store.close()
