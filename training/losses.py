"""Training losses over the ranker's yes/no readout (paper §4.3).

A prediction is the softmax over the two logits (yes, no); a target is a probability of "yes" (a normalised
label or a teacher's P(yes)). Every KL here is KL(target || prediction), which is 0 exactly when they agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.config import Phase


def kl_to_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over items of KL([t, 1-t] || softmax(logits)); logits [N, 2] as (yes, no), target [N] in [0, 1]."""
    log_q = F.log_softmax(logits.float(), dim=-1)
    t = target.float().clamp(0.0, 1.0)
    p = torch.stack([t, 1.0 - t], dim=-1)
    # xlogy gives 0 * log 0 = 0, so hard labels (0 or 1) are fine.
    kl = torch.special.xlogy(p, p) - p * log_q
    return kl.sum(-1).mean()


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """§4.3.2 / §4.3.3 SFT: predictions against the normalised ground-truth labels."""
    return kl_to_target(logits, labels)


def log_odds(logits: torch.Tensor) -> torch.Tensor:
    """The yes-vs-no log-odds of each item: the score a ranking is sorted by."""
    return logits.float()[:, 0] - logits.float()[:, 1]


def group_cross_entropy(scores: torch.Tensor, targets: torch.Tensor, group_sizes: list[int]) -> torch.Tensor:
    """Mean over groups of CE(target distribution || softmax(scores)) within each group; ``targets`` [N] are
    non-negative weights, normalised per group. Groups whose targets sum to 0 carry no signal and are skipped."""
    losses = []
    for s, t in zip(scores.split(group_sizes), targets.float().split(group_sizes)):
        if t.sum() > 0:
            losses.append(-(t / t.sum() * F.log_softmax(s, dim=0)).sum())
    return torch.stack(losses).mean() if losses else scores.sum() * 0.0


def listwise_loss(logits: torch.Tensor, labels: torch.Tensor, group_sizes: list[int]) -> torch.Tensor:
    """Softmax cross-entropy over each query group's log-odds against its labels normalised to sum 1.

    Not in the paper: the pointwise KL alone learns the 1-in-8 base rate long before it learns to order a
    group, which a small CPU budget never gets past; ranking the group directly gives every step a ranking
    signal. Groups without a relevant item carry no target and are skipped."""
    return group_cross_entropy(log_odds(logits), labels, group_sizes)


def listwise_distill_loss(logits: torch.Tensor, teacher_p_yes: torch.Tensor, group_sizes: list[int],
                          temperature: float = 1.0) -> torch.Tensor:
    """The teacher's whole ordering of each group as the target: CE(softmax(teacher log-odds / T) || softmax(
    student log-odds / T)) * T^2 (Hinton's scaling, so T does not change the gradient's size).

    Not in the paper: its pointwise distillation matches each P(yes) alone, and a teacher whose P(yes) sit close
    together gives that loss almost no ranking signal; the listwise form passes on how the teacher ranks the
    negatives too, not only which item is the positive."""
    p = teacher_p_yes.float().clamp(1e-6, 1 - 1e-6)
    teacher = torch.log(p) - torch.log1p(-p)
    sizes = list(group_sizes)
    targets = torch.cat([F.softmax(t / temperature, dim=0) for t in teacher.split(sizes)])
    return group_cross_entropy(log_odds(logits) / temperature, targets, sizes) * temperature**2


def distill_loss(logits: torch.Tensor, teacher_p_yes: torch.Tensor) -> torch.Tensor:
    """§4.3.3 ranking distillation: predictions against the stage II teacher's cached P(yes)."""
    return kl_to_target(logits, teacher_p_yes)


def hidden_alignment_loss(mixed_hidden: torch.Tensor, text_hidden: torch.Tensor) -> torch.Tensor:
    """§4.3.3 self-alignment: 1 - cosine between the last hidden states of the mixed and the text prompt."""
    return (1.0 - F.cosine_similarity(mixed_hidden.float(), text_hidden.float(), dim=-1)).mean()


def prediction_alignment_loss(mixed_logits: torch.Tensor, text_p_yes: torch.Tensor) -> torch.Tensor:
    """§4.3.3 self-alignment: the mixed prompt's prediction against the text prompt's."""
    return kl_to_target(mixed_logits, text_p_yes)


def stage3_loss(
    phase: Phase,
    mixed_logits: torch.Tensor,
    mixed_hidden: torch.Tensor,
    labels: torch.Tensor,
    teacher_p_yes: torch.Tensor | None,
    text_hidden: torch.Tensor | None,
    text_p_yes: torch.Tensor | None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The full stage III objective with the current phase's weights -> (loss, parts for logging). Without a
    teacher (None: a labels-only run, every phase's distill and align 0) it is the SFT term alone."""
    parts = {"sft": sft_loss(mixed_logits, labels)}
    total = phase.sft * parts["sft"]
    if teacher_p_yes is not None:
        parts["distill"] = distill_loss(mixed_logits, teacher_p_yes)
        total = total + phase.distill * parts["distill"]
    if text_hidden is not None and text_p_yes is not None:
        parts["align_hidden"] = hidden_alignment_loss(mixed_hidden, text_hidden)
        parts["align_pred"] = prediction_alignment_loss(mixed_logits, text_p_yes)
        total = total + phase.align * (phase.align_hidden * parts["align_hidden"] + phase.align_pred * parts["align_pred"])
    return total, {k: float(v.detach()) for k, v in parts.items()}
