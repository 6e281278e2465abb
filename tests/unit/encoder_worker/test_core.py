import msgspec
import pytest
import torch

from encoder_worker.core import Message, latest_per_item
from mixlm import prompts
from mixlm.codec import bytes_to_tokens, content_hash
from mixlm.schemas import JobUpdate


def msg(item_id, updated_at, title="Data analyst", text="SQL and dashboards", op="upsert", offset=0, **extra):
    value = msgspec.json.encode({"item_id": item_id, "op": op, "updated_at": updated_at, "title": title,
                                 "text": text, **extra})
    return Message(item_id.encode(), value, partition=3, offset=offset, timestamp_ms=updated_at)


def test_valid_batch_is_encoded_once_and_written_under_the_model_version(core, store, tiny_model, encode_calls):
    result = core.process([msg(f"j{i}", 1000 + i, title=f"Job {i}", offset=i) for i in range(5)])
    assert len(encode_calls) == 1 and len(encode_calls[0]) == 5
    got = store.get_embeddings(tiny_model.model_version, [f"j{i}" for i in range(5)])
    assert sorted(got) == [f"j{i}" for i in range(5)]
    row = got["j2"]
    assert (row.n_tokens, row.dim, row.dtype, row.source_updated_at) == (tiny_model.n_item_tokens, tiny_model.dim, "bf16", 1002)
    expected = tiny_model.encode_items([prompts.item_text("Job 2", "SQL and dashboards")])[0]
    stored = bytes_to_tokens(row.tokens, row.n_tokens, row.dim, row.dtype).float()
    torch.testing.assert_close(stored, expected.to(torch.bfloat16).float())
    assert store.get_items(["j2"])["j2"].title == "Job 2"
    assert len(result.embeddings) == 5 and not result.dead_letters


def test_newest_update_per_item_in_a_batch_wins_whatever_the_arrival_order(core, store, tiny_model):
    result = core.process([msg("a", 300, title="newest"), msg("a", 100, title="oldest"), msg("a", 200, title="middle")])
    assert result.superseded == 2
    assert store.get_items(["a"])["a"].title == "newest"
    assert store.get_embeddings(tiny_model.model_version, ["a"])["a"].source_updated_at == 300


def test_latest_per_item_breaks_ties_by_arrival():
    ups = [JobUpdate(item_id="a", op="upsert", updated_at=5, title="first"),
           JobUpdate(item_id="a", op="upsert", updated_at=5, title="second")]
    assert latest_per_item(ups)[0].title == "second"


def test_unchanged_content_is_not_encoded_again(core, encode_calls):
    core.process([msg("a", 100)])
    result = core.process([msg("a", 100)])  # a replay after a crash
    assert result.unchanged == 1 and not result.embeddings
    assert len(encode_calls) == 1


def test_same_content_with_a_newer_time_is_restamped_without_encoding(core, store, tiny_model, encode_calls):
    core.process([msg("a", 100)])
    result = core.process([msg("a", 200)])
    assert len(encode_calls) == 1 and len(result.embeddings) == 1
    assert store.get_embeddings(tiny_model.model_version, ["a"])["a"].source_updated_at == 200
    core.process([msg("a", 150, op="delete")])  # a delete older than the re-stamped upsert loses
    assert "a" in store.get_embeddings(tiny_model.model_version, ["a"])


def test_update_older_than_the_stored_one_is_skipped(core, store, tiny_model, encode_calls):
    core.process([msg("a", 200, title="new")])
    result = core.process([msg("a", 100, title="old")])
    assert result.stale == 1 and len(encode_calls) == 1
    assert store.get_items(["a"])["a"].title == "new"


def test_changed_content_is_encoded_and_replaces_the_tokens(core, store, tiny_model):
    core.process([msg("a", 100, title="Nurse")])
    core.process([msg("a", 200, title="Welder")])
    row = store.get_embeddings(tiny_model.model_version, ["a"])["a"]
    assert row.content_hash == content_hash("Welder", "SQL and dashboards", {})


def test_delete_and_tombstone_remove_text_and_tokens(core, store, tiny_model):
    core.process([msg("a", 100), msg("b", 100)])
    result = core.process([msg("a", 200, op="delete"), Message(b"b", None, 0, 9, timestamp_ms=200)])
    assert sorted(result.deletes) == [("a", 200), ("b", 200)]
    assert store.get_embeddings(tiny_model.model_version, ["a", "b"]) == {}
    assert store.get_items(["a", "b"]) == {}


def test_invalid_messages_become_dead_letters_with_source_offset_and_the_rest_is_written(core, store, tiny_model):
    bad = [
        Message(b"x", b"{not json", 1, 10),
        Message(b"y", b'{"item_id": "y", "op": "upsert"}', 1, 11),
        msg("z", 5, text="x" * 600, offset=12),
        Message(b"other", msgspec.json.encode({"item_id": "w", "op": "upsert", "updated_at": 1, "title": "T"}), 1, 13),
        Message(None, None, 1, 14),
        Message(b"\xff\xfe", b"{}", 1, 15),
    ]
    result = core.process([msg("ok", 5, offset=9), *bad])
    reasons = {d.offset: d.error for d in result.dead_letters}
    assert sorted(reasons) == [10, 11, 12, 13, 14, 15]
    assert "malformed JSON" in reasons[10]
    assert "updated_at" in reasons[11]
    assert "too long" in reasons[12]
    assert "does not match" in reasons[13]
    assert "tombstone without a key" in reasons[14]
    assert "UTF-8" in reasons[15]
    assert dict(result.dead_letters[0].headers())["source_offset"] == b"10"
    assert list(store.get_embeddings(tiny_model.model_version, ["ok", "x", "y", "z", "w"])) == ["ok"]
    assert core.metrics.registry.get_sample_value("mixlm_worker_dlq_total") == 6


def test_replaying_a_batch_leaves_the_same_state(core, store, tiny_model):
    batch = [msg("a", 100, title="A1"), msg("b", 100), msg("a", 300, title="A3"), msg("b", 200, op="delete")]
    core.process(batch)
    first = (store.get_items(["a", "b"]), store.get_embeddings(tiny_model.model_version, ["a", "b"]))
    core.process(batch)
    second = (store.get_items(["a", "b"]), store.get_embeddings(tiny_model.model_version, ["a", "b"]))
    assert first == second and list(first[1]) == ["a"]


def test_freshness_and_items_encoded_are_counted(core):
    core.process([msg("a", 1), msg("b", 2)])
    assert core.metrics.registry.get_sample_value("mixlm_worker_items_encoded_total") == 2
    assert core.metrics.registry.get_sample_value("mixlm_worker_freshness_seconds_count") == 2


def test_a_message_that_breaks_encoding_is_dead_lettered_alone_and_the_rest_is_written(core, store, tiny_model,
                                                                                       monkeypatch):
    real = tiny_model.encode_items

    def fragile(texts, *a, **kw):
        if any("POISON" in t for t in texts):
            raise RuntimeError("tokenizer exploded")
        return real(texts, *a, **kw)

    monkeypatch.setattr(tiny_model, "encode_items", fragile)
    result = core.process([msg("a", 1, offset=1), msg("b", 1, title="POISON", offset=2), msg("c", 1, offset=3)])
    assert [(d.offset, d.error) for d in result.dead_letters] == [(2, "processing failed: RuntimeError: tokenizer exploded")]
    assert sorted(store.get_embeddings(tiny_model.model_version, ["a", "b", "c"])) == ["a", "c"]


def test_store_outage_is_raised_so_the_transport_retries_without_committing(core, monkeypatch):
    from mixlm.errors import StoreUnavailable

    def down(*a, **kw):
        raise StoreUnavailable("cassandra down")

    monkeypatch.setattr(core.store, "put_items", down)
    with pytest.raises(StoreUnavailable):
        core.process([msg("a", 1)])
