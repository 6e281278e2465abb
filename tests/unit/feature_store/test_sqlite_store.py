"""SQLite specifics beyond the shared contract (tests/contract): WAL, threads, tombstones on disk."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import torch

from feature_store.sqlite import SQLiteStore
from mixlm.codec import tokens_to_bytes
from mixlm.schemas import ItemEmbedding, ItemText


def _emb(i: int, ts: int = 100) -> ItemEmbedding:
    return ItemEmbedding(model_version="v1", item_id=f"job-{i}", tokens=tokens_to_bytes(torch.full((1, 8), float(i)), "bf16"),
                         n_tokens=1, dim=8, dtype="bf16", content_hash=b"h" * 16, source_updated_at=ts, encoded_at=ts)


def test_store_file_is_in_wal_mode(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    store.init()
    store.close()
    assert sqlite3.connect(tmp_path / "s.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reads_and_writes_from_a_thread_pool_all_succeed(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    store.put_embeddings([_emb(i) for i in range(200)])

    def work(k: int) -> int:
        if k % 4 == 0:
            store.put_embeddings([_emb(1000 + k)])
        return len(store.get_embeddings("v1", [f"job-{i}" for i in range(k, k + 50)]))

    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(work, range(100)))
    assert counts == [50] * 100  # every read sees all 50 of its pre-written ids while writers run
    assert len(store.get_embeddings("v1", [f"job-{1000 + k}" for k in range(0, 100, 4)])) == 25
    store.close()


def test_delete_tombstone_survives_reopening_the_file(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    store.put_items([ItemText(item_id="a", title="t", text="x", content_hash=b"h", updated_at=100)])
    store.delete_items("v1", [("a", 200)])
    store.close()
    reopened = SQLiteStore(tmp_path / "s.sqlite")
    reopened.put_items([ItemText(item_id="a", title="t", text="x", content_hash=b"h", updated_at=150)])
    assert reopened.get_items(["a"]) == {}
    reopened.close()


def test_duplicate_ids_in_one_read_are_returned_once(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    store.put_embeddings([_emb(1)])
    assert list(store.get_embeddings("v1", ["job-1", "job-1", "job-2"])) == ["job-1"]
