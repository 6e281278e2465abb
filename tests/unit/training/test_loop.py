"""The training loop: warmup + cosine schedule, deterministic batches, resume after a kill."""

from __future__ import annotations

import pytest
import torch

from training.config import StageConfig
from training.loop import batch_indices, lr_factor, run_loop, visited


def test_lr_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(10, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.55, abs=0.01)
    assert lr_factor(100, 10, 100) == pytest.approx(0.1)


def test_each_epoch_visits_every_index_once():
    steps = [batch_indices(s, 3, 12, seed=7) for s in range(4)]
    assert sorted(i for b in steps for i in b) == list(range(12))
    assert batch_indices(2, 3, 12, seed=7) == steps[2]
    assert visited(4, 3, 12, seed=7) == list(range(12))


class Stop(Exception):
    pass


def _train(tmp_path, resume: bool, stop_at: int | None = None):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    xs = torch.randn(16, 4)
    ys = xs @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1

    def step(batch, index):
        if stop_at is not None and index == stop_at:
            raise KeyboardInterrupt  # a kill in the middle of a step
        x = torch.stack([xs[i] for i in batch])
        y = torch.stack([ys[i] for i in batch])
        loss = (model(x).squeeze(-1) - y).pow(2).mean()
        return loss, {}, len(batch)

    stage = StageConfig(steps=12, batch_queries=4, lr=0.3, warmup_steps=2, grad_clip=0.0)
    history = run_loop("test", model, [{"params": list(model.parameters())}], stage, list(range(16)), step,
                       tmp_path / "ckpt.pt", checkpoint_every=5, seed=3, resume=resume, progress=False)
    return model, history


def test_losses_go_down_on_a_learnable_problem(tmp_path):
    _, history = _train(tmp_path, resume=False)
    assert history.mean(-3, None) < 0.5 * history.mean(0, 3)


def test_a_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(tmp_path):
    straight, _ = _train(tmp_path / "a", resume=False)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "b", resume=False, stop_at=7)
    assert (tmp_path / "b" / "ckpt.pt").exists()
    resumed, history = _train(tmp_path / "b", resume=True)
    assert len(history.losses) == 12
    assert torch.equal(straight.weight, resumed.weight) and torch.equal(straight.bias, resumed.bias)
