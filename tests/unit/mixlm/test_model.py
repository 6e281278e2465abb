"""The model core: encoder sampling (last-N, span means), and multi-item scoring equal to per-item scoring."""

import pytest
import torch

from mixlm.model import p_yes, sample_item_tokens

TEXTS = [
    "Senior data analyst: SQL, dashboards and reporting for a payments team.",
    "Registered nurse for the intensive care unit, night shifts.",
    "Truck driver, CDL class A, long haul routes across the Midwest.",
    "Backend engineer (Python, Kafka, Cassandra) for a search platform.",
]


def reference_scores(model, query, segments):
    """Each item alone behind the prefix, through the plain HF causal forward (no custom mask)."""
    out = []
    with torch.inference_mode():
        prefix = model.prefix_embeds(query)
        for seg in segments:
            seq = torch.cat([prefix, seg])[None]
            hidden = model.ranker.lm.model(inputs_embeds=seq).last_hidden_state[0, -1]
            out.append(p_yes(model.ranker.readout(hidden[None]))[0])
    return torch.stack(out)


@pytest.fixture(params=["tiny_model", pytest.param("real_model", marks=pytest.mark.real_model)])
def model(request):
    return request.getfixturevalue(request.param)


def test_encoder_keeps_last_n_hidden_states(tiny_model):
    ids, mask = tiny_model.tokenize_items(["short", "a much longer item text than the first one"])
    hidden = tiny_model.encoder.body(input_ids=ids, attention_mask=mask).last_hidden_state
    tokens = tiny_model.encoder(ids, mask)
    last = mask.sum(1) - 1
    assert tokens.shape == (2, 1, tiny_model.dim)
    assert torch.allclose(tokens[0, 0], hidden[0, last[0]]) and torch.allclose(tokens[1, 0], hidden[1, last[1]])


def test_mean_sampling_averages_each_span_of_the_real_tokens_only():
    hidden = torch.arange(2 * 6 * 3, dtype=torch.float32).reshape(2, 6, 3)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    one = sample_item_tokens(hidden, mask, 1, "mean")
    torch.testing.assert_close(one[0, 0], hidden[0, :4].mean(0))  # padding left out
    torch.testing.assert_close(one[1, 0], hidden[1].mean(0))
    two = sample_item_tokens(hidden, mask, 2, "mean")
    torch.testing.assert_close(two[0], torch.stack([hidden[0, :2].mean(0), hidden[0, 2:4].mean(0)]))
    torch.testing.assert_close(two[1], torch.stack([hidden[1, :3].mean(0), hidden[1, 3:].mean(0)]))
    with pytest.raises(ValueError, match="sampling"):
        sample_item_tokens(hidden, mask, 1, "first")


def test_the_minilm_encoder_pools_as_the_bi_encoder_does(tmp_path):
    """Untrained, its item token (before the projector) points where the MiniLM bi-encoder's embedding does."""
    from mixlm.settings import Settings
    from mixlm.weights import build_mixlm
    from training.biencoder import BiEncoder

    settings = Settings(base_model="tiny", encoder_model="minilm-l6", dtype="fp32", weights="none", device="cpu",
                        weights_dir=tmp_path)
    model = build_mixlm(settings)
    assert model.encoder.sampling == "mean" and model.encoder.projector.weight.shape == (model.dim, 384)
    with torch.inference_mode():
        ids, mask = model.tokenize_items(TEXTS)
        hidden = model.encoder.body(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = torch.nn.functional.normalize(sample_item_tokens(hidden, mask, 1, "mean")[:, 0], dim=-1)
    reference = torch.from_numpy(BiEncoder(settings).embed(TEXTS))
    torch.testing.assert_close(pooled, reference, atol=1e-4, rtol=1e-4)
    assert model.encode_items(TEXTS).shape == (len(TEXTS), 1, model.dim)


def test_a_cut_item_text_still_ends_with_the_template_tail(tiny_model):
    from dataclasses import replace

    from mixlm import prompts

    cut = replace(tiny_model, max_item_text_tokens=8)
    tail = cut.ids(prompts.ENCODER_SUFFIX).tolist()
    ids, mask = cut.tokenize_items(["a very long item description " * 20, "short"])
    for row, m in zip(ids, mask):
        kept = row[m.bool()].tolist()
        assert kept[-len(tail):] == tail and len(kept) <= 8 + len(tail)


def test_encoding_is_independent_of_batch_padding(tiny_model):
    alone = tiny_model.encode_items([TEXTS[0]])
    batched = tiny_model.encode_items(TEXTS)
    assert torch.allclose(alone[0], batched[0], atol=1e-5)


def test_multi_item_mixed_scores_equal_per_item_scores(model):
    item_tokens = list(model.encode_items(TEXTS))
    multi = model.score_mixed("data analyst", item_tokens)
    naive = model.score_mixed("data analyst", item_tokens, multi_item=False)
    ref = reference_scores(model, "data analyst", [model.mixed_item(t) for t in item_tokens])
    assert (multi - ref).abs().max() <= 1e-4
    assert (naive - ref).abs().max() <= 1e-4


def test_multi_item_text_scores_equal_per_item_scores(model):
    multi = model.score_text("nurse", TEXTS)
    with torch.inference_mode():
        segments = [model.text_item(t) for t in TEXTS]
    ref = reference_scores(model, "nurse", segments)
    assert (multi - ref).abs().max() <= 1e-4


def test_prefix_cached_scores_equal_per_item_scores(model):
    with torch.inference_mode():
        prefix = model.prefix_embeds("driver")
        segments = [model.text_item(t) for t in TEXTS]
        cached = p_yes(model.ranker.forward_prefix_cached(prefix, segments))
    assert (cached - reference_scores(model, "driver", segments)).abs().max() <= 1e-4


def test_several_requests_in_one_forward_equal_each_alone(tiny_model):
    toks = list(tiny_model.encode_items(TEXTS))
    with torch.inference_mode():
        r1 = (tiny_model.prefix_embeds("nurse"), [tiny_model.mixed_item(t) for t in toks[:3]])
        r2 = (tiny_model.prefix_embeds("a much longer query about data and analytics"), [tiny_model.mixed_item(t) for t in toks])
    together = tiny_model.score_segments([r1, r2])
    assert torch.allclose(together[0], tiny_model.score_segments([r1])[0], atol=1e-5)
    assert torch.allclose(together[1], tiny_model.score_segments([r2])[0], atol=1e-5)


def test_scores_are_probabilities_and_depend_on_the_item(real_model):
    scores = real_model.score_text("registered nurse", TEXTS)
    assert ((scores > 0) & (scores < 1)).all()
    assert scores.std() > 1e-3


@pytest.mark.real_model
def test_real_model_readout_tokens_are_yes_and_no(real_model):
    tok = real_model.tokenizer
    assert tok.convert_ids_to_tokens([real_model.ranker.yes_id, real_model.ranker.no_id]) == ["Ġyes", "Ġno"]
    assert real_model.dim == 576
