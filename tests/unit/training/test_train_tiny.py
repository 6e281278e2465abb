"""The tiny preset end to end: both stages learn, the weight set reloads bit-exactly and scores the same."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from mixlm.settings import Settings
from mixlm.weights import build_mixlm, find_weights
from training.adapters import lora_state
from training.config import load_config
from training.pipeline import run
from training.weights_io import ENCODER_FILE, PROJECTOR_FILE, RANKER_FILE, WeightSetError

QUERY = "ICU nurse"
TEXTS = ["Registered Nurse\nCares for patients in hospitals.", "Welder\nJoins metal parts.", "Cashier\nHandles payments."]


# Every test of a trained set runs for both encoder kinds: a tiny Llama (last-N states) and a tiny BERT (mean-pooled).
@pytest.fixture(scope="module", params=["tiny", "tiny-bert"])
def trained(request, tmp_path_factory, titles_dir):
    out = tmp_path_factory.mktemp("weights")
    settings = Settings(home=Settings().home, base_model="tiny", dtype="fp32", weights="none", device="cpu",
                        sqlite_path=out / "store.sqlite", weights_dir=out)
    cfg = load_config(request.param)
    cfg.data.sets = [titles_dir.name]
    result = run(cfg, settings, titles_dir, out, keep_model=True, progress=False)
    return result, settings, out


def loaded(settings, folder):
    return build_mixlm(settings.model_copy(update={"weights": str(folder), "max_item_text_tokens": 24}))


def preset_of(result) -> str:
    return json.loads((result.folder / "manifest.json").read_text())["preset"]


def config_of(result, titles_dir):
    """The config a trained set was made with, pointed at the synthetic set (to resume or continue its run)."""
    cfg = load_config(preset_of(result))
    cfg.data.sets = [titles_dir.name]
    return cfg


def test_stage2_sft_loss_goes_down(trained):
    result, _, _ = trained
    assert result.stage2.mean(-5, None) < result.stage2.mean(0, 5)


def test_stage3_task_and_alignment_losses_go_down(trained):
    result, _, _ = trained
    parts = result.stage3.parts
    first, last = parts[:5], parts[-5:]
    for name in ("sft", "align_hidden"):
        assert sum(p[name] for p in last) < sum(p[name] for p in first), name
    assert all(-1.0 <= p["item_cos"] <= 1.0 for p in parts)  # the collapse detector, logged every step


def test_manifest_names_the_version_the_service_computes(trained):
    result, settings, out = trained
    manifest = json.loads((result.folder / "manifest.json").read_text())
    model = loaded(settings, result.folder)
    assert manifest["model_version"] == result.folder.name == model.model_version
    assert manifest["base_model"] == "tiny" and manifest["n_item_tokens"] == 1
    assert {"created_at", "data", "steps", "dev_metrics", "base_fingerprint"} <= set(manifest)
    assert manifest["steps"] == {"stage2": 20, "stage3": 20}
    assert set(manifest["dev_metrics"]) == {"teacher", "bm25", "mixlm", "mixlm_untrained"}  # bm25: the first stage
    for metrics in manifest["dev_metrics"].values():
        assert set(metrics) == {"NDCG@10", "NDCG@10 SE", "MRR@10", "Recall@50"} and metrics["NDCG@10 SE"] >= 0
    # The targets' differences, paired on the same dev queries: mixlm minus every other system.
    dev = manifest["dev_metrics"]
    assert set(manifest["dev_paired"]) == {"mixlm - teacher", "mixlm - bm25", "mixlm - mixlm_untrained"}
    for pair, d in manifest["dev_paired"].items():
        other = pair.removeprefix("mixlm - ")
        assert d["NDCG@10"] == pytest.approx(dev["mixlm"]["NDCG@10"] - dev[other]["NDCG@10"], abs=1e-9)
        assert d["SE"] >= 0
    auto = settings.model_copy(update={"weights": "auto"})
    assert find_weights(auto) == result.folder


def test_saved_adapters_are_bit_exactly_the_trained_ones(trained):
    result, _, _ = trained
    model = result.model
    for name, body in ((ENCODER_FILE, model.encoder.body), (RANKER_FILE, model.ranker.lm.model)):
        saved, live = load_file(str(result.folder / name)), lora_state(body)
        assert saved.keys() == live.keys() and saved
        assert all(torch.equal(saved[k], live[k]) for k in saved)
    assert torch.equal(load_file(str(result.folder / PROJECTOR_FILE))["weight"], model.encoder.projector.weight)
    # LoRA B starts at zero: a non-zero B in both adapters shows that gradients reached the encoder and the ranker.
    for name in (ENCODER_FILE, RANKER_FILE):
        saved = load_file(str(result.folder / name))
        assert any(v.abs().sum() > 0 for k, v in saved.items() if "lora_B" in k), name


def test_reloaded_set_scores_like_the_trained_model_and_not_like_the_base(trained):
    result, settings, _ = trained
    a, b = loaded(settings, result.folder), loaded(settings, result.folder)
    tokens_a, tokens_b = a.encode_items(TEXTS), b.encode_items(TEXTS)
    assert torch.equal(tokens_a, tokens_b)
    scores_a = a.score_mixed(QUERY, list(tokens_a))
    assert torch.equal(scores_a, b.score_mixed(QUERY, list(tokens_b)))
    live = result.model
    with torch.inference_mode():
        live_tokens = live.encoder(*live.tokenize_items(TEXTS))
    live_scores = live.score_mixed(QUERY, list(live_tokens))
    # Merged (W + BA) vs unmerged (Wx + BAx) LoRA: equal up to float rounding.
    torch.testing.assert_close(tokens_a, live_tokens, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(scores_a, live_scores, atol=1e-5, rtol=1e-4)
    base = build_mixlm(settings.model_copy(update={"weights": "none", "max_item_text_tokens": 24}))
    assert not torch.allclose(base.score_mixed(QUERY, list(base.encode_items(TEXTS))), scores_a, atol=1e-4)


def test_weight_set_is_small(trained):
    result, _, _ = trained
    assert sum(p.stat().st_size for p in result.folder.iterdir()) < 30 * 2**20


def test_resuming_a_finished_run_trains_nothing_and_rebuilds_the_same_set(trained, titles_dir):
    result, settings, out = trained
    cfg = config_of(result, titles_dir)
    again = run(cfg, settings, titles_dir, out, resume=True, evaluate=False, progress=False)
    assert again.folder == result.folder  # same adapters -> same fingerprint -> same model_version
    assert len(again.stage3.losses) == len(result.stage3.losses)


def test_a_set_trained_for_another_item_token_count_is_refused(trained):
    result, settings, _ = trained
    with pytest.raises(WeightSetError, match="T_S"):
        build_mixlm(settings.model_copy(update={"weights": str(result.folder), "n_item_tokens": 2}))


def test_auto_weights_bring_their_item_token_count(titles_dir, tmp_path):
    # A set trained for T_S = 2 is served with 2 tokens when MIXLM_N_ITEM_TOKENS is unset; setting it picks among sets.
    out = tmp_path / "weights"
    settings = Settings(home=Settings().home, base_model="tiny", dtype="fp32", device="cpu", weights_dir=out,
                        sqlite_path=tmp_path / "store.sqlite", max_item_text_tokens=24)
    cfg = load_config("tiny")
    cfg.data.sets, cfg.model.n_item_tokens = [titles_dir.name], 2
    result = run(cfg, settings.model_copy(update={"weights": "none"}), titles_dir, out, evaluate=False, progress=False)
    assert find_weights(settings) == result.folder
    model = build_mixlm(settings)
    assert model.n_item_tokens == 2 and model.model_version == result.folder.name
    assert model.encode_items(TEXTS).shape[1] == 2
    assert find_weights(settings.model_copy(update={"n_item_tokens": 1})) is None
    assert find_weights(settings.model_copy(update={"n_item_tokens": 2})) == result.folder


def test_cli_trains_the_tiny_preset_and_prints_the_data_card(titles_dir, tmp_path):
    from click.testing import CliRunner

    from mixlm.cli import cli

    env = {"MIXLM_BASE_MODEL": "tiny", "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu"}
    res = CliRunner().invoke(cli, ["train", "--preset", "tiny", "--data", str(titles_dir), "--out", str(tmp_path),
                                   "--steps", "2", "--no-eval"], env=env)
    assert res.exit_code == 0, res.output
    assert "data card" in res.output and "label histogram" in res.output
    assert len(list(tmp_path.glob("*/manifest.json"))) == 1


def test_cli_stopped_by_sigterm_says_how_to_resume_and_resume_finishes(titles_dir, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mixlm.cli import cli
    from training import loop

    def stop_at_once(flag):  # as if SIGTERM arrived during the first step
        flag.stop = True
        return flag

    env = {"MIXLM_BASE_MODEL": "tiny", "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu"}
    args = ["train", "--preset", "tiny", "--data", str(titles_dir), "--out", str(tmp_path), "--run-dir",
            str(tmp_path / "run"), "--steps", "3", "--no-eval"]
    with monkeypatch.context() as m:
        m.setattr(loop._StopFlag, "__enter__", stop_at_once)
        res = CliRunner().invoke(cli, args, env=env)
    assert res.exit_code == 143, res.output
    assert "stopped by SIGTERM at step 1" in res.output and "--resume" in res.output
    assert "Traceback" not in res.output and not list(tmp_path.glob("*/manifest.json"))
    res = CliRunner().invoke(cli, [*args, "--resume"], env=env)
    assert res.exit_code == 0, res.output
    assert len(list(tmp_path.glob("*/manifest.json"))) == 1


def test_cli_time_budget_cuts_both_stages_and_a_resume_keeps_the_plan(titles_dir, tmp_path):
    """A budget already spent when training starts: stage II runs only its timed steps, stage III one step, and
    the set is still written with its dev metrics (the stages yield, not the metrics)."""
    from click.testing import CliRunner

    from mixlm.cli import cli
    from training.loop import CALIBRATION_STEPS

    env = {"MIXLM_BASE_MODEL": "tiny", "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu"}
    args = ["train", "--preset", "tiny", "--data", str(titles_dir), "--out", str(tmp_path), "--run-dir",
            str(tmp_path / "run"), "--time-budget", "1"]
    res = CliRunner().invoke(cli, args, env=env)
    assert res.exit_code == 0, res.output
    assert f"stage II: {CALIBRATION_STEPS} steps" in res.output and "stage III: 1 steps" in res.output
    assert "stage III at most 1 steps" in res.output
    manifest = json.loads(next(tmp_path.glob("*/manifest.json")).read_text())
    assert manifest["steps"] == {"stage2": CALIBRATION_STEPS, "stage3": 1} and manifest["time_budget_s"] == 1.0
    assert manifest["config"]["stage3"]["steps"] == 1 and "mixlm" in manifest["dev_metrics"]
    res = CliRunner().invoke(cli, [*args[:-2], "--resume"], env=env)  # without a budget now
    assert res.exit_code == 0, res.output
    assert "stage III: 1 steps" in res.output and "this run folder's plan" in res.output


def test_cli_prepare_only_builds_the_data_and_baselines_and_trains_nothing(titles_dir, tmp_path):
    from click.testing import CliRunner

    from mixlm.cli import cli

    env = {"MIXLM_BASE_MODEL": "tiny", "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu", "MIXLM_HOME": str(tmp_path / "home")}
    res = CliRunner().invoke(cli, ["train", "--preset", "tiny", "--data", str(titles_dir), "--out", str(tmp_path),
                                   "--prepare-only"], env=env)
    assert res.exit_code == 0, res.output
    assert "data card" in res.output and "dev bm25: NDCG@10=" in res.output and "prepared" in res.output
    assert "stage II" not in res.output and not list(tmp_path.glob("*/manifest.json"))


def test_full_fine_tune_with_live_text_path_and_checkpointing_reloads_the_same(titles_dir, tmp_path):
    """The gpu preset's switches (text path with gradients, gradient checkpointing) plus full fine-tuning."""
    settings = Settings(home=Settings().home, base_model="tiny", dtype="fp32", weights="none", device="cpu",
                        weights_dir=tmp_path)
    cfg = load_config("tiny")
    cfg.model.full_finetune, cfg.model.gradient_checkpointing = True, True
    cfg.stage3.text_path = "grad"
    cfg.stage2.steps = cfg.stage3.steps = 4
    result = run(cfg, settings, titles_dir, tmp_path, evaluate=False, keep_model=True, progress=False)
    manifest = json.loads((result.folder / "manifest.json").read_text())
    assert manifest["adapter"]["kind"] == "full"
    reloaded = loaded(settings, result.folder)
    live = result.model
    with torch.inference_mode():
        live_tokens = live.encoder(*live.tokenize_items(TEXTS))
    torch.testing.assert_close(reloaded.encode_items(TEXTS), live_tokens)
    torch.testing.assert_close(reloaded.score_mixed(QUERY, list(live_tokens)), live.score_mixed(QUERY, list(live_tokens)))


def test_resume_refuses_a_run_started_with_another_config(trained, titles_dir):
    from training.config import ConfigError

    result, settings, out = trained
    cfg = load_config(preset_of(result))
    cfg.stage3.lr = 1.0
    with pytest.raises(ConfigError, match="stage3"):
        run(cfg, settings, titles_dir, out, resume=True, evaluate=False, progress=False)


def test_service_encodes_at_the_trained_text_length_unless_overridden(trained):
    result, settings, _ = trained
    trained_len = json.loads((result.folder / "manifest.json").read_text())["max_item_text_tokens"]
    assert build_mixlm(settings.model_copy(update={"weights": str(result.folder)})).max_item_text_tokens == trained_len
    explicit = Settings(home=settings.home, base_model="tiny", dtype="fp32", device="cpu", weights=str(result.folder),
                        max_item_text_tokens=trained_len + 7)
    assert build_mixlm(explicit).max_item_text_tokens == trained_len + 7


def test_teacher_cache_reuses_the_pairs_it_has_and_runs_only_new_groups(trained, tmp_path, monkeypatch):
    import training.teacher_cache as tc

    result, _, _ = trained
    mix, groups = result.model, result.data.groups[:4]
    fresh = tc.build_teacher_cache(mix, groups, tmp_path / "fresh.pt", with_hidden=True, chunk_groups=1, progress=False)
    tc.build_teacher_cache(mix, groups[:2], tmp_path / "grown.pt", with_hidden=True, chunk_groups=1, progress=False)
    ran = []
    real = tc.text_forward
    monkeypatch.setattr(tc, "text_forward", lambda m, chunk: ran.extend(g.query for g in chunk) or real(m, chunk))
    # A longer run visits more groups, in another order: only the two it lacks are run.
    grown = tc.build_teacher_cache(mix, groups[::-1], tmp_path / "grown.pt", with_hidden=True, chunk_groups=1,
                                   progress=False)
    assert sorted(ran) == sorted(g.query for g in groups[2:])
    for a, b in zip(fresh.lookup(groups, "cpu"), grown.lookup(groups, "cpu")):
        torch.testing.assert_close(a, b)


def test_a_sentence_encoder_set_says_so_and_is_versioned_apart(trained):
    result, settings, _ = trained
    manifest = json.loads((result.folder / "manifest.json").read_text())
    if preset_of(result) == "tiny":
        assert manifest["encoder_model"] == "tiny" and manifest["sampling"] == "last" and "encoder_adapter" not in manifest
        return
    assert manifest["encoder_model"] == "tiny-bert" and manifest["sampling"] == "mean"
    assert manifest["encoder_adapter"]["targets"] == ["query", "key", "value", "dense"]
    assert set(load_file(str(result.folder / PROJECTOR_FILE))["weight"].shape) == {32, 64}  # BERT 32 -> ranker 64
    model = loaded(settings, result.folder)
    assert model.encoder.sampling == "mean" and model.encoder_tokenizer is not None
    # Asking for another encoder than the set was trained with is refused, naming both.
    with pytest.raises(WeightSetError, match="tiny-bert.*MIXLM_ENCODER_MODEL=tiny"):
        build_mixlm(settings.model_copy(update={"weights": str(result.folder), "encoder_model": "tiny"}))
    # ... and "auto" weight discovery with an explicit other encoder does not pick it.
    assert find_weights(settings.model_copy(update={"weights": "auto", "encoder_model": "tiny"})) is None


def test_the_projector_of_a_sentence_encoder_keeps_the_items_apart_at_the_rankers_norm(titles_dir, tmp_path):
    from mixlm.model import sample_item_tokens
    from training.adapters import Projector
    from training.datasets import load_relevance_set
    from training.trainable import build_trainable, init_projector

    settings = Settings(home=Settings().home, base_model="tiny", dtype="fp32", weights="none", device="cpu",
                        weights_dir=tmp_path)
    mix = build_trainable(settings, load_config("tiny-bert"))
    assert isinstance(mix.encoder.projector, Projector) and mix.encoder.projector.weight.shape == (64, 32)
    texts = [f"{d.title}\n{d.text}" for d in load_relevance_set(titles_dir).docs.values()]

    def cosines(x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.normalize(x.float(), dim=-1)
        return x @ x.T

    mix.encoder.eval()  # BERT's dropout would blur the comparison
    init_projector(mix, texts)
    with torch.no_grad():
        ids, mask = mix.tokenize_items(texts)
        pooled = sample_item_tokens(mix.encoder.body(input_ids=ids, attention_mask=mask).last_hidden_state, mask, 1,
                                    mix.encoder.sampling)[:, 0]
        tokens = mix.encoder(ids, mask)[:, 0]
        ranker_ids = torch.cat([mix.ids(t, mix.max_item_text_tokens) for t in texts[:128]])
        token_norm = float(mix.ranker.embed(ranker_ids).norm(dim=-1).mean())
    # Every angle between two items survives the projection (a ridge fit squeezed them together: stage III collapsed).
    assert torch.allclose(cosines(tokens), cosines(pooled), atol=1e-4)
    assert float(tokens[:128].norm(dim=-1).mean()) == pytest.approx(token_norm, rel=1e-3)


def test_a_centred_projector_start_sets_the_items_further_apart_at_the_rankers_norm(titles_dir, tmp_path):
    from training.datasets import load_relevance_set
    from training.stage3 import item_cosine
    from training.trainable import build_trainable, init_projector

    settings = Settings(home=Settings().home, base_model="tiny", dtype="fp32", weights="none", device="cpu",
                        weights_dir=tmp_path)
    texts = [f"{d.title}\n{d.text}" for d in load_relevance_set(titles_dir).docs.values()]

    def started(centred: bool) -> tuple[torch.Tensor, float]:
        torch.manual_seed(0)
        mix = build_trainable(settings, load_config("tiny"))
        mix.encoder.eval()
        init_projector(mix, texts, centred=centred)
        with torch.no_grad():
            ids, mask = mix.tokenize_items(texts)
            tokens = mix.encoder(ids, mask)[:, 0].float()
            token_norm = float(mix.ranker.embed(ids[mask.bool()]).norm(dim=-1).mean())
        return tokens, token_norm

    scaled, norm = started(False)
    centred, _ = started(True)
    assert item_cosine(centred) < item_cosine(scaled) - 0.05
    assert float(centred.norm(dim=-1).mean()) == pytest.approx(norm, rel=1e-3)
    assert abs(item_cosine(centred)) < 0.2  # the shared direction is gone: what is left points every way


def test_dev_results_round_trip_and_old_teacher_dev_files_still_load(tmp_path):
    from training.pipeline import DevResult, paired_dev

    saved = DevResult({"NDCG@10": 0.5}, {"set/q1": 0.25, "set/q2": 0.75})
    saved.save(tmp_path / "new.json")
    assert DevResult.load(tmp_path / "new.json") == saved
    (tmp_path / "old.json").write_text(json.dumps({"NDCG@10": 0.3, "MRR@10": 0.2}))
    old = DevResult.load(tmp_path / "old.json")
    assert old == DevResult({"NDCG@10": 0.3, "MRR@10": 0.2}, {})
    # A system without per-query values (an old teacher_dev.json) is left out of the paired differences.
    mixlm = DevResult({"NDCG@10": 0.6}, {"set/q1": 0.5, "set/q2": 0.75})
    assert paired_dev({"mixlm": mixlm, "teacher": old, "bm25": saved}) == {"mixlm - bm25": {"NDCG@10": 0.125,
                                                                                           "SE": 0.125}}


def test_a_frozen_encoder_trains_only_its_projector_encodes_each_item_once_and_serves_the_same(
        titles_dir, tmp_path, monkeypatch):
    from mixlm.model import Encoder

    settings = Settings(home=Settings().home, base_model="tiny", dtype="fp32", weights="none", device="cpu",
                        weights_dir=tmp_path)
    cfg = load_config("tiny-bert")
    cfg.data.sets = [titles_dir.name]
    cfg.stage3.freeze_encoder = True
    encoded: list[int] = []
    states = Encoder.states

    def counting(self, ids, mask):
        if not torch.is_grad_enabled() and not self.training:  # FrozenStates' passes, and init_projector's
            encoded.append(len(ids))
        return states(self, ids, mask)

    monkeypatch.setattr(Encoder, "states", counting)
    result = run(cfg, settings, titles_dir, tmp_path, keep_model=True, evaluate=False, progress=False)
    monkeypatch.undo()
    # Stage III visited 20 steps x 2 groups of 4 items but encoded each distinct item text once.
    visited_texts = {item.text for g in result.data.groups for item in g.items}
    assert 0 < sum(encoded) <= len(visited_texts) + 128  # + init_projector's norm sample
    assert load_file(str(result.folder / ENCODER_FILE)) == {}  # no encoder adapter: the base body serves
    assert json.loads((result.folder / "manifest.json").read_text())["encoder_adapter"]["kind"] == "none"
    parts = result.stage3.parts
    assert sum(p["sft"] for p in parts[-5:]) < sum(p["sft"] for p in parts[:5])
    # The trained projector is the saved one, and a reloaded set scores as the trained modules do.
    model = result.model
    assert torch.equal(load_file(str(result.folder / PROJECTOR_FILE))["weight"], model.encoder.projector.weight)
    served = loaded(settings, result.folder)
    with torch.inference_mode():
        live_tokens = model.encoder(*model.tokenize_items(TEXTS))
    torch.testing.assert_close(served.encode_items(TEXTS), live_tokens, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(served.score_mixed(QUERY, list(served.encode_items(TEXTS))),
                               model.score_mixed(QUERY, list(live_tokens)), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("freeze", [False, True])
def test_a_run_started_from_a_set_at_lr_zero_saves_that_set_bit_exactly(trained, titles_dir, tmp_path, freeze):
    # Stage III continues the set (init_from) instead of the teacher and the base encoder: with nothing learnt on
    # top, the saved set is the one it started from, adapters, projector and model_version alike (a frozen encoder's
    # adapter is carried on).
    result, settings, _ = trained
    cfg = config_of(result, titles_dir)
    cfg.stage3.init_from, cfg.stage3.freeze_encoder = str(result.folder), freeze
    cfg.stage3.lr, cfg.stage3.encoder_lr = 0.0, 0.0
    again = run(cfg, settings.model_copy(update={"weights_dir": tmp_path}), titles_dir, tmp_path, evaluate=False,
                progress=False)
    assert again.folder.name == result.folder.name
    for name in (ENCODER_FILE, RANKER_FILE, PROJECTOR_FILE):
        before, after = load_file(str(result.folder / name)), load_file(str(again.folder / name))
        assert before.keys() == after.keys() and before, name
        assert all(torch.equal(before[k], after[k]) for k in before), name
    before, after = (json.loads((f / "manifest.json").read_text()) for f in (result.folder, again.folder))
    assert after["encoder_adapter" if "encoder_adapter" in before else "adapter"] == before.get(
        "encoder_adapter", before["adapter"])


def test_a_frozen_continued_encoder_keeps_the_sets_adapter_while_the_ranker_learns(trained, titles_dir, tmp_path):
    result, settings, _ = trained
    cfg = config_of(result, titles_dir)
    cfg.stage3.init_from, cfg.stage3.freeze_encoder = str(result.folder), True
    again = run(cfg, settings.model_copy(update={"weights_dir": tmp_path}), titles_dir, tmp_path, evaluate=False,
                progress=False)
    before, after = load_file(str(result.folder / ENCODER_FILE)), load_file(str(again.folder / ENCODER_FILE))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    before, after = load_file(str(result.folder / RANKER_FILE)), load_file(str(again.folder / RANKER_FILE))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert again.folder.name != result.folder.name  # the projector trained: other item tokens, another version


def test_continuing_a_set_that_does_not_fit_the_config_is_refused_with_the_reason(trained, titles_dir, tmp_path):
    from training.config import ConfigError

    result, settings, _ = trained
    other = "tiny" if preset_of(result) == "tiny-bert" else "tiny-bert"
    cfg = load_config(other)
    cfg.data.sets = [titles_dir.name]
    cfg.stage3.init_from = str(result.folder)
    with pytest.raises(ConfigError, match="trained on ranker/encoder"):  # refused before any training
        run(cfg, settings, titles_dir, tmp_path, evaluate=False, progress=False)
    cfg.stage3.init_from = str(tmp_path)
    with pytest.raises(ConfigError, match="not a weight set"):
        run(cfg, settings, titles_dir, tmp_path / "r1", evaluate=False, progress=False)
    cfg = config_of(result, titles_dir)
    cfg.stage3.init_from, cfg.model.lora.rank = str(result.folder), 2
    with pytest.raises(ConfigError, match="do not fit this config's LoRA"):
        run(cfg, settings, titles_dir, tmp_path / "r2", evaluate=False, progress=False)


def test_continuing_a_set_on_labels_alone_trains_no_teacher_and_caches_nothing(trained, titles_dir, tmp_path):
    from training.config import Phase

    result, settings, _ = trained
    cfg = config_of(result, titles_dir)
    cfg.stage3.init_from, cfg.stage3.freeze_encoder = str(result.folder), True
    cfg.stage3.phases = [Phase(fraction=1.0, sft=1.0, distill=0.0, align=0.0)]
    assert not cfg.needs_teacher
    again = run(cfg, settings.model_copy(update={"weights_dir": tmp_path}), titles_dir, tmp_path,
                run_dir=tmp_path / "run", progress=False)
    assert not again.stage2.losses  # no stage II: nothing reads a teacher
    assert not (tmp_path / "run" / "teacher.pt").exists() and not (tmp_path / "run" / "teacher_cache.pt").exists()
    assert all(set(p) == {"sft", "listwise", "item_cos"} for p in again.stage3.parts)
    assert sum(p["listwise"] for p in again.stage3.parts[-5:]) < sum(p["listwise"] for p in again.stage3.parts[:5])
    manifest = json.loads((again.folder / "manifest.json").read_text())
    assert "teacher" not in manifest["dev_metrics"] and "mixlm" in manifest["dev_metrics"]
    assert manifest["steps"]["stage2"] == 0 and manifest["config"]["stage3"]["init_from"] == str(result.folder)
    from training.pipeline import summary_table

    rows = [row[0] for row in summary_table(again)[1]]  # what --record writes: no row for a stage that never ran
    assert "stage II (teacher)" not in rows and "stage III (joint)" in rows and "dev: mixlm" in rows
