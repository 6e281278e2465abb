"""`mixlm serve`: the ranker over HTTP (uvicorn)."""

from __future__ import annotations

import click

from mixlm.cli import settings_of


@click.command()
@click.option("--host", default=None, help="Bind address (MIXLM_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (MIXLM_PORT, default 8000).")
@click.option("--engine", type=click.Choice(["native", "text", "sglang"]), default=None, help="MIXLM_ENGINE.")
@click.option("--base-model", type=click.Choice(["smollm2-135m", "tiny"]), default=None, help="MIXLM_BASE_MODEL.")
@click.option("--weights", default=None, help="Weight set folder, 'auto' or 'none' (MIXLM_WEIGHTS).")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
def serve(ctx: click.Context, host, port, engine, base_model, weights, log_level: str) -> None:
    """Serve POST /rank, POST /v1/rerank, /healthz, /readyz and /metrics."""
    import uvicorn

    from ranker_service.app import create_app

    settings = settings_of(ctx, host=host, port=port, engine=engine, base_model=base_model, weights=weights)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level,
                timeout_graceful_shutdown=10)
