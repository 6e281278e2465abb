"""`mixlm topics create|list` and `mixlm post FILE|-` (or one item from options)."""

from __future__ import annotations

import sys
from collections import Counter

import click

from mixlm.cli import settings_of

MAX_REASONS = 20  # distinct rejection reasons listed in the summary


@click.group()
def topics():
    """Kafka topics of the pipeline (items topic and DLQ)."""


@topics.command("create")
@click.option("--partitions", "topic_partitions", type=int, help="Items topic partitions (Settings.topic_partitions).")
@click.option("--replication-factor", type=int, default=1, show_default=True)
@click.pass_context
def topics_create(ctx, topic_partitions, replication_factor):
    """Create the items topic and the DLQ if missing."""
    from ingest.admin import create_topics

    settings = _kafka_settings(ctx, topic_partitions=topic_partitions)
    for topic, outcome in create_topics(settings, replication_factor).items():
        click.echo(f"{topic}: {outcome}")


@topics.command("list")
@click.pass_context
def topics_list(ctx):
    """Topics and their partition counts."""
    from ingest.admin import list_topics

    for topic, partitions in sorted(list_topics(_kafka_settings(ctx)).items()):
        click.echo(f"{topic}\t{partitions} partitions")


def _kafka_settings(ctx, **overrides):
    settings = settings_of(ctx, **overrides)
    if not settings.kafka_bootstrap:
        raise click.UsageError("no Kafka configured: set MIXLM_KAFKA_BOOTSTRAP (e.g. 127.0.0.1:9092)")
    return settings


@click.command()
@click.argument("file", required=False, type=click.File("r", encoding="utf-8"))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), help="Input format (default: from the name).")
@click.option("--item-id", help="Post one item instead of a file.")
@click.option("--title", default="", help="With --item-id.")
@click.option("--text", default="", help="With --item-id.")
@click.option("--delete", is_flag=True, help="With --item-id: delete the item.")
@click.pass_context
def post(ctx, file, fmt, item_id, title, text, delete):
    """Post job updates from a JSONL/CSV FILE (or - for stdin), or one item from options.

    Each record is checked before sending; the summary lists what was rejected and why. With Kafka
    configured (MIXLM_KAFKA_BOOTSTRAP) updates go to the items topic; without, the embedded bus encodes
    them in this process.
    """
    from tqdm import tqdm

    from ingest.producer import open_publisher
    from ingest.readers import ReadResult, now_ms, read_updates, to_update
    from mixlm.errors import InvalidJobUpdate

    settings = settings_of(ctx)
    if (file is None) == (item_id is None):
        raise click.UsageError("give a FILE (or -) or --item-id, not both")
    if item_id is not None:
        record = {"item_id": item_id, "title": title, "text": text, "op": "delete" if delete else "upsert"}
        try:
            results = [ReadResult(1, update=to_update(record, settings.max_text_chars, now_ms()))]
        except InvalidJobUpdate as e:
            raise click.UsageError(str(e)) from e
    else:
        results = read_updates(file, settings.max_text_chars, fmt=fmt, name=file.name)
    publisher = open_publisher(settings)
    rejected: Counter = Counter()
    first_lines: dict[str, int] = {}
    try:
        with tqdm(results, desc="post", unit="rec", disable=item_id is not None, file=sys.stderr) as bar:
            for r in bar:
                if r.update is None:
                    rejected[r.reason] += 1
                    first_lines.setdefault(r.reason, r.line)
                    continue
                publisher.publish(r.update)
        publisher.flush()
    finally:
        publisher.close()
    failed = sum(publisher.failures.values())
    click.echo(f"sent {publisher.delivered:,}, rejected {sum(rejected.values()):,}, failed {failed:,}")
    for reason, n in rejected.most_common(MAX_REASONS):
        click.echo(f"  rejected {n:,} (first at line {first_lines[reason]}): {reason}")
    if len(rejected) > MAX_REASONS:
        click.echo(f"  ... and {len(rejected) - MAX_REASONS:,} other reasons")
    for reason, n in publisher.failures.most_common():
        click.echo(f"  failed {n:,}: {reason}")
    for d in getattr(publisher, "dead_letters", []):  # the embedded bus reports what it dead-lettered
        click.echo(f"  dead letter at offset {d.offset}: {d.error}")
    if failed:
        ctx.exit(1)
