"""`mixlm store init|inspect|stats`: create the schema, and look at what the worker wrote and the ranker reads."""

from __future__ import annotations

import datetime as dt
import json
import sys
from contextlib import contextmanager
from typing import Iterator

import click

from feature_store.base import FeatureStore, open_store
from mixlm.cli import settings_of
from mixlm.errors import MixLMError
from mixlm.settings import Settings


def _describe(settings: Settings) -> str:
    if settings.cassandra_hosts:
        return f"Cassandra {','.join(settings.cassandra_hosts)}:{settings.cassandra_port} keyspace {settings.cassandra_keyspace}"
    return f"SQLite {settings.resolved_sqlite_path()}"


def current_model_version(settings: Settings) -> str:
    """The model_version the ranker would serve with these settings, without loading the model: the weight
    set's manifest names it; the untrained base's is computed from the base fingerprint."""
    from mixlm import loading
    from mixlm.version import model_version
    from mixlm.weights import MANIFEST, find_weights

    folder = find_weights(settings)
    if folder is not None:
        manifest = json.loads((folder / MANIFEST).read_text())
        if "model_version" not in manifest:
            raise click.UsageError(f"{folder / MANIFEST} names no model_version: pass --model-version")
        return manifest["model_version"]
    try:
        return model_version(loading.base_fingerprint(settings.home, settings.base_model), "base", settings.n_item_tokens)
    except OSError as exc:
        raise click.UsageError(f"cannot tell the base model's version ({exc}): pass --model-version") from exc


def _ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")


@contextmanager
def _opened(ctx: click.Context) -> Iterator[tuple[Settings, FeatureStore]]:
    """The configured store, closed afterwards; a store error ends the command with exit code 1."""
    settings = settings_of(ctx)
    backend = open_store(settings)
    try:
        yield settings, backend
    except MixLMError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        backend.close()


@click.group()
def store() -> None:
    """The feature store (Cassandra when MIXLM_CASSANDRA_HOSTS is set, else SQLite)."""


@store.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the keyspace and tables if missing (safe to run again)."""
    with _opened(ctx) as (settings, backend):
        backend.init()
    click.echo(f"ready: {_describe(settings)} (tables items, item_embeddings)")


@store.command()
@click.argument("item_id")
@click.option("--model-version", help="Default: the version the current settings' model would serve.")
@click.option("--values", "n_values", type=int, default=8, show_default=True, help="Leading values of each token to show.")
@click.pass_context
def inspect(ctx: click.Context, item_id: str, model_version: str | None, n_values: int) -> None:
    """Show an item's row in `items` and its `item_embeddings` row for one model version."""
    from mixlm.codec import bytes_to_tokens

    with _opened(ctx) as (settings, backend):
        version = model_version or current_model_version(settings)
        text = backend.get_items([item_id]).get(item_id)
        emb = backend.get_embeddings(version, [item_id]).get(item_id)
    click.echo(f"store: {_describe(settings)}")
    click.echo(f"items[{item_id}]:")
    if text is None:
        click.echo("  (absent)")
    else:
        click.echo(f"  title: {text.title}\n  text: {text.text[:200]}{'...' if len(text.text) > 200 else ''}")
        click.echo(f"  fields: {text.fields}\n  content_hash: {text.content_hash.hex()}\n  updated_at: {_ms(text.updated_at)}")
    click.echo(f"item_embeddings[{version}, {item_id}]:")
    if emb is None:
        click.echo("  (absent: the ranker would count this item as missing)")
        return
    tokens = bytes_to_tokens(emb.tokens, emb.n_tokens, emb.dim, emb.dtype).float()
    click.echo(f"  shape: [{emb.n_tokens}, {emb.dim}]  dtype: {emb.dtype}  bytes: {len(emb.tokens)}")
    stale = "" if text is None or text.content_hash == emb.content_hash else "  (differs from items: stale, to re-encode)"
    click.echo(f"  content_hash: {emb.content_hash.hex()}{stale}")
    click.echo(f"  source_updated_at: {_ms(emb.source_updated_at)}\n  encoded_at: {_ms(emb.encoded_at)}")
    for i, row in enumerate(tokens):
        head = ", ".join(f"{v:+.4f}" for v in row[:n_values].tolist())
        click.echo(f"  token {i}: [{head}, ...]  norm {row.norm().item():.3f}")


@store.command()
@click.pass_context
def stats(ctx: click.Context) -> None:
    """Row counts per table (a full scan on Cassandra: for development-sized stores)."""
    with _opened(ctx) as (settings, backend):
        counts = backend.count()
    click.echo(f"store: {_describe(settings)}")
    for table, n in counts.items():
        click.echo(f"  {table}: {n:,}")
