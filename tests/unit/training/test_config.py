"""Training presets: one TOML per preset, decoded strictly."""

from __future__ import annotations

import pytest

from training.config import ConfigError, load_config, preset_names


def test_every_preset_loads_and_its_curriculum_starts_with_alignment():
    assert {"tiny", "cpu", "gpu"} <= set(preset_names())
    for name in preset_names():
        cfg = load_config(name)
        first, last = cfg.phase_at(0), cfg.phase_at(cfg.stage3.steps - 1)
        assert last.sft > last.align, name
        # A preset that continues a trained set (init_from) starts aligned already: the task phase alone.
        assert first.align > first.sft or (cfg.stage3.init_from and first is last), name


def test_only_a_curriculum_without_distillation_and_alignment_runs_without_a_teacher():
    assert load_config("cpu-xl-more").needs_teacher
    cfg = load_config("cpu-xl-hard")
    assert not cfg.needs_teacher and cfg.stage3.init_from


def test_phase_boundaries_follow_the_fractions():
    cfg = load_config("tiny")  # 20 steps, phases 0.3 / 0.7
    assert cfg.phase_at(5) is cfg.stage3.phases[0]
    assert cfg.phase_at(6) is cfg.stage3.phases[1]


def test_unknown_keys_and_bad_phase_fractions_are_rejected(tmp_path):
    bad_key = tmp_path / "a.toml"
    bad_key.write_text('name = "a"\n[model]\nlora_rnk = 4\n')
    with pytest.raises(ConfigError, match="lora_rnk"):
        load_config(bad_key)
    bad_phases = tmp_path / "b.toml"
    bad_phases.write_text('name = "b"\n[stage3]\nphases = [{ fraction = 0.5, sft = 1.0, distill = 1.0, align = 1.0 }]\n')
    with pytest.raises(ConfigError, match="sum to 1"):
        load_config(bad_phases)


def test_a_missing_preset_names_the_ones_there_are():
    with pytest.raises(ConfigError, match="tiny"):
        load_config("nope")


def test_extends_lays_a_config_over_its_base(tmp_path):
    child = tmp_path / "child.toml"
    child.write_text('extends = "cpu"\nname = "child"\n[stage3]\nsteps = 7\n')
    cfg, base = load_config(child), load_config("cpu")
    assert cfg.name == "child" and cfg.stage3.steps == 7
    assert cfg.stage3.lr == base.stage3.lr and cfg.data == base.data  # untouched keys come from the base


def test_an_extends_loop_is_an_error(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b.toml"\nname = "a"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\nname = "b"\n')
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "a.toml")
