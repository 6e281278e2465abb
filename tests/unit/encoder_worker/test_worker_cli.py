"""`mixlm backfill` and `mixlm worker` from the command line, embedded store (SQLite), tiny model."""

from click.testing import CliRunner

from encoder_worker.launch import settings_env
from feature_store.base import open_store
from mixlm.cli import cli
from mixlm.codec import content_hash
from mixlm.schemas import ItemText


def test_backfill_dry_run_counts_then_backfill_encodes_then_nothing_is_left(tiny_settings, tiny_model):
    store = open_store(tiny_settings)
    store.init()
    store.put_items([ItemText(item_id=f"b{i}", title=f"Clerk {i}", text="Files", content_hash=content_hash(f"Clerk {i}", "Files"),
                              updated_at=10) for i in range(4)])
    env, runner = settings_env(tiny_settings), CliRunner()
    try:
        out = runner.invoke(cli, ["backfill", "--dry-run"], env=env)
        assert out.exit_code == 0 and "would encode 4 items" in out.output, out.output
        assert store.get_embeddings(tiny_model.model_version, ["b0"]) == {}
        out = runner.invoke(cli, ["backfill", "--batch-size", "3"], env=env)
        assert out.exit_code == 0 and "encoded 4 items" in out.output, out.output
        assert len(store.get_embeddings(tiny_model.model_version, [f"b{i}" for i in range(4)])) == 4
        assert list(store.missing_embeddings(tiny_model.model_version)) == []
    finally:
        store.close()


def test_worker_without_kafka_explains_the_embedded_path(tiny_settings):
    out = CliRunner().invoke(cli, ["worker"], env=settings_env(tiny_settings))
    assert out.exit_code == 2 and "MIXLM_KAFKA_BOOTSTRAP" in out.output
