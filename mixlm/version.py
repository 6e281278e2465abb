"""model_version: a short hash of what the stored item tokens depend on (DESIGN.md, "Model version")."""

from __future__ import annotations

import hashlib
import json

from mixlm.prompts import PROMPT_VERSION


def model_version(base_fingerprint: str, encoder_fingerprint: str, n_item_tokens: int, sampling: str = "last") -> str:
    """Encoder weights + sampling config (T_S, last-N) + prompt templates -> 12 hex chars.

    The ranker only accepts embeddings written under its paired encoder's version.
    """
    spec = {
        "base": base_fingerprint,
        "encoder": encoder_fingerprint,
        "n_item_tokens": n_item_tokens,
        "sampling": sampling,
        "prompts": PROMPT_VERSION,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
