"""`mixlm post` without Kafka: the embedded bus encodes in-process into the SQLite store."""

import json

from click.testing import CliRunner

from feature_store.base import open_store
from mixlm.cli import cli


def _env(settings) -> dict[str, str]:
    return {"MIXLM_HOME": str(settings.home), "MIXLM_BASE_MODEL": "tiny", "MIXLM_DTYPE": "fp32",
            "MIXLM_WEIGHTS": "none", "MIXLM_DEVICE": "cpu", "MIXLM_SQLITE_PATH": str(settings.sqlite_path),
            "MIXLM_KAFKA_BOOTSTRAP": "", "MIXLM_CASSANDRA_HOSTS": "[]"}


def test_post_file_without_kafka_writes_items_and_summarises_rejects(tiny_settings, tiny_model, tmp_path):
    path = tmp_path / "jobs.jsonl"
    rows = [{"item_id": f"p{i}", "title": f"Cook {i}", "text": "Grill"} for i in range(6)] + [{"title": "no id"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    out = CliRunner().invoke(cli, ["post", str(path)], env=_env(tiny_settings))
    assert out.exit_code == 0, out.output
    assert "sent 6, rejected 2, failed 0" in out.output
    assert "missing field item_id" in out.output and "malformed JSON" in out.output
    store = open_store(tiny_settings)
    try:
        assert len(store.get_embeddings(tiny_model.model_version, [f"p{i}" for i in range(6)])) == 6
    finally:
        store.close()


def test_post_single_item_then_delete_it(tiny_settings, tiny_model):
    runner, env = CliRunner(), _env(tiny_settings)
    assert runner.invoke(cli, ["post", "--item-id", "x", "--title", "Pilot"], env=env).exit_code == 0
    store = open_store(tiny_settings)
    try:
        assert "x" in store.get_embeddings(tiny_model.model_version, ["x"])
        out = runner.invoke(cli, ["post", "--item-id", "x", "--delete"], env=env)
        assert out.exit_code == 0, out.output
        assert store.get_embeddings(tiny_model.model_version, ["x"]) == {}
    finally:
        store.close()


def test_post_needs_a_file_or_an_item_id(tiny_settings):
    out = CliRunner().invoke(cli, ["post"], env=_env(tiny_settings))
    assert out.exit_code == 2 and "FILE" in out.output
