"""`mixlm bench quality`: ranking quality against scoring throughput (the paper's Tables 3-4 trade-off).

Systems on one candidate list: the full-text LLM ("text"), the same LLM on items cut to their first N
tokens (a stand-in for §6.1's summarised text), and MixLM with T_S in {1, 2, 4, 8} item tokens. Each
MixLM point loads the weight set trained for that T_S when there is one (else the untrained base).
Writes a PNG (NDCG@10 against items/s, bench/plots.py) beside this file and a table to RESULTS.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from bench import plots
from bench.results import RESULTS_DIR, data_option, record, record_option
from mixlm.cli import settings_of


def _ints(ctx, param, value: str) -> list[int]:
    try:
        values = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as e:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from e
    if not values or min(values) < 1 or max(values) > 64:
        raise click.BadParameter("T_S values must be between 1 and 64")
    return values


@click.command("quality")
@data_option
@click.option("--queries", "n_queries", default=30, show_default=True, type=click.IntRange(min=1),
              help="Deterministic query sample (small by default: a 2-core CPU scores ~100 full-text items/s).")
@click.option("--candidates", default="biencoder:10", show_default=True,
              help="First stage and depth (small by default: every T_S encodes the candidate docs again).")
@click.option("--ts", "ts_values", default="1,2,4,8", show_default=True, callback=_ints, help="T_S values for MixLM.")
@click.option("--summary-tokens", default=48, show_default=True, type=click.IntRange(min=1),
              help="Item tokens kept for the summarised-like text (the paper's 145 of 766 is ~19%).")
@click.option("--weights", default=None, help="'auto', 'none' or a folder (MIXLM_WEIGHTS).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write (default bench/quality_<set>.png).")
@record_option
@click.pass_context
def quality(ctx, data_dir: Path, n_queries: int, candidates: str, ts_values: list[int], summary_tokens: int,
            weights: str | None, plot_path: Path | None, do_record: bool) -> None:
    """NDCG@10 against items/s for text, summarised-like text and MixLM at several T_S."""
    from mixlm.weights import build_mixlm
    from training.datasets import load_relevance_set
    from training.evaluate import Evaluation

    settings = settings_of(ctx, weights=weights)
    rs = load_relevance_set(data_dir)
    evaluation = Evaluation(rs, settings, candidates=candidates, n_queries=n_queries)
    rows: list[list] = []
    interrupted = ""
    try:
        # The text systems use the ranker of the first T_S's model; every T_S brings its own encoder.
        for i, t in enumerate(ts_values):
            evaluation.use_model(build_mixlm(settings.model_copy(update={"n_item_tokens": t})))
            rows.append(_row(f"MixLM T_S={t}", evaluation.run_system("mixlm"), evaluation.model.model_version))
            if i == 0:
                for label, spec in (("text", "teacher"), (f"text, first {summary_tokens} tokens", f"teacher@{summary_tokens}")):
                    rows.append(_row(label, evaluation.run_system(spec), evaluation.model.model_version))
    except KeyboardInterrupt:  # keep the points already measured
        interrupted = f"; interrupted after {len(rows)} systems"
        if not rows:
            raise
    header = ["system", "NDCG@10", "MRR@10", "items/s", "items scored", "model_version"]
    _print(header, rows)
    plot_path = plot_path or RESULTS_DIR / f"quality_{rs.name}.png"
    title = f"{rs.name}: {len(evaluation.query_ids)} queries, {candidates} candidates"
    plots.save(plots.quality_figure([dict(zip(header, row)) for row in rows], title), plot_path)
    click.echo(f"wrote {plot_path}")
    if do_record:
        record(f"quality vs throughput ({rs.name})", header, rows,
               note=f"{len(evaluation.query_ids)} queries, {candidates}; weights={settings.weights}; plot {plot_path.name}; "
                    "items/s = scoring only on this machine (MixLM item encoding is nearline); "
                    f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end{interrupted}")


def _row(label: str, result, model_version: str) -> list:
    return [label, round(result.metrics["NDCG@10"], 4), round(result.metrics["MRR@10"], 4),
            round(result.items_per_s, 1), result.n_items, model_version]


def _print(header: list[str], rows: list[list]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="quality vs throughput")
    for h in header:
        table.add_column(h)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    Console(width=160).print(table)
