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
        "base_model": m.base_model, "encoder_model": m.encoder, "n_item_tokens": m.n_item_tokens, "weights": "none",
        "dtype": dtype, "device": resolve_device(cfg, settings), "max_item_text_tokens": cfg.data.max_item_tokens,
    })
    mix = build_mixlm(base)
    encoder, ranker = mix.encoder, mix.ranker
    frozen = cfg.stage3.freeze_encoder
    if m.full_finetune:
        for p in ranker.parameters() if frozen else (*encoder.parameters(), *ranker.parameters()):
            p.requires_grad = True
    else:
        # Only the adapters train; the ranker's embeddings and LM head (tied) stay the base yes/no readout.
        if not frozen:
            add_lora(encoder.body, m.encoder_lora or m.lora)
        add_lora(ranker.lm.model, m.lora)
    if m.projector or encoder.body.config.hidden_size != mix.dim:
        encoder.projector = Projector(encoder.body.config.hidden_size, mix.dim).to(mix.device)
    if m.gradient_checkpointing:
        for body in (ranker.lm.model,) if frozen else (encoder.body, ranker.lm.model):
            body.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    encoder.train()
    ranker.train()
    return mix


@torch.no_grad()
def init_projector(mix: MixLM, texts: list[str], centred: bool = False) -> None:
    """Start the projector where the ranker can read item tokens: at the norm of its input embeddings.

    Same width (an LLM encoder): its last hidden state lives in the LM-head space, tied to the input
    embeddings, so roughly aligned already, with a much larger norm: scale the identity. Another width (a
    sentence encoder): a random semi-orthogonal map, which keeps every angle between items, scaled the same
    way. (A ridge fit onto each item's mean text-token embedding was tried first: it squeezed all items towards
    one vector. Stage III's ranking loss sat at chance with that start, and with this one too: bench/RESULTS.md,
    "cpu-minilm" and "cpu-minilm-probe".)
    """
    projector = mix.encoder.projector
    if not isinstance(projector, Projector):
        return
    was_training = mix.encoder.training
    mix.encoder.eval()  # no dropout (BERT has some) in the states the norm is measured on
    texts = texts[:128]  # enough for a mean norm and a shared direction that holds for other items too
    ids, mask = mix.tokenize_items(texts)
    if projector.in_features == projector.out_features:
        token_ids = ids[mask.bool()]
        if centred:
            # P = I - u u^T, u the mean direction of the items' states: a linear map (no bias, so the weight-set
            # format stays) that drops what every item shares and keeps what tells them apart.
            states = mix.encoder(ids, mask).float().reshape(-1, projector.in_features)
            u = torch.nn.functional.normalize(torch.nn.functional.normalize(states, dim=-1).mean(0), dim=0)
            projector.weight.sub_(torch.outer(u, u).to(projector.weight.dtype))
    else:
        generator = torch.Generator().manual_seed(0)
        weight = torch.nn.init.orthogonal_(torch.empty(projector.weight.shape), generator=generator)
        projector.weight.copy_(weight.to(projector.weight.device))
        # The encoder's ids are not the ranker's: the ranker's own ids of the same texts.
        token_ids = torch.cat([mix.ids(t, mix.max_item_text_tokens) for t in texts])
    token_norm = mix.ranker.embed(token_ids).float().norm(dim=-1).mean()
    scale = float(token_norm / mix.encoder(ids, mask).float().norm(dim=-1).mean().clamp(min=1e-6))
    projector.weight.mul_(scale)
    mix.encoder.train(was_training)
    start = "semi-orthogonal" if projector.in_features != projector.out_features else "centred" if centred else "identity"
    log.info("projector initialised (%s, then scaled by %.4f)", start, scale)


def trainable_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]
