"""On-disk cache of MixLM item tokens for offline evaluation, keyed by content hash and model_version.

The online path keeps item tokens in the feature store; evaluation only needs a local file per
(model_version, dtype, encoder truncation), so a corpus is encoded once per trained weight set.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from mixlm.model import MixLM

log = logging.getLogger(__name__)


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cache_file(model: MixLM, cache_dir: Path) -> Path:
    dtype = str(model.dtype).removeprefix("torch.")
    return cache_dir / "item_tokens" / f"{model.model_version}-{dtype}-L{model.max_item_text_tokens}.safetensors"


def encoded_items(model: MixLM, texts: Sequence[str], cache_dir: Path, batch_size: int = 16,
                  progress: str | None = "encode items") -> tuple[list[torch.Tensor], int]:
    """Item tokens [T_S, D] for each text, encoding only the ones not cached yet -> (tokens, n_encoded)."""
    path = cache_file(model, cache_dir)
    cached: dict[str, torch.Tensor] = load_file(path) if path.exists() else {}
    keys = [text_key(t) for t in texts]
    # Batches of similar length: in key (hash) order each batch pads to its longest text, 1.6x the tokens on
    # ../shared/data's eval candidates.
    missing = sorted({k: t for k, t in zip(keys, texts) if k not in cached}.items(), key=lambda kt: (len(kt[1]), kt[0]))
    for s in tqdm(range(0, len(missing), batch_size), desc=progress, disable=not missing or progress is None, unit="batch"):
        chunk = missing[s : s + batch_size]
        tokens = model.encode_items([t for _, t in chunk], batch_size=batch_size).cpu()
        cached.update({k: tokens[i].contiguous() for i, (k, _) in enumerate(chunk)})
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file(cached, str(tmp))
        tmp.replace(path)  # atomic: a concurrent reader sees the old or the new file, never half of one
        log.info("encoded %d items, %d cached in %s", len(missing), len(cached), path)
    return [cached[k] for k in keys], len(missing)
