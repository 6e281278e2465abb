"""The MixLM being trained: the base from mixlm.weights.build_mixlm, with LoRA (or full fine-tuning) and a projector.

Training runs the model core's own modules with gradients: ``Encoder.forward`` for item tokens and
``Ranker.forward(pack(...))`` for the packed multi-item sequences. ``MixLM`` is reused only for tokenising
and building prompt segments (prefix, text item, mixed item), which carry gradients as well.
"""

from __future__ import annotations

import logging

import torch

from mixlm.model import MixLM
from mixlm.settings import Settings
from mixlm.weights import build_mixlm
from training.adapters import Projector, add_lora
from training.config import TrainConfig

log = logging.getLogger(__name__)


def resolve_device(cfg: TrainConfig, settings: Settings) -> str:
    if cfg.model.device != "auto":
        return cfg.model.device
    return settings.resolved_device()


def build_trainable(settings: Settings, cfg: TrainConfig) -> MixLM:
    """The untrained base (built exactly as the service builds it), made trainable: adapters, projector, train mode."""
    m = cfg.model
    dtype = "fp32" if m.full_finetune or m.base_dtype == "fp32" else "bf16"
    base = settings.model_copy(update={
        "base_model": m.base_model, "n_item_tokens": m.n_item_tokens, "weights": "none", "dtype": dtype,
        "device": resolve_device(cfg, settings), "max_item_text_tokens": cfg.data.max_item_tokens,
    })
    mix = build_mixlm(base)
    encoder, ranker = mix.encoder, mix.ranker
    if m.full_finetune:
        for p in (*encoder.parameters(), *ranker.parameters()):
            p.requires_grad = True
    else:
        # Only the adapters train; the ranker's embeddings and LM head (tied) stay the base yes/no readout.
        add_lora(encoder.body, m.lora)
        add_lora(ranker.lm.model, m.lora)
    if m.projector:
        encoder.projector = Projector(encoder.body.config.hidden_size).to(mix.device)
    if m.gradient_checkpointing:
        for body in (encoder.body, ranker.lm.model):
            body.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    encoder.train()
    ranker.train()
    return mix


@torch.no_grad()
def init_projector_scale(mix: MixLM, texts: list[str]) -> float:
    """Scale the identity projector so item tokens start with the norm of the ranker's input embeddings.

    The encoder's last hidden state lives in the LM-head space (tied to the input embeddings, so roughly
    aligned) but with a much larger norm; matching the norm gives stage III a sensible starting point.
    """
    projector = mix.encoder.projector
    if not isinstance(projector, Projector):
        return 1.0
    ids, mask = mix.tokenize_items(texts)
    out_norm = mix.encoder(ids, mask).float().norm(dim=-1).mean()
    target = mix.ranker.embed(ids[mask.bool()]).float().norm(dim=-1).mean()
    scale = float(target / out_norm.clamp(min=1e-6))
    projector.weight.mul_(scale)
    log.info("projector initialised to %.4f * identity", scale)
    return scale


def trainable_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]
