"""Assemble a MixLM from the base model and, when present, a trained weight set (weights/<model_version>/).

A weight set is a folder with ``manifest.json`` plus small safetensors adapters (see training/). The newest
manifest under ``settings.weights_dir`` is used when ``settings.weights == "auto"``. A weight set fixes T_S (the
item tokens it was trained to read): it is used unless MIXLM_N_ITEM_TOKENS is set, which then picks among the sets.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from mixlm import loading
from mixlm.errors import WeightSetError
from mixlm.model import Encoder, MixLM, Ranker
from mixlm.settings import Settings
from mixlm.version import model_version

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


def find_weights(settings: Settings) -> Path | None:
    """The weight set the settings ask for, or None for the untrained base."""
    if settings.weights == "none":
        return None
    if settings.weights != "auto":
        folder = Path(settings.weights)
        if not (folder / MANIFEST).exists():
            raise FileNotFoundError(f"MIXLM_WEIGHTS={folder}: no {MANIFEST} there")
        return folder
    candidates, n_item_tokens = [], explicit_item_tokens(settings)
    for manifest in Path(settings.weights_dir).glob(f"*/{MANIFEST}"):
        meta = json.loads(manifest.read_text())
        if meta.get("base_model") != settings.base_model:
            continue
        if n_item_tokens not in (None, meta.get("n_item_tokens")):
            continue
        if settings.encoder_model not in ("auto", manifest_encoder(meta)):
            continue
        candidates.append((meta.get("created_at", 0), manifest.parent))
    return max(candidates)[1] if candidates else None


def explicit_item_tokens(settings: Settings) -> int | None:
    """T_S when the user set it (env, CLI, code), else None: the weight set's T_S then applies."""
    return settings.n_item_tokens if "n_item_tokens" in settings.model_fields_set else None


def manifest_encoder(meta: dict) -> str:
    """The encoder base a weight set was trained on (sets before sentence encoders used the ranker's base)."""
    return meta.get("encoder_model", meta.get("base_model"))


def build_mixlm(settings: Settings) -> MixLM:
    """Load tokenizer, encoder and ranker on the configured device and dtype."""
    dtype, device = settings.torch_dtype(), settings.resolved_device()
    folder = find_weights(settings)
    manifest = json.loads((folder / MANIFEST).read_text()) if folder is not None else {}
    encoder_model = settings.encoder_model
    if encoder_model == "auto":
        encoder_model = manifest_encoder(manifest) if manifest else settings.base_model
    elif manifest and manifest_encoder(manifest) != encoder_model:
        raise WeightSetError(f"{folder}: trained with encoder {manifest_encoder(manifest)}, MIXLM_ENCODER_MODEL={encoder_model}")
    n_item_tokens = explicit_item_tokens(settings) or int(manifest.get("n_item_tokens", settings.n_item_tokens))
    tokenizer = loading.load_tokenizer(settings.home, settings.base_model)
    ranker_lm = loading.load_causal_lm(settings.home, settings.base_model, dtype)
    sampling = loading.encoder_sampling(encoder_model)
    encoder_body, encoder_tokenizer = loading.load_encoder(settings.home, encoder_model, dtype)
    # An untrained sentence encoder of another width gets a fixed random projection (seeded): only training
    # makes its item tokens mean something to the ranker.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder = Encoder(encoder_body, n_item_tokens, out_dim=ranker_lm.config.hidden_size, sampling=sampling)
    yes_id, no_id = tokenizer.convert_tokens_to_ids([loading.YES_TOKEN, loading.NO_TOKEN])
    ranker = Ranker(ranker_lm, yes_id, no_id)
    encoder_fingerprint = "base"
    max_item_text_tokens = settings.max_item_text_tokens
    if folder is not None:
        # Encode at the text length the weights were trained with, unless MIXLM_MAX_ITEM_TEXT_TOKENS says otherwise.
        trained_len = manifest.get("max_item_text_tokens")
        if trained_len and "max_item_text_tokens" not in settings.model_fields_set:
            max_item_text_tokens = int(trained_len)
        from training.weights_io import apply_weight_set  # trained adapters; imported only when present

        encoder_fingerprint = apply_weight_set(folder, encoder, ranker)
        log.info("loaded weight set %s", folder)
    version = model_version(loading.encoder_base_fingerprint(settings.home, encoder_model), encoder_fingerprint,
                            n_item_tokens, sampling)
    # Serving and encoding never train: no autograd bookkeeping (training enables grads on what it tunes).
    for module in (encoder, ranker):
        module.to(device, dtype).eval().requires_grad_(False)
    return MixLM(tokenizer, encoder, ranker, version, max_item_text_tokens=max_item_text_tokens,
                 encoder_tokenizer=None if sampling == "last" else encoder_tokenizer)
