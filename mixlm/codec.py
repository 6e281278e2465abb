"""The embedding codec: item tokens <-> little-endian bf16/fp16 bytes, and the content hash. Pure functions."""

from __future__ import annotations

import hashlib
import sys

import msgspec
import torch

from mixlm.errors import CodecError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_INT_VIEW = {"bf16": torch.int16, "fp16": torch.int16}


def tokens_to_bytes(tokens: torch.Tensor, dtype: str) -> bytes:
    """[n_tokens, dim] -> bytes (little-endian, row-major)."""
    if dtype not in DTYPES:
        raise CodecError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if tokens.ndim != 2:
        raise CodecError(f"item tokens must be [n_tokens, dim], got shape {tuple(tokens.shape)}")
    # bf16 has no numpy dtype: view the bits as int16 to get at the bytes.
    raw = tokens.detach().to("cpu", DTYPES[dtype]).contiguous().view(_INT_VIEW[dtype]).numpy()
    if sys.byteorder == "big":
        raw = raw.byteswap()
    return raw.tobytes()


def bytes_to_tokens(data: bytes, n_tokens: int, dim: int, dtype: str) -> torch.Tensor:
    """bytes -> [n_tokens, dim] tensor of the stored dtype; the length must match the shape."""
    if dtype not in DTYPES:
        raise CodecError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    expected = n_tokens * dim * 2
    if n_tokens < 1 or dim < 1 or len(data) != expected:
        raise CodecError(f"item tokens of shape [{n_tokens}, {dim}] in {dtype} need {expected} bytes, got {len(data)}")
    flat = torch.frombuffer(bytearray(data), dtype=_INT_VIEW[dtype])
    if sys.byteorder == "big":
        flat = flat.byteswap()
    return flat.view(DTYPES[dtype]).reshape(n_tokens, dim)


def content_hash(title: str, text: str, fields: dict[str, str] | None = None) -> bytes:
    """16-byte hash of what the encoder reads: an unchanged hash means no re-encoding is needed."""
    canonical = msgspec.json.encode({"title": title, "text": text, "fields": dict(sorted((fields or {}).items()))})
    return hashlib.sha256(canonical).digest()[:16]
