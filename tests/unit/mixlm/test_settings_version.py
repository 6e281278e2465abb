from pathlib import Path

from mixlm.settings import Settings
from mixlm.version import model_version


def test_settings_read_the_mixlm_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("MIXLM_N_ITEM_TOKENS", "4")
    monkeypatch.setenv("MIXLM_CASSANDRA_HOSTS", '["10.0.0.1","10.0.0.2"]')
    monkeypatch.setenv("MIXLM_HOME", str(tmp_path))
    s = Settings()
    assert s.n_item_tokens == 4 and s.cassandra_hosts == ["10.0.0.1", "10.0.0.2"]
    assert s.resolved_sqlite_path() == tmp_path / "store.sqlite"


def test_secrets_are_not_in_the_repr():
    s = Settings(api_keys=["sekret-key"], cassandra_password="pw-123", kafka_password="pw-456")
    assert "sekret-key" not in repr(s) and "pw-123" not in repr(s) and "pw-456" not in repr(s)


def test_model_version_depends_on_encoder_and_sampling():
    v = model_version("base", "enc", 1)
    assert len(v) == 12 and v == model_version("base", "enc", 1)
    assert v != model_version("base", "enc", 2)
    assert v != model_version("base", "enc2", 1)
    assert v != model_version("base2", "enc", 1)
