"""The gpu preset's gradient checkpointing must leave LoRA's gradients as they are: a checkpointing mistake (say,
reentrant checkpoints over inputs that need no gradient) trains nothing, silently, and only on the GPU run."""

from __future__ import annotations

import torch

from mixlm.settings import Settings
from training.config import load_config
from training.losses import sft_loss
from training.pairs import Item, QueryGroup
from training.stage2 import labels_of, text_forward
from training.trainable import build_trainable, trainable_parameters

GROUP = QueryGroup("titles", "q1", "ICU nurse", (Item("d1", "Registered Nurse\nCares for patients.", 1.0, "positive"),
                                                 Item("d2", "Welder\nJoins metal parts.", 0.0, "random")))


def lora_grads(checkpointing: bool) -> list[torch.Tensor]:
    settings = Settings(home=Settings().home, base_model="tiny", dtype="fp32", weights="none", device="cpu")
    cfg = load_config("tiny")
    cfg.model.gradient_checkpointing = checkpointing
    torch.manual_seed(0)
    mix = build_trainable(settings, cfg)
    assert mix.ranker.lm.model.is_gradient_checkpointing == checkpointing
    for p in trainable_parameters(mix.ranker):  # B starts at zero, which would leave A's gradient zero
        torch.nn.init.normal_(p, std=0.02)
    logits, _ = text_forward(mix, [GROUP])
    sft_loss(logits, labels_of([GROUP], logits.device)).backward()
    return [p.grad for p in trainable_parameters(mix.ranker)]


def test_lora_gradients_are_the_same_with_gradient_checkpointing():
    plain, checkpointed = lora_grads(False), lora_grads(True)
    assert len(plain) == len(checkpointed) > 0
    assert all(g is not None for g in checkpointed)
    assert all(g.abs().sum() > 0 for g in checkpointed)
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b)
