"""HTTP routers, one per concern: rank, rerank, health (and metrics)."""
