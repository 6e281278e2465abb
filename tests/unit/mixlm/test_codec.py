import pytest
import torch

from mixlm.codec import bytes_to_tokens, content_hash, tokens_to_bytes
from mixlm.errors import CodecError


@pytest.mark.parametrize("dtype,torch_dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_round_trip_is_bit_exact(dtype, torch_dtype):
    tokens = torch.randn(2, 576).to(torch_dtype)
    data = tokens_to_bytes(tokens, dtype)
    assert len(data) == 2 * 576 * 2
    back = bytes_to_tokens(data, 2, 576, dtype)
    assert back.dtype == torch_dtype and torch.equal(back, tokens)


def test_bytes_are_little_endian_bf16():
    data = tokens_to_bytes(torch.tensor([[1.0]]), "bf16")
    assert data == b"\x80\x3f"  # bf16(1.0) = 0x3F80


def test_wrong_length_shape_or_dtype_is_rejected_with_the_expected_size():
    data = tokens_to_bytes(torch.zeros(1, 8), "bf16")
    with pytest.raises(CodecError, match="need 32 bytes, got 16"):
        bytes_to_tokens(data, 2, 8, "bf16")
    with pytest.raises(CodecError, match="dtype"):
        bytes_to_tokens(data, 1, 8, "fp32")
    with pytest.raises(CodecError, match="n_tokens, dim"):
        tokens_to_bytes(torch.zeros(8), "bf16")


def test_content_hash_changes_with_content_not_with_field_order():
    a = content_hash("Nurse", "ICU nights", {"city": "Oslo", "company": "X"})
    b = content_hash("Nurse", "ICU nights", {"company": "X", "city": "Oslo"})
    assert a == b and len(a) == 16
    assert a != content_hash("Nurse", "ICU days", {"city": "Oslo", "company": "X"})
