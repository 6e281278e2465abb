"""Stage II (paper §4.3.2): the text teacher. The ranker reads the full-text prompt of §4.2.2 and is trained
with the KL between its yes/no distribution and the normalised label. Each query group is packed into one
multi-item sequence (prefix once, then every candidate's text), so the prefix is paid once per query."""

from __future__ import annotations

from pathlib import Path

import torch

from mixlm.model import MixLM, pack
from training.config import TrainConfig
from training.losses import listwise_loss, sft_loss
from training.loop import History, run_loop
from training.pairs import QueryGroup
from training.trainable import resolve_device, trainable_parameters


def text_forward(mix: MixLM, groups: list[QueryGroup]) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher prompt of every item of every group -> yes/no logits [N, 2] and last hidden states [N, D]."""
    requests = [(mix.prefix_embeds(g.query), [mix.text_item(item.text) for item in g.items]) for g in groups]
    return mix.ranker(pack(requests, multi_item=True))


def labels_of(groups: list[QueryGroup], device) -> torch.Tensor:
    return torch.tensor([item.label for g in groups for item in g.items], dtype=torch.float32, device=device)


def group_sizes(groups: list[QueryGroup]) -> list[int]:
    return [len(g.items) for g in groups]


def run_stage2(mix: MixLM, groups: list[QueryGroup], cfg: TrainConfig, run_dir: Path, settings,
               resume: bool, progress: bool = True, deadline: float | None = None) -> History:
    device = resolve_device(cfg, settings)

    def step(batch: list[QueryGroup], _step: int, _total: int):
        logits, _ = text_forward(mix, batch)
        labels = labels_of(batch, logits.device)
        sft = sft_loss(logits, labels)
        parts = {"sft": sft}
        if cfg.stage2.listwise:
            parts["listwise"] = listwise_loss(logits, labels, group_sizes(batch))
        loss = sft + cfg.stage2.listwise * parts.get("listwise", 0.0)
        return loss, {k: float(v.detach()) for k, v in parts.items()}, len(logits)

    return run_loop(
        "stage II (teacher)", mix.ranker, [{"params": trainable_parameters(mix.ranker)}], cfg.stage2, groups, step,
        run_dir / "stage2.ckpt", checkpoint_every=cfg.checkpoint_every, seed=cfg.seed, resume=resume,
        device=device, autocast_bf16=cfg.model.autocast_bf16, log_every=cfg.log_every, progress=progress,
        deadline=deadline,
    )
