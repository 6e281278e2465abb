"""A --time-budget run's stage III plan: the steps that fit with their teacher cache, at stage II's pace."""

from __future__ import annotations

import json

from training.config import load_config
from training.loop import History
from training.pipeline import budget_stage3


def _cfg(steps: int = 100):
    cfg = load_config("tiny")  # stage II and III: 2 groups a step, cached text path
    cfg.stage3.steps, cfg.stage3.warmup_steps = steps, 10
    return cfg


# 10 stage II steps of 2 groups in 20 s: 1 s a group. A stage III step (cached text path) then costs 2 s, and the
# teacher cache 0.5 s for each new group it will visit.
STAGE2 = History(losses=[1.0] * 10, seconds=20.0)


def test_stage3_gets_the_steps_that_fit_with_their_cache_plus_a_fifth(tmp_path):
    cfg = budget_stage3(_cfg(), STAGE2, seconds=30.0, n_groups=24, plan_file=tmp_path / "plan.json")
    # 30 s / (2 s + 2 groups x 0.5 s) = 10 steps (20 groups, fewer than the 24 there are), x1.2 -> 12
    assert cfg.stage3.steps == 12 and cfg.stage3.warmup_steps == 1
    assert json.loads((tmp_path / "plan.json").read_text()) == {"stage3_steps": 12}


def test_once_every_group_is_cached_the_cache_costs_its_size_once(tmp_path):
    cfg = budget_stage3(_cfg(1000), STAGE2, seconds=112.0, n_groups=24, plan_file=tmp_path / "plan.json")
    # (112 s - 24 groups x 0.5 s) / 2 s = 50 steps, x1.2 -> 60 (at 3 s a step it would be 37 -> 45)
    assert cfg.stage3.steps == 60


def test_the_plan_never_exceeds_the_preset_and_a_resumed_run_keeps_it(tmp_path):
    plan = tmp_path / "plan.json"
    assert budget_stage3(_cfg(), STAGE2, seconds=1e6, n_groups=24, plan_file=plan).stage3.steps == 100
    plan.write_text(json.dumps({"stage3_steps": 7}))
    assert budget_stage3(_cfg(), STAGE2, seconds=1e6, n_groups=24, plan_file=plan).stage3.steps == 7
    assert budget_stage3(_cfg(), STAGE2, seconds=-5.0, n_groups=24, plan_file=tmp_path / "p2.json").stage3.steps == 1


def test_a_frozen_encoder_plans_cheaper_stage3_steps(tmp_path):
    cfg = _cfg(1000)
    cfg.stage3.freeze_encoder = True
    cfg = budget_stage3(cfg, STAGE2, seconds=112.0, n_groups=24, plan_file=tmp_path / "plan.json")
    # (112 s - 24 groups x 0.5 s) / (2 groups x 1 s x (1.0 - 0.75)) = 200 steps, x1.2 -> 240
    assert cfg.stage3.steps == 240
