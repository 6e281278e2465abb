"""`mixlm worker` (the Faust encoder worker) and `mixlm backfill` (cold start, re-encoding)."""

from __future__ import annotations

from pathlib import Path

import click

from mixlm.cli import settings_of


def _open_core(settings):
    """Model, store and metrics for a worker process (created here, closed by the caller)."""
    from encoder_worker.core import EncoderCore
    from encoder_worker.metrics import WorkerMetrics
    from feature_store.base import open_store
    from mixlm.weights import build_mixlm

    store = open_store(settings)
    store.init()
    return EncoderCore(build_mixlm(settings), store, settings, WorkerMetrics())


@click.command()
@click.option("--batch-size", type=int, help="Most messages per batch (Settings.worker_batch_size).")
@click.option("--batch-timeout", "batch_timeout_s", type=float, help="Seconds to wait to fill a batch.")
@click.option("--group", "consumer_group", help="Kafka consumer group (workers in one group share partitions).")
@click.option("--metrics-port", type=int, help="Serve Prometheus metrics on 127.0.0.1:PORT (0: log them).")
@click.option("--loglevel", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
def worker(ctx, batch_size, batch_timeout_s, consumer_group, metrics_port, loglevel):
    """Consume job updates from Kafka, encode them, write item tokens to the feature store.

    Runs until stopped (SIGTERM/Ctrl-C). Offsets commit only after a batch is written (at-least-once).
    """
    settings = settings_of(ctx, worker_batch_size=batch_size, worker_batch_timeout_s=batch_timeout_s,
                           consumer_group=consumer_group, worker_metrics_port=metrics_port)
    if not settings.kafka_bootstrap:
        raise click.UsageError("the worker consumes Kafka: set MIXLM_KAFKA_BOOTSTRAP. Without Kafka, "
                               "`mixlm post` encodes in-process through the embedded bus.")
    from faust import Worker

    from encoder_worker.app import create_app

    core = _open_core(settings)
    if settings.worker_metrics_port:
        core.metrics.serve(settings.worker_metrics_port)
    app = create_app(settings, core)
    click.echo(f"worker: model_version={core.model_version} topic={settings.items_topic} "
               f"group={settings.consumer_group} store={type(core.store).__name__}", err=True)
    try:
        # Worker handles SIGTERM/SIGINT; web server off (Faust otherwise binds 0.0.0.0:6066).
        Worker(app, loglevel=loglevel.upper(), quiet=True).execute_from_commandline()
    finally:
        core.store.close()


@click.command()
@click.option("--from", "source", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Encode the items of this JSONL/CSV file instead of what the store is missing.")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Items per encode-and-write batch.")
@click.option("--dry-run", is_flag=True, help="Only count what would be encoded.")
@click.option("--via-kafka", is_flag=True, help="Re-publish to the items topic; the workers encode.")
@click.pass_context
def backfill(ctx, source, batch_size, dry_run, via_kafka):
    """Encode items that have text but no item tokens for the current model version (cold start).

    Safe to interrupt: a rerun only sees what is still missing.
    """
    settings = settings_of(ctx)
    if via_kafka and not settings.kafka_bootstrap:
        raise click.UsageError("--via-kafka needs MIXLM_KAFKA_BOOTSTRAP")
    from encoder_worker.backfill import run_backfill

    core = _open_core(settings)
    publisher = None
    try:
        if via_kafka and not dry_run:
            from ingest.producer import JobProducer

            publisher = JobProducer(settings)
        report = run_backfill(core, batch_size, source=source, dry_run=dry_run, publisher=publisher)
    finally:
        if publisher is not None:
            publisher.close()
        core.store.close()
    what = "would encode" if dry_run else ("published" if via_kafka else "encoded")
    count = report.considered - report.skipped if dry_run else (report.published if via_kafka else report.encoded)
    click.echo(f"model_version {core.model_version}: {what} {count:,} items"
               + (f", {report.skipped:,} already stored" if report.skipped else ""))
    for reason, n in report.rejected.most_common():
        click.echo(f"  rejected {n:,}: {reason}")
