"""The `mixlm` command. Subcommands live beside the code they drive and are loaded lazily, so
`mixlm --help` stays fast and a package's CLI never imports torch unless it runs."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from mixlm.settings import Settings

# name -> "module:attribute" of a click command; each package owns its own CLI module.
COMMANDS = {
    "score": "mixlm.score_cli:score",
    "services": "mixlm.services:services",
    "store": "feature_store.cli:store",
    "topics": "ingest.cli:topics",
    "post": "ingest.cli:post",
    "worker": "encoder_worker.cli:worker",
    "backfill": "encoder_worker.cli:backfill",
    "serve": "ranker_service.cli:serve",
    "train": "training.cli:train",
    "eval": "training.eval_cli:eval_command",
    "compare": "training.eval_cli:compare_command",
    "bench": "bench.cli:bench",
    "demo": "mixlm.demo:demo",
}


def _available(name: str) -> bool:
    module = COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(module.split(".")[0]) is not None and _module_exists(module)


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if _available(n))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _available(name):
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """MixLM: nearline item embeddings in Kafka -> Cassandra, and LLM ranking over them.

    Configuration comes from MIXLM_* environment variables (see the README's table).
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = Settings()


def settings_of(ctx: click.Context, **overrides) -> Settings:
    """The context's Settings with the command line's non-None options applied."""
    base: Settings = ctx.find_root().obj or Settings()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return base.model_copy(update=changes) if changes else base


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
