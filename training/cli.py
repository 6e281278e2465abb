"""`mixlm train`: build the training data, run stage II and stage III, write weights/<model_version>/."""

from __future__ import annotations

from pathlib import Path

import click

from mixlm.cli import settings_of


@click.command("train")
@click.option("--preset", default="cpu", show_default=True,
              help="tiny (random tiny model, seconds), cpu (SmolLM2, <= 1 h on 2 cores), gpu (the full recipe), "
                   "or a path to a TOML config (see training/presets/).")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A relevance set folder, or a folder of sets named in the preset (e.g. ../shared/data).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the weight set folder is written (default: MIXLM_WEIGHTS_DIR, i.e. weights/).")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Checkpoints and caches (default: <out>/.runs/<preset>).")
@click.option("--resume", is_flag=True, help="Continue a killed run from its last checkpoint.")
@click.option("--no-eval", is_flag=True, help="Skip the dev metrics (teacher, trained and untrained MixLM).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Override the steps of both stages (a quick smoke run of a preset).")
@click.option("--time-budget", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="Fit the run into this wall time: each stage times its first steps, then cuts its step count "
                   "(and its schedule) to what fits; stage II gets the preset's teacher_share of it.")
@click.option("--threads", type=click.IntRange(min=0), default=None,
              help="torch CPU threads (0 = all cores); overrides the preset's cpu_threads.")
@click.option("--init-from", type=click.Path(exists=True, file_okay=False), default=None, metavar="WEIGHT_SET",
              help="Start stage III from this weight set (e.g. weights/<version>) to continue it; sets the preset's "
                   "stage3.init_from.")
@click.option("--record", is_flag=True, help="Append the run's throughput and dev metrics to bench/RESULTS.md.")
@click.option("--prepare-only", is_flag=True,
              help="Only build the data and the first stages' dev baselines, filling the bi-encoder cache under "
                   "MIXLM_HOME (what a machine without MiniLM needs: deploy/device/).")
@click.pass_context
def train(ctx, preset: str, data_dir: Path, out_dir: Path | None, run_dir: Path | None, resume: bool, no_eval: bool,
          steps: int | None, time_budget: float | None, threads: int | None, init_from: str | None, record: bool,
          prepare_only: bool) -> None:
    """Train the encoder and ranker (paper stages II and III) and write a weight set the service loads."""
    from training.config import ConfigError, load_config
    from training.loop import Interrupted
    from training.pipeline import prepare, run, run_folder, summary_table

    try:
        cfg = load_config(preset)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="--preset") from e
    if steps is not None:
        cfg.stage2.steps = cfg.stage3.steps = steps
        cfg.stage2.warmup_steps = min(cfg.stage2.warmup_steps, steps // 2)
        cfg.stage3.warmup_steps = min(cfg.stage3.warmup_steps, steps // 2)
    if threads is not None:
        cfg.model.cpu_threads = threads
    if init_from is not None:
        cfg.stage3.init_from = init_from
    settings = settings_of(ctx)
    if prepare_only:
        folder = run_folder(cfg, out_dir or settings.weights_dir, run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        _, data, dev = prepare(cfg, settings, data_dir, folder, evaluate=not no_eval)
        click.echo(data.card.render())
        for system, d in dev.items():
            click.echo(f"dev {system}: " + ", ".join(f"{k}={v:.4f}" for k, v in d.metrics.items()))
        click.echo(f"prepared; bi-encoder cache: {settings.home / 'cache' / 'biencoder'}")
        return
    try:
        result = run(cfg, settings, data_dir, out_dir or settings.weights_dir, run_dir=run_dir, resume=resume,
                     evaluate=not no_eval, echo=click.echo, time_budget=time_budget)
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    except (Interrupted, KeyboardInterrupt) as e:
        # The loop saved a checkpoint before raising: say how to go on instead of printing a traceback.
        click.echo(f"{e or 'interrupted'}; the same command with --resume continues from the last checkpoint", err=True)
        ctx.exit(143 if isinstance(e, Interrupted) else 130)  # 128 + SIGTERM / SIGINT
    click.echo(f"done in {result.seconds:.0f}s: {result.folder}")
    if record:
        from bench.results import record as record_table

        header, rows = summary_table(result)
        note = (f"preset {cfg.name}, weight set {result.folder.name}, {result.data.card.pairs} training pairs, "
                f"dev = {result.data.card.dev_queries} held-out queries reranking {cfg.eval.first_stage} top "
                f"{cfg.eval.k}; wall time {result.seconds:.0f}s (this run only; a resumed run counts its last part)"
                + (f"; --time-budget {time_budget:.0f}s" if time_budget else ""))
        record_table(f"training ({cfg.name})", header, rows, note)
