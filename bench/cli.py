"""`mixlm bench`: one entry point over the benchmarks. Each prints a table and appends to bench/RESULTS.md."""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command, loaded lazily like the top-level CLI.
BENCHES = {
    "store": "bench.store:store",
    "engine": "bench.engine:engine",
    "pipeline": "bench.pipeline:pipeline",
    "http": "bench.http:http",
    "quality": "bench.quality:quality",
    "encoder": "bench.encoder_probe:encoder",
    "plot": "bench.plots:plot",
}


class _Lazy(click.Group):
    def list_commands(self, ctx):
        return sorted(n for n, target in BENCHES.items() if importlib.util.find_spec(target.split(":")[0]))

    def get_command(self, ctx, name):
        if name not in self.list_commands(ctx):
            return None
        module, attr = BENCHES[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_Lazy)
def bench() -> None:
    """Benchmarks (store, engine, pipeline, http, quality, encoder): results go to bench/RESULTS.md; `plot` redraws the PNGs."""
