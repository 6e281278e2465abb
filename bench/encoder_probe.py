"""`mixlm bench encoder`: how much an item token says about its item before any ranker reads it.

Each query and each doc of a relevance set goes through the encoder as an item; docs are ranked over the whole
corpus by the cosine of the item tokens (after taking out the mean token, which every item shares and which
would otherwise dominate the cosine). Done with the encoder template's tail and without it, so the effect of the
tail (mixlm/prompts.py ENCODER_SUFFIX) on the untrained base, or on a weight set, is one command away. A sentence
encoder (MIXLM_ENCODER_MODEL=minilm-l6) has no template: it gets one row.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from bench.results import data_option, record, record_option
from mixlm.cli import settings_of


@click.command("encoder")
@data_option
@click.option("--queries", "n_queries", default=150, show_default=True, type=click.IntRange(min=1),
              help="Deterministic query sample.")
@click.option("--weights", default="none", show_default=True,
              help="'none' (the untrained base), 'auto' or a weight set folder.")
@click.option("--max-item-tokens", default=64, show_default=True, type=click.IntRange(min=8),
              help="Item text cut to this many tokens before the tail (the cpu preset trains at 64).")
@record_option
@click.pass_context
def encoder(ctx, data_dir: Path, n_queries: int, weights: str, max_item_tokens: int, do_record: bool) -> None:
    """Zero-shot retrieval by item-token cosine, with and without the encoder template's tail."""
    from mixlm import prompts
    from mixlm.weights import build_mixlm
    from training.datasets import load_relevance_set, sample_queries

    settings = settings_of(ctx, weights=weights, max_item_text_tokens=max_item_tokens)
    rs = load_relevance_set(data_dir)
    query_ids = sample_queries(rs, n_queries)
    mix = build_mixlm(settings)
    rows = []
    if mix.encoder_tokenizer is None:
        variants = [("with tail", prompts.ENCODER_SUFFIX), ("without tail (paper)", "")]
    else:  # a sentence encoder reads the plain item text (no template, no tail): one row
        variants = [(f"plain text ({mix.encoder.sampling}-pooled sentence encoder)", "")]
    for label, tail in variants:
        mix.encoder_tail = tail
        start = time.perf_counter()
        metrics = retrieval_metrics(mix, rs, query_ids)
        rows.append([label, repr(tail), round(metrics["NDCG@10"], 4), round(metrics["MRR@10"], 4),
                     round(metrics["Recall@50"], 4), round(time.perf_counter() - start, 1)])
    header = ["encoder input", "tail", "NDCG@10", "MRR@10", "Recall@50", "seconds"]
    for row in [header, *rows]:
        click.echo("  ".join(str(v) for v in row))
    if do_record:
        record(f"encoder template ({rs.name})", header, rows,
               note=f"zero-shot retrieval over all {len(rs.docs)} docs by item-token cosine, {len(query_ids)} queries, "
                    f"weights={settings.weights}, T_S={mix.encoder.n_tokens}, items cut to {mix.max_item_text_tokens} "
                    f"tokens; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end")


def retrieval_metrics(mix, rs, query_ids: list[str]) -> dict[str, float]:
    """Rank every doc for each query by the centred cosine of their item tokens -> NDCG@10, MRR@10, Recall@50."""
    import torch.nn.functional as F

    from training.datasets import doc_text, excluded_docs
    from training.first_stage import top_k
    from training.metrics import mean_metrics

    def unit_tokens(texts: list[str]):
        flat = mix.encode_items(texts).float().flatten(1)
        return F.normalize(flat - flat.mean(0), dim=-1)

    docs = list(rs.docs)
    cosine = unit_tokens([rs.queries[q].text for q in query_ids]) @ unit_tokens([doc_text(rs.docs[d]) for d in docs]).T
    rankings = top_k(docs, cosine.cpu().numpy(), query_ids, 50, excluded_docs(rs, query_ids))
    return mean_metrics(rs.qrels, rankings, query_ids)
