"""`mixlm store init|inspect|stats` against the embedded SQLite store."""

from __future__ import annotations

import torch
from click.testing import CliRunner

from feature_store.sqlite import SQLiteStore
from mixlm.cli import cli
from mixlm.codec import tokens_to_bytes
from mixlm.schemas import ItemEmbedding, ItemText


def _run(tmp_path, *args):
    env = {"MIXLM_SQLITE_PATH": str(tmp_path / "s.sqlite"), "MIXLM_CASSANDRA_HOSTS": "[]"}
    return CliRunner().invoke(cli, ["store", *args], env=env)


def test_init_is_idempotent(tmp_path):
    for _ in range(2):
        result = _run(tmp_path, "init")
        assert result.exit_code == 0, result.output
        assert "SQLite" in result.output


def test_inspect_shows_the_item_row_and_its_tokens(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    store.put_items([ItemText(item_id="job-1", title="Welder", text="MIG welding", content_hash=b"\x01" * 16, updated_at=1_700_000_000_000)])
    tokens = torch.tensor([[0.5, -1.25, 2.0, 0.0]])
    store.put_embeddings([ItemEmbedding(model_version="v9", item_id="job-1", tokens=tokens_to_bytes(tokens, "bf16"), n_tokens=1,
                                        dim=4, dtype="bf16", content_hash=b"\x02" * 16, source_updated_at=1_700_000_000_000,
                                        encoded_at=1_700_000_001_000)])
    store.close()
    result = _run(tmp_path, "inspect", "job-1", "--model-version", "v9")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "title: Welder" in out and "shape: [1, 4]  dtype: bf16  bytes: 8" in out
    assert "+0.5000, -1.2500, +2.0000, +0.0000" in out
    assert "02" * 16 in out and "stale" in out  # the tokens' hash differs from the item's
    assert "2023-11-14T22:13:20.000+00:00" in out


def test_inspect_says_when_tokens_are_missing(tmp_path):
    result = _run(tmp_path, "inspect", "nope", "--model-version", "v9")
    assert result.exit_code == 0 and "absent" in result.output


def test_stats_counts_rows(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    store.put_items([ItemText(item_id=f"j{i}", title="t", text="x", content_hash=b"h", updated_at=1) for i in range(3)])
    store.close()
    result = _run(tmp_path, "stats")
    assert result.exit_code == 0 and "items: 3" in result.output
