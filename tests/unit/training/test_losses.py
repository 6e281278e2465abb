"""Losses of paper §4.3 over the yes/no readout."""

from __future__ import annotations

import math

import pytest
import torch

from training.config import Phase
from training.losses import (
    hidden_alignment_loss,
    kl_to_target,
    listwise_distill_loss,
    listwise_loss,
    prediction_alignment_loss,
    stage3_loss,
    sft_loss,
)


def logits_for(p_yes: torch.Tensor) -> torch.Tensor:
    return torch.stack([p_yes.log(), (1 - p_yes).log()], -1)


def test_kl_is_zero_when_prediction_equals_target():
    t = torch.tensor([0.1, 0.5, 0.9])
    assert kl_to_target(logits_for(t), t).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_matches_the_closed_form_of_two_bernoullis():
    t, q = 0.3, 0.8
    expected = t * math.log(t / q) + (1 - t) * math.log((1 - t) / (1 - q))
    assert kl_to_target(logits_for(torch.tensor([q])), torch.tensor([t])).item() == pytest.approx(expected, rel=1e-5)


def test_kl_with_hard_labels_is_finite_and_equals_cross_entropy():
    q = torch.tensor([0.2, 0.7])
    labels = torch.tensor([1.0, 0.0])
    loss = kl_to_target(logits_for(q), labels)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(-(math.log(0.2) + math.log(0.3)) / 2, rel=1e-5)


def test_sft_gradient_raises_the_yes_logit_of_a_relevant_item():
    logits = torch.zeros(1, 2, requires_grad=True)
    sft_loss(logits, torch.tensor([1.0])).backward()
    assert logits.grad[0, 0] < 0 < logits.grad[0, 1]  # descent raises yes, lowers no


def test_hidden_alignment_is_zero_for_parallel_and_two_for_opposite_states():
    h = torch.randn(4, 16)
    assert hidden_alignment_loss(3.0 * h, h).item() == pytest.approx(0.0, abs=1e-6)
    assert hidden_alignment_loss(-h, h).item() == pytest.approx(2.0, abs=1e-6)


def test_stage3_loss_is_the_phase_weighted_sum_of_its_parts():
    torch.manual_seed(0)
    logits, hidden, text_hidden = torch.randn(5, 2), torch.randn(5, 8), torch.randn(5, 8)
    labels, teacher, text_p = torch.rand(5), torch.rand(5), torch.rand(5)
    phase = Phase(fraction=1.0, sft=0.5, distill=2.0, align=3.0, align_hidden=0.25, align_pred=4.0)
    total, parts = stage3_loss(phase, logits, hidden, labels, teacher, text_hidden, text_p)
    expected = 0.5 * parts["sft"] + 2.0 * parts["distill"] + 3.0 * (0.25 * parts["align_hidden"] + 4.0 * parts["align_pred"])
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert parts["align_pred"] == pytest.approx(prediction_alignment_loss(logits, text_p).item())


def test_without_a_teacher_the_stage3_loss_is_the_weighted_sft_alone():
    torch.manual_seed(0)
    logits, hidden, labels = torch.randn(5, 2), torch.randn(5, 8), torch.rand(5)
    phase = Phase(fraction=1.0, sft=0.5, distill=0.0, align=0.0)
    total, parts = stage3_loss(phase, logits, hidden, labels, None, None, None)
    assert set(parts) == {"sft"}
    assert total.item() == pytest.approx(0.5 * sft_loss(logits, labels).item())


def test_alignment_only_phase_ignores_the_labels():
    logits = torch.randn(3, 2)
    args = (torch.randn(3, 8), torch.rand(3), torch.rand(3), torch.randn(3, 8), torch.rand(3))
    phase = Phase(fraction=1.0, sft=0.0, distill=0.0, align=1.0)
    a, _ = stage3_loss(phase, logits, args[0], torch.zeros(3), *args[2:])
    b, _ = stage3_loss(phase, logits, args[0], torch.ones(3), *args[2:])
    assert a.item() == pytest.approx(b.item())


def test_listwise_loss_falls_as_the_relevant_item_moves_to_the_top_of_its_group():
    labels = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    sizes = [3, 3]
    wrong = logits_for(torch.tensor([0.9, 0.1, 0.5, 0.9, 0.5, 0.1]))
    right = logits_for(torch.tensor([0.1, 0.9, 0.5, 0.1, 0.5, 0.9]))
    assert listwise_loss(right, labels, sizes) < listwise_loss(wrong, labels, sizes)
    # It depends only on the order within a group: the same shift of every log-odds changes nothing.
    shifted = right + torch.tensor([2.0, 0.0])
    assert listwise_loss(shifted, labels, sizes) == pytest.approx(float(listwise_loss(right, labels, sizes)), abs=1e-5)


def test_listwise_loss_skips_groups_without_a_relevant_item():
    logits = logits_for(torch.tensor([0.2, 0.7, 0.4, 0.6]))
    only_first = listwise_loss(logits[:2], torch.tensor([1.0, 0.0]), [2])
    both = listwise_loss(logits, torch.tensor([1.0, 0.0, 0.0, 0.0]), [2, 2])
    assert both == pytest.approx(float(only_first))
    assert listwise_loss(logits, torch.zeros(4), [2, 2]) == 0.0


def test_listwise_distillation_is_smallest_when_the_student_orders_like_the_teacher():
    teacher = torch.tensor([0.9, 0.2, 0.05, 0.6])
    same = listwise_distill_loss(logits_for(teacher), teacher, [4])
    reversed_ = listwise_distill_loss(logits_for(teacher.flip(0)), teacher, [4])
    assert same < reversed_
    # Its minimum is the entropy of the teacher's group distribution: the gradient there is zero.
    student = logits_for(teacher).clone().requires_grad_(True)
    listwise_distill_loss(student, teacher, [4]).backward()
    assert student.grad.abs().max().item() < 1e-5


def test_listwise_distillation_uses_each_group_on_its_own():
    teacher = torch.tensor([0.9, 0.1, 0.1, 0.9])
    one_by_one = (listwise_distill_loss(logits_for(torch.tensor([0.5, 0.5])), teacher[:2], [2])
                  + listwise_distill_loss(logits_for(torch.tensor([0.5, 0.5])), teacher[2:], [2])) / 2
    together = listwise_distill_loss(logits_for(torch.full((4,), 0.5)), teacher, [2, 2])
    assert together.item() == pytest.approx(one_by_one.item(), rel=1e-6)
