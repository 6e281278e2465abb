"""`mixlm score`: score one query against item texts with the real model, on CPU or GPU."""

from __future__ import annotations

import time

import click

from mixlm.cli import settings_of


@click.command()
@click.option("--query", "-q", required=True, help="The search query.")
@click.option("--text", "-t", "texts", multiple=True, required=True, help="An item text (repeat for several items).")
@click.option("--mode", type=click.Choice(["mixed", "text"]), default="mixed", show_default=True,
              help="mixed: encode items to item tokens, then the MixLM ranker; text: the full-text teacher prompt.")
@click.option("--base-model", type=click.Choice(["smollm2-135m", "tiny"]), default=None, help="Override MIXLM_BASE_MODEL.")
@click.option("--weights", default=None, help="Weight set folder, 'auto' or 'none' (MIXLM_WEIGHTS).")
@click.pass_context
def score(ctx: click.Context, query: str, texts: tuple[str, ...], mode: str, base_model: str | None, weights: str | None) -> None:
    """Print P(yes) for each --text against --query."""
    from mixlm.weights import build_mixlm

    settings = settings_of(ctx, base_model=base_model, weights=weights)
    t0 = time.perf_counter()
    model = build_mixlm(settings)
    t1 = time.perf_counter()
    if mode == "mixed":
        scores = model.score_mixed(query, list(model.encode_items(list(texts))))
    else:
        scores = model.score_text(query, list(texts))
    t2 = time.perf_counter()
    for text, s in sorted(zip(texts, scores.tolist()), key=lambda p: -p[1]):
        click.echo(f"{s:.4f}\t{text[:80]}")
    click.echo(f"# model_version={model.model_version} mode={mode} load={1000*(t1-t0):.0f}ms score={1000*(t2-t1):.0f}ms", err=True)
