"""`mixlm eval`: rerank a first-stage candidate list with each system and report Table 3's metrics."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import msgspec

from mixlm.cli import settings_of
from training.evaluate import SYSTEMS, Evaluation, parse_candidates, parse_system, report_table
from training.metrics import MEASURES


def _systems(ctx, param, value: str) -> list[str]:
    specs = [s.strip() for s in value.split(",") if s.strip()]
    try:
        for s in specs:
            parse_system(s)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    return specs


def _candidates(ctx, param, value: str) -> str:
    try:
        parse_candidates(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    return value


@click.command("eval")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A relevance set folder (queries.jsonl, docs.jsonl, qrels.tsv).")
@click.option("--systems", default=",".join(SYSTEMS), show_default=True, callback=_systems,
              help="Comma-separated: bm25, biencoder, teacher (teacher@N: items cut to N tokens), mixlm.")
@click.option("--candidates", default="bm25:50", show_default=True, callback=_candidates,
              help="First stage and depth, built once and reranked by every system: bm25:K or biencoder:K.")
@click.option("--queries", "n_queries", type=click.IntRange(min=1), default=None,
              help="Evaluate a deterministic sample of N judged queries (default: all).")
@click.option("--seed", default=0, show_default=True, help="Seed of the query sample.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the report as JSON.")
@click.option("--weights", default=None, help="Trained weight set: 'auto', 'none' or a folder (MIXLM_WEIGHTS).")
@click.option("--n-item-tokens", type=click.IntRange(1, 64), default=None, help="T_S (MIXLM_N_ITEM_TOKENS).")
@click.option("--record", is_flag=True, help="Append the table to bench/RESULTS.md.")
@click.pass_context
def eval_command(ctx, data_dir: Path, systems: list[str], candidates: str, n_queries: int | None, seed: int,
                 out: Path | None, weights: str | None, n_item_tokens: int | None, record: bool) -> None:
    """Evaluate ranking systems on a relevance set: NDCG@10, MRR@10, Recall@50 (graded gains)."""
    from training.datasets import load_relevance_set

    settings = settings_of(ctx, weights=weights, n_item_tokens=n_item_tokens)
    rs = load_relevance_set(data_dir)
    evaluation = Evaluation(rs, settings, candidates=candidates, n_queries=n_queries, seed=seed)
    report = evaluation.run(systems)
    header, rows = report_table(report)
    _print_table(header, rows, report.model_version)
    if report.interrupted:
        click.echo(f"interrupted: not scored: {', '.join(report.interrupted)}", err=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(msgspec.json.format(msgspec.json.encode(report)))
        click.echo(f"wrote {out}")
    if record:
        from bench.results import record as record_rows

        note = f"model_version {report.model_version}; weights={settings.weights}; T_S={settings.n_item_tokens}"
        # The CPU may be shared: the load average says how much of it this run had.
        note += f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end"
        if report.interrupted:
            note += f"; interrupted before {', '.join(report.interrupted)}"
        record_rows(f"eval {rs.name}", header, rows, note=note)
        click.echo("appended to bench/RESULTS.md")


def _print_table(header: list[str], rows: list[list], model_version: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ranking quality (model_version {model_version})" if model_version else "ranking quality")
    for h in header:
        table.add_column(h, justify="left" if h in ("data set", "first stage", "system") else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(_cell(h, v) for h, v in zip(header, row)))
    # Piped output has no terminal width: do not squeeze the columns into 80 characters.
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _cell(column: str, value) -> str:
    if column in MEASURES:
        return f"{value:.4f}"
    if column == "items/s":
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)
