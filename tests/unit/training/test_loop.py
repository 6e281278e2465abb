"""The training loop: warmup + cosine schedule, deterministic batches, resume after a kill."""

from __future__ import annotations

import pytest
import torch

from training.config import StageConfig
from training.loop import CALIBRATION_STEPS, batch_indices, fit_steps, lr_factor, run_loop, visited


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

    def step(batch, index, total):
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


def test_fit_steps_keeps_what_ran_and_adds_what_fits_up_to_the_plan():
    assert fit_steps(planned=100, done=6, seconds_per_step=2.0, seconds_left=50.0) == 31
    assert fit_steps(planned=100, done=6, seconds_per_step=2.0, seconds_left=1e6) == 100
    assert fit_steps(planned=100, done=6, seconds_per_step=2.0, seconds_left=-5.0) == 6


class FakeClock:
    """The loop's clock, advanced one second by every step: pace and deadline without real waiting."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    perf_counter = monotonic


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr("training.loop.time", fake)
    return fake


def _timed_train(tmp_path, clock, resume: bool, deadline: float | None, steps: int = 100, slow_from: int = 10**9):
    model = torch.nn.Linear(2, 1)

    def step(batch, index, total):
        clock.now += 1.0 if index < slow_from else 3.0
        return model(torch.ones(len(batch), 2)).pow(2).mean(), {}, len(batch)

    stage = StageConfig(steps=steps, batch_queries=2, lr=0.3, warmup_steps=10)
    history = run_loop("test", model, [{"params": list(model.parameters())}], stage, list(range(8)), step,
                       tmp_path / "ckpt.pt", checkpoint_every=5, seed=0, resume=resume, progress=False,
                       deadline=deadline)
    return history, torch.load(tmp_path / "ckpt.pt", weights_only=False)


def test_a_deadline_sets_the_step_count_once_and_the_schedule_ends_inside_it(tmp_path, clock):
    history, state = _timed_train(tmp_path, clock, resume=False, deadline=30.0)
    # Six timed steps at 1 s each, 24 s left: 30 steps in all, the cosine run to its floor on the last one.
    assert len(history.losses) == 30 and state["plan"] == {"total": 30, "warmup": 3}
    assert state["schedule"]["_last_lr"][0] == pytest.approx(0.3 * 0.1)
    # A resumed stage keeps its plan, with another budget or none.
    history, _ = _timed_train(tmp_path, clock, resume=True, deadline=None)
    assert len(history.losses) == 30


def test_a_deadline_already_past_leaves_only_the_timed_steps(tmp_path, clock):
    clock.now = 100.0
    history, state = _timed_train(tmp_path, clock, resume=False, deadline=50.0)
    assert len(history.losses) == CALIBRATION_STEPS and state["plan"]["total"] == CALIBRATION_STEPS


def test_no_deadline_or_a_distant_one_runs_every_planned_step(tmp_path, clock):
    history, state = _timed_train(tmp_path / "a", clock, resume=False, deadline=None)
    assert len(history.losses) == 100 and state["plan"] is None
    history, state = _timed_train(tmp_path / "b", clock, resume=False, deadline=clock.now + 1e6)
    assert len(history.losses) == 100 and state["plan"]["total"] == 100


def test_steps_slower_than_the_timed_ones_stop_at_the_deadline(tmp_path, clock):
    history, state = _timed_train(tmp_path, clock, resume=False, deadline=30.0, slow_from=CALIBRATION_STEPS)
    # Planned 30 steps at 1 s; at 3 s a step the deadline passes after step 14 (6 + 8 x 3 = 30, then 33).
    assert len(history.losses) == 15 and state["plan"]["total"] == 15 and state["step"] == 15
