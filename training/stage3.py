"""Stage III (paper §4.3.3): joint encoder + ranker training on the mixed prompt of §4.2.3.

Loss = a*SFT + b*distillation (cached teacher P(yes)) + c*(self-alignment of hidden states and predictions
between the text and the mixed prompt), with a, b, c from the current curriculum phase (alignment first,
then the task). The ranker starts from the stage II teacher's adapter and the encoder from the base model, or
both from a weight set being continued (``init_from``); with no distillation and no alignment weight (labels
alone) no teacher is read.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mixlm.model import MixLM, p_yes, pack
from training.config import TrainConfig
from training.losses import listwise_distill_loss, listwise_loss, stage3_loss
from training.loop import History, run_loop, visited
from training.pairs import QueryGroup
from training.stage2 import group_sizes, labels_of, text_forward
from training.teacher_cache import TeacherCache
from training.trainable import resolve_device, trainable_parameters


class FrozenStates:
    """The encoder body's states of each item text, computed once (``freeze_encoder``: the body never changes)."""

    def __init__(self, mix: MixLM, batch_size: int = 16):
        self.mix, self.batch_size = mix, batch_size
        self.states: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        """Item texts -> body states [N, T_S, D_encoder], encoding only the texts not seen before."""
        new = list(dict.fromkeys(t for t in texts if t not in self.states))
        body, was_training = self.mix.encoder.body, self.mix.encoder.body.training
        body.eval()  # no dropout: the states are the ones serving will compute
        for s in range(0, len(new), self.batch_size):
            chunk = new[s : s + self.batch_size]
            ids, mask = self.mix.tokenize_items(chunk)
            self.states.update(zip(chunk, self.mix.encoder.states(ids, mask).float()))
        body.train(was_training)
        return torch.stack([self.states[t] for t in texts])


def mixed_forward(mix: MixLM, groups: list[QueryGroup], frozen: FrozenStates | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encoder -> item tokens -> mixed prompt of every item, packed per group
    -> logits [N, 2], hidden [N, D], item tokens [N, T_S, D]. With ``frozen`` only the projector runs."""
    texts = [item.text for g in groups for item in g.items]
    if frozen is not None:
        tokens = mix.encoder.projector(frozen(texts))
    else:
        tokens = mix.encoder(*mix.tokenize_items(texts))
    item_tokens = iter(tokens)
    requests = [(mix.prefix_embeds(g.query), [mix.mixed_item(next(item_tokens)) for _ in g.items]) for g in groups]
    logits, hidden = mix.ranker(pack(requests, multi_item=True))
    return logits, hidden, tokens


@torch.no_grad()
def item_cosine(item_tokens: torch.Tensor) -> float:
    """Mean cosine between the item tokens of different items [N, T_S, D] (1 for a single item).

    A collapse detector, logged with the losses: rising towards 1, the encoder is mapping every item to one point,
    the ranker cannot tell them apart and the ranking losses sit at chance (ln of the group size). Read it
    against its start: MiniLM's mean-pooled items start near 0.2 and reached 0.8 by step 20 at encoder_lr 1e-3; an
    LLM's last states start near 0.94 (they share one large direction), so there only a rise towards 1 means it."""
    unit = torch.nn.functional.normalize(item_tokens.float().flatten(1), dim=-1)
    n = len(unit)
    if n < 2:
        return 1.0
    return float(((unit @ unit.T).sum() - n) / (n * n - n))


def text_path(mix: MixLM, groups: list[QueryGroup], cfg: TrainConfig,
              teacher: tuple[torch.Tensor, torch.Tensor | None] | None):
    """(hidden [N, D], P(yes) [N]) of the full-text prompt, as the config's text_path says; (None, None) in a
    labels-only run. ``teacher``: the cache's (P(yes), hidden) of these groups, looked up once per step."""
    if teacher is None:
        return None, None
    mode = cfg.stage3.text_path
    if mode == "cached":
        teacher_p, hidden = teacher
        return hidden, teacher_p
    with torch.set_grad_enabled(mode == "grad"):
        logits, hidden = text_forward(mix, groups)
    probs = p_yes(logits)
    return hidden, probs


def stage3_seed(cfg: TrainConfig) -> int:
    return cfg.seed + 1  # its own data order, different from stage II's


def stage3_groups(groups: list[QueryGroup], cfg: TrainConfig) -> list[QueryGroup]:
    """The groups stage III will visit: the only ones that need teacher predictions."""
    return [groups[i] for i in visited(cfg.stage3.steps, cfg.stage3.batch_queries, len(groups), stage3_seed(cfg))]


def run_stage3(mix: MixLM, groups: list[QueryGroup], cfg: TrainConfig, cache: TeacherCache | None, run_dir: Path,
               settings, resume: bool, progress: bool = True, deadline: float | None = None) -> History:
    device = resolve_device(cfg, settings)
    frozen = FrozenStates(mix) if cfg.stage3.freeze_encoder else None

    def step(batch: list[QueryGroup], index: int, total: int):
        phase = cfg.phase_at(index, total)
        logits, hidden, item_tokens = mixed_forward(mix, batch, frozen)
        teacher = cache.lookup(batch, logits.device) if cache is not None else None
        teacher_p = teacher[0] if teacher is not None else None
        text_hidden, text_p = text_path(mix, batch, cfg, teacher)
        labels = labels_of(batch, logits.device)
        loss, parts = stage3_loss(phase, logits, hidden, labels, teacher_p, text_hidden, text_p)
        if cfg.stage3.listwise:
            # Scaled by the phase's task weight, so the alignment-first curriculum stays alignment first.
            listwise = listwise_loss(logits, labels, group_sizes(batch))
            loss = loss + cfg.stage3.listwise * phase.sft * listwise
            parts["listwise"] = float(listwise.detach())
        if cfg.stage3.distill_listwise and teacher_p is not None:
            ranked = listwise_distill_loss(logits, teacher_p, group_sizes(batch), cfg.stage3.distill_temperature)
            loss = loss + cfg.stage3.distill_listwise * phase.distill * ranked
            parts["distill_listwise"] = float(ranked.detach())
        parts["item_cos"] = item_cosine(item_tokens)
        return loss, parts, len(logits)

    encoder_params = trainable_parameters(mix.encoder)
    groups_ = [
        {"params": encoder_params, "lr": cfg.stage3.encoder_lr or cfg.stage3.lr},
        {"params": trainable_parameters(mix.ranker), "lr": cfg.stage3.lr},
    ]
    both = torch.nn.ModuleDict({"encoder": mix.encoder, "ranker": mix.ranker})
    return run_loop(
        "stage III (joint)", both, groups_, cfg.stage3, groups, step, run_dir / "stage3.ckpt",
        checkpoint_every=cfg.checkpoint_every, seed=stage3_seed(cfg), resume=resume, device=device,
        autocast_bf16=cfg.model.autocast_bf16, log_every=cfg.log_every, progress=progress, deadline=deadline,
    )
