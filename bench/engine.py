"""`mixlm bench engine`: the paper's Table 11 workload on the native engine's three strategies (§6.3.5).

Per request: a 60-token shared prefix and 50 candidate items, each as raw text (766 tokens), summarized text
(145) or MixLM (1 item embedding + 1 token = 2). Strategies: naive (one sequence per item), in-batch prefix
caching (prefix KV once per request) and multi-item scoring (one sequence per request, block mask). Items are
random token embeddings of the right shapes: speed does not depend on the values. Two rankers: SmolLM2-135M
(the real weights) and a Qwen3-0.6B-shaped Llama with random weights.

Requests run one at a time (closed loop, one request per forward pass), so latency is one request's.
On a CPU the text workloads are cut down (fewer items per request, fewer requests; naive cost is linear in
items, so items/s stays comparable); the table says what ran. The headline is MixLM multi-item items/s over
raw-text naive items/s on the same machine (paper, H100: 20,000 / 270 = 74x). After a run, the device's
Table 11 plot (items/s against p99 latency, bench/plots.py) is redrawn as bench/table11_<device>.png.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import click
import torch
from rich.progress import Progress

from bench.plots import ENGINE_SECTION
from bench.results import record, record_option
from mixlm.cli import settings_of
from mixlm.model import Ranker
from ranker_service.engines.native import STRATEGIES, run_strategy

PREFIX_TOKENS = 60
ITEM_TOKENS = {"raw": 766, "summarized": 145, "mixlm": 2}  # Table 11: tokens per item
MODELS = ("smollm2-135m", "qwen3-0.6b-shape")
# Qwen3-0.6B's shape (hidden 1024, 28 layers, 16 heads / 8 KV heads of 128, MLP 3072, vocab 151,936).
QWEN3_06B_SHAPE = dict(vocab_size=151_936, hidden_size=1024, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, intermediate_size=3072, max_position_embeddings=40_960,
                       rope_theta=1_000_000.0, tie_word_embeddings=True)


@dataclass
class Cell:
    model: str
    items_as: str
    strategy: str
    items_per_request: int
    requests: int


def build_ranker(name: str, settings, dtype: torch.dtype, device: str) -> Ranker:
    from mixlm import loading

    if name == "smollm2-135m":
        lm = loading.load_causal_lm(settings.home, "smollm2-135m", dtype)
    else:
        from transformers import AutoModelForCausalLM, LlamaConfig

        torch.manual_seed(0)
        lm = AutoModelForCausalLM.from_config(LlamaConfig(**QWEN3_06B_SHAPE), dtype=dtype)
    return Ranker(lm.to(device).eval(), yes_id=1, no_id=2)


def make_request(ranker: Ranker, n_items: int, item_tokens: int, gen: torch.Generator):
    """(prefix [60, D], items [[item_tokens, D]] * n_items) from random token ids' embeddings."""
    vocab = ranker.lm.config.vocab_size
    device = ranker.lm.get_input_embeddings().weight.device
    ids = torch.randint(0, vocab, (PREFIX_TOKENS + n_items * item_tokens,), generator=gen).to(device)
    with torch.inference_mode():
        embeds = ranker.embed(ids)
    prefix, rest = embeds[:PREFIX_TOKENS], embeds[PREFIX_TOKENS:]
    return prefix, list(rest.view(n_items, item_tokens, -1).unbind(0))


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run_cell(ranker: Ranker, cell: Cell, warmup: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    # Warm-up requests are small (2 items of 2 tokens): they only page the weights in and prime the kernels,
    # and a raw-text one would cost as much as a timed request.
    requests = [make_request(ranker, 2, 2, gen) for _ in range(warmup)]
    requests += [make_request(ranker, cell.items_per_request, ITEM_TOKENS[cell.items_as], gen)
                 for _ in range(cell.requests)]
    sync = torch.cuda.synchronize if requests[0][0].is_cuda else (lambda: None)
    latencies = []
    for i, request in enumerate(requests):
        sync()
        t0 = time.perf_counter()
        run_strategy(ranker, [request], cell.strategy)  # type: ignore[arg-type]
        sync()
        if i >= warmup:
            latencies.append(time.perf_counter() - t0)
    total_items = cell.items_per_request * cell.requests
    return {"items_s": total_items / sum(latencies), "p50_ms": 1000 * percentile(latencies, 50),
            "p99_ms": 1000 * percentile(latencies, 99)}


def plan(models, items_as, strategies, items: int, requests: int, text_items: int, text_requests: int,
         raw_items: int, raw_requests: int) -> list[Cell]:
    sizes = {"mixlm": (items, requests), "summarized": (text_items, text_requests), "raw": (raw_items, raw_requests)}
    return [Cell(m, a, s, *sizes[a]) for m in models for a in items_as for s in strategies]


def _csv(choices):
    def parse(ctx, param, value):
        parts = [v.strip() for v in value.split(",") if v.strip()]
        bad = [p for p in parts if p not in choices]
        if bad:
            raise click.BadParameter(f"{bad} not in {list(choices)}")
        return parts
    return parse


@click.command()
@click.option("--models", default=",".join(MODELS), show_default=True, callback=_csv(MODELS),
              help="Rankers to measure (comma-separated).")
@click.option("--items-as", "items_as", default="raw,summarized,mixlm", show_default=True,
              callback=_csv(tuple(ITEM_TOKENS)), help="Item representations (Table 11 rows).")
@click.option("--strategies", default=",".join(STRATEGIES), show_default=True, callback=_csv(STRATEGIES))
@click.option("--items", type=int, default=50, show_default=True, help="Items per request, MixLM items.")
@click.option("--requests", type=int, default=3, show_default=True, help="Timed requests per cell, MixLM items.")
@click.option("--text-items", type=int, default=None, help="Items per request, summarized text (default: 4 on CPU, 50 on GPU).")
@click.option("--text-requests", type=int, default=None, help="Timed requests, summarized (default: 1 on CPU).")
@click.option("--raw-items", type=int, default=None, help="Items per request, raw text (default: 1 on CPU, 50 on GPU).")
@click.option("--raw-requests", type=int, default=None, help="Timed requests, raw text (default: 1 on CPU).")
@click.option("--warmup", type=int, default=1, show_default=True, help="Untimed requests first, per cell.")
@click.option("--dtype", type=click.Choice(["auto", "bf16", "fp16", "fp32"]), default=None, help="MIXLM_DTYPE.")
@click.option("--device", default=None, help="MIXLM_DEVICE (auto: cuda when available).")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
@record_option
@click.pass_context
def engine(ctx, models, items_as, strategies, items, requests, text_items, text_requests, raw_items, raw_requests,
           warmup, dtype, device, threads, do_record) -> None:
    """Table 11: items/s and p50/p99 latency per (model, item representation, strategy)."""
    settings = settings_of(ctx, dtype=dtype, device=device)
    device, torch_dtype = settings.resolved_device(), settings.torch_dtype()
    if threads:
        torch.set_num_threads(threads)
    gpu = device.startswith("cuda")
    cells = plan(models, items_as, strategies, items, requests,
                 text_items or (50 if gpu else 4), text_requests or (requests if gpu else 1),
                 raw_items or (50 if gpu else 1), raw_requests or (requests if gpu else 1))
    rows, results = [], {}
    with Progress() as progress:
        task = progress.add_task("engine bench", total=len(cells))
        for model_name in models:
            ranker = build_ranker(model_name, settings, torch_dtype, device)
            for cell in (c for c in cells if c.model == model_name):
                progress.update(task, description=f"{cell.model} {cell.items_as} {cell.strategy}")
                r = run_cell(ranker, cell, warmup)
                results[(cell.model, cell.items_as, cell.strategy)] = r
                rows.append([cell.model, cell.items_as, ITEM_TOKENS[cell.items_as], cell.strategy,
                             cell.items_per_request, cell.requests, round(r["items_s"], 2), round(r["p50_ms"], 1),
                             round(r["p99_ms"], 1)])
                progress.advance(task)
            del ranker
    header = ["model", "items as", "tokens/item", "strategy", "items/request", "requests", "items/s", "p50 ms", "p99 ms"]
    ratios = []
    for m in models:
        fast, slow = results.get((m, "mixlm", "multi_item")), results.get((m, "raw", "naive"))
        if fast and slow:
            ratios.append(f"{m}: MixLM multi-item / raw-text naive = {fast['items_s'] / slow['items_s']:,.0f}x")
    click.echo(" | ".join(header))
    for row in rows:
        click.echo(" | ".join(str(v) for v in row))
    for line in ratios:
        click.echo(line)
    if do_record:
        note = (f"{device}, {str(torch_dtype).removeprefix('torch.')}, {torch.get_num_threads()} threads; prefix "
                f"{PREFIX_TOKENS} tokens; one request per forward pass. " + "; ".join(ratios))
        record(ENGINE_SECTION, header, rows, note)
    _plot(header, rows, gpu, recorded=do_record)


def _plot(header: list[str], rows: list[list], gpu: bool, recorded: bool) -> None:
    """Redraw this device's Table 11 PNG from the recorded rows (this run's among them, as the newest)."""
    from bench import plots
    from bench.results import machine

    device = plots.device_of({"machine": machine()}) if gpu else "cpu"
    this_run = [] if recorded else [{"section": ENGINE_SECTION, "device": device, "machine": machine(),
                                     **dict(zip(header, row))} for row in rows]
    for path in plots.write_table11(plots.load_rows() + this_run, device=device):
        click.echo(f"wrote {path}")
