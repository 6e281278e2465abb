"""Write-time checks shared by both backends: the error names the item and what is wrong."""

from __future__ import annotations

import pytest
import torch

from feature_store.validate import check_embeddings, check_items
from mixlm.codec import tokens_to_bytes
from mixlm.errors import CodecError
from mixlm.schemas import ItemEmbedding, ItemText


def _emb(**change) -> ItemEmbedding:
    fields = dict(model_version="v1", item_id="job-7", tokens=tokens_to_bytes(torch.zeros(2, 16), "bf16"), n_tokens=2,
                  dim=16, dtype="bf16", content_hash=b"h", source_updated_at=1, encoded_at=1)
    return ItemEmbedding(**{**fields, **change})


def test_consistent_tokens_pass():
    check_embeddings([_emb(), _emb(dtype="fp16")])


def test_wrong_dim_names_the_item_the_shape_and_the_byte_counts():
    with pytest.raises(CodecError, match=r"job-7.*\[2, 32\].*need 128 bytes, got 64"):
        check_embeddings([_emb(dim=32)])


def test_unknown_dtype_is_rejected():
    with pytest.raises(CodecError, match="dtype must be one of"):
        check_embeddings([_emb(dtype="fp32")])


def test_missing_model_version_is_rejected():
    with pytest.raises(CodecError, match="model_version"):
        check_embeddings([_emb(model_version="")])


def test_item_text_needs_an_id_and_a_nonnegative_timestamp():
    with pytest.raises(CodecError):
        check_items([ItemText(item_id="", title="", text="", content_hash=b"", updated_at=1)])
    with pytest.raises(CodecError):
        check_items([ItemText(item_id="a", title="", text="", content_hash=b"", updated_at=-1)])
