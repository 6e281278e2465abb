import pytest

from encoder_worker.core import EncoderCore
from feature_store.base import open_store


@pytest.fixture
def store(tiny_settings):
    s = open_store(tiny_settings)
    s.init()
    yield s
    s.close()


@pytest.fixture
def core(tiny_model, store, tiny_settings):
    return EncoderCore(tiny_model, store, tiny_settings.model_copy(update={"max_text_chars": 500, "worker_batch_size": 8}))


@pytest.fixture
def encode_calls(tiny_model, monkeypatch):
    """Texts passed to each MixLM.encode_items call (a spy on the real model, which still runs)."""
    calls: list[list[str]] = []
    real = tiny_model.encode_items

    def spy(texts, *a, **kw):
        calls.append(list(texts))
        return real(texts, *a, **kw)

    monkeypatch.setattr(tiny_model, "encode_items", spy)
    return calls
