"""`mixlm eval`: rerank a first-stage candidate list with each system and report Table 3's metrics, per set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import msgspec

from mixlm.cli import settings_of
from training.evaluate import (SE_COLUMN, EvalReport, EvalRun, compare_runs, evaluate_sets, find_sets,
                               paired_lines, parse_candidates, parse_system, report_table)
from training.metrics import MEASURES

# The teacher is opt-in: it reads every candidate's full text (7x MixLM's scoring time per item in the
# onet_titles eval in bench/RESULTS.md, and it grows with the text's length).
DEFAULT_SYSTEMS = "bm25,biencoder,mixlm"
# A sample, not every query: jobbert_titles alone has 14,170, and reranking all of them is hours on a CPU.
DEFAULT_QUERIES = 200


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
              help="A relevance set folder (queries.jsonl, docs.jsonl, qrels.tsv), or a folder of them: every set "
                   "folder is evaluated in turn and the others are listed as skipped.")
@click.option("--systems", default=DEFAULT_SYSTEMS, show_default=True, callback=_systems,
              help="Comma-separated: bm25, biencoder, mixlm, teacher (teacher@N: items cut to N tokens). The teacher "
                   "reads every candidate's full text (seconds a query on a CPU), so it is opt-in.")
@click.option("--candidates", default="bm25:50", show_default=True, callback=_candidates,
              help="First stage and depth, built once per set and reranked by every system: bm25:K or biencoder:K.")
@click.option("--queries", "n_queries", type=click.IntRange(min=0), default=DEFAULT_QUERIES, show_default=True,
              help="Evaluate a deterministic sample of N judged queries per set (0: all of them).")
@click.option("--seed", default=0, show_default=True, help="Seed of the query sample.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write every set's report as JSON (rewritten after each set).")
@click.option("--weights", default=None, help="Trained weight set: 'auto', 'none' or a folder (MIXLM_WEIGHTS).")
@click.option("--n-item-tokens", type=click.IntRange(1, 64), default=None, help="T_S (MIXLM_N_ITEM_TOKENS).")
@click.option("--held-out-of", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              metavar="WEIGHT_SET", help="Leave out the queries this weight set was trained on instead of the "
              "evaluated one's: two sets evaluated with the same one share their sample (for `mixlm compare`).")
@click.option("--record", is_flag=True, help="Append each set's table to bench/RESULTS.md as it finishes.")
@click.pass_context
def eval_command(ctx, data_dir: Path, systems: list[str], candidates: str, n_queries: int, seed: int,
                 out: Path | None, weights: str | None, n_item_tokens: int | None, held_out_of: Path | None,
                 record: bool) -> None:
    """Evaluate ranking systems on relevance sets: NDCG@10, MRR@10, Recall@50 (graded gains).

    Queries a weight set was trained on are left out of the samples (of every system, so they stay comparable):
    those of the weight set evaluated, or with --weights none of the newest one.

    Item tokens (MixLM) and bi-encoder doc embeddings are cached under MIXLM_HOME/cache by content hash and
    model version, so a second run over the same sets only scores.
    """
    from mixlm.errors import DataFormatError, WeightSetError

    settings = settings_of(ctx, weights=weights, n_item_tokens=n_item_tokens)
    try:
        folders, skipped = find_sets(data_dir)
    except DataFormatError as e:
        raise click.BadParameter(str(e), param_hint="--data") from e
    for s in skipped:
        click.echo(f"skipped {s.folder}: {s.reason}", err=True)
    run = EvalRun(str(data_dir), [], skipped, [f.resolve().name for f in folders])
    try:
        manifest = _training_manifest(settings, held_out_of)
    except (FileNotFoundError, WeightSetError) as e:
        raise click.BadParameter(str(e), param_hint="--held-out-of" if held_out_of else "--weights") from e
    try:
        for report in evaluate_sets(folders, settings, systems, candidates, n_queries or None, seed,
                                    held_out_of=manifest):
            run.reports.append(report)
            run.not_run.remove(report.data_set)
            _finished_set(report, settings, out, run, record)
    except KeyboardInterrupt:
        click.echo("interrupted while preparing a set", err=True)
    except DataFormatError as e:
        raise click.ClickException(str(e)) from e
    finally:
        rows = [row for report in run.reports for row in report_table(report)[1]]
        if rows:
            _print_table(report_table(run.reports[0])[0], rows, run.reports[0].model_version)
            for report in run.reports:
                for line in paired_lines(report):
                    click.echo(line)
        if run.not_run:
            click.echo(f"not evaluated (interrupted): {', '.join(run.not_run)}", err=True)
        if skipped:
            names = ", ".join(s.folder for s in skipped)
            click.echo(f"skipped {len(skipped)} folder(s) without a whole set: {names}", err=True)


def _training_manifest(settings, held_out_of: Path | None = None) -> dict | None:
    """The manifest of the weight set whose training queries are left out of the samples: ``held_out_of``, else
    the one evaluated, or with --weights none the newest one, so that the untrained base is scored on the trained
    model's queries."""
    from mixlm.weights import find_weights
    from training.weights_io import read_manifest

    if held_out_of is not None:
        return read_manifest(held_out_of)
    if settings.weights == "none":
        settings = settings.model_copy(update={"weights": "auto"})
    folder = find_weights(settings)
    return read_manifest(folder) if folder is not None else None


def _finished_set(report: EvalReport, settings, out: Path | None, run: EvalRun, record: bool) -> None:
    """Write what is done so far as soon as a set finishes: a long run that is stopped keeps its sets."""
    left_out = f", {report.trained_on} training queries left out" if report.trained_on else ""
    click.echo(f"done: {report.data_set} ({report.n_queries} queries, {report.first_stage}{left_out})", err=True)
    if report.interrupted:
        click.echo(f"interrupted: {report.data_set}: not scored: {', '.join(report.interrupted)}", err=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(msgspec.json.format(msgspec.json.encode(run)))
        click.echo(f"wrote {out}", err=True)
    if record:
        from bench.results import record as record_rows

        header, rows = report_table(report)
        t_s = sorted({r.n_item_tokens for r in report.results if r.n_item_tokens})
        note = f"model_version {report.model_version}; weights={settings.weights}; T_S={'/'.join(map(str, t_s)) or '-'}"
        note += f"; sample drawn without the {report.trained_on} queries the weight set was trained on"
        # The CPU may be shared: the load average says how much of it this run had.
        note += f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end"
        if report.interrupted:
            note += f"; interrupted before {', '.join(report.interrupted)}"
        if len(report.results) > 1:
            note += "; paired differences (± standard error): " + "; ".join(paired_lines(report, with_set=False))
        record_rows(f"eval {report.data_set}", header, rows, note=note)
        click.echo("appended to bench/RESULTS.md", err=True)


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
    if column in MEASURES or column == SE_COLUMN:
        return f"{value:.4f}"
    if column == "items/s":
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


@click.command("compare")
@click.argument("first", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("second", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def compare_command(first: Path, second: Path) -> None:
    """Paired NDCG@10 differences between two `mixlm eval --out` files (say, two weight sets): each system of FIRST
    minus the same system of SECOND, on the queries both sampled, ± the standard error of the difference."""
    runs = []
    for path in (first, second):
        try:
            runs.append(msgspec.json.decode(path.read_bytes(), type=EvalRun))
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise click.BadParameter(f"{path}: not a `mixlm eval --out` file ({e})") from e
    lines = compare_runs(*runs)
    if not lines:
        raise click.ClickException(f"nothing to compare: {first} and {second} share no data set and system with "
                                   "per-query values (files written before per-query NDCG@10 have none)")
    for line in lines:
        click.echo(line)
