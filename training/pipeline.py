"""One training run: data -> stage II teacher -> teacher cache -> stage III -> weight set -> dev metrics.

Work files (checkpoints, the teacher adapter, the teacher cache, the data card) live in a run folder, so
``--resume`` continues a killed run at the last checkpoint of whichever step it was in.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mixlm import loading
from mixlm.model import MixLM
from mixlm.settings import Settings
from training.adapters import load_trainable_state, trainable_state
from training.config import ConfigError, TrainConfig, config_dict
from training.datasets import QRELS, RelevanceSet, load_relevance_set
from training.loop import History
from training.pairs import TrainingData, build_training_data
from training.stage2 import run_stage2
from training.stage3 import run_stage3, stage3_groups
from training.teacher_cache import build_teacher_cache
from training.trainable import build_trainable, init_projector
from training.weights_io import save_weight_set, update_manifest

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    folder: Path
    data: TrainingData
    stage2: History
    stage3: History
    dev: dict[str, dict[str, float]] = field(default_factory=dict)  # system -> metrics
    dev_paired: dict[str, dict[str, float]] = field(default_factory=dict)  # "mixlm - <system>" -> NDCG@10 diff, SE
    seconds: float = 0.0
    model: MixLM | None = None  # the trained modules (adapters not merged), when the caller asks to keep them


def resolve_sets(data_root: Path, names: list[str]) -> list[Path]:
    """``--data`` is either one relevance set folder or a folder of sets named in the config."""
    data_root = Path(data_root)
    if (data_root / QRELS).exists():
        return [data_root]
    return [data_root / name for name in names]


def run(
    cfg: TrainConfig,
    settings: Settings,
    data_root: Path,
    out_dir: Path,
    *,
    run_dir: Path | None = None,
    resume: bool = False,
    evaluate: bool = True,
    keep_model: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = log.info,
) -> RunResult:
    threads = torch.get_num_threads()
    if cfg.model.cpu_threads:
        torch.set_num_threads(cfg.model.cpu_threads)
    try:
        return _run(cfg, settings, data_root, out_dir, run_dir, resume, evaluate, keep_model, progress, echo)
    finally:
        torch.set_num_threads(threads)  # a library call leaves the process as it found it


def _run(cfg: TrainConfig, settings: Settings, data_root: Path, out_dir: Path, run_dir: Path | None, resume: bool,
         evaluate: bool, keep_model: bool, progress: bool, echo: Callable[[str], None]) -> RunResult:
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    run_dir = run_folder(cfg, out_dir, run_dir)
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir.parent / ".gitignore").write_text("*\n")  # work files never get committed with the weights
    check_same_config(run_dir / "config.json", cfg)

    sets, data, dev = prepare(cfg, settings, data_root, run_dir, evaluate)
    echo(data.card.render())
    (run_dir / "data_card.txt").write_text(data.card.render() + "\n")

    mix = build_trainable(settings, cfg)
    teacher_file = run_dir / "teacher.pt"
    if resume and teacher_file.exists():
        load_trainable_state(mix.ranker, torch.load(teacher_file, weights_only=True))
        stage2 = torch.load(run_dir / "stage2.ckpt", weights_only=False)["history"]
        echo("stage II: done earlier, teacher adapter loaded")
    else:
        stage2 = run_stage2(mix, data.groups, cfg, run_dir, settings, resume, progress)
        torch.save(trainable_state(mix.ranker), teacher_file)
    echo(f"stage II: loss {stage2.mean(0, 10):.4f} -> {stage2.mean(-10, None):.4f}, {stage2.items_per_s:.1f} items/s")

    teacher_dev = run_dir / "teacher_dev.json"
    if evaluate and resume and teacher_dev.exists():
        dev["teacher"] = DevResult.load(teacher_dev)
    elif evaluate:
        dev["teacher"] = dev_metrics(sets, data, cfg, settings, "teacher", run_dir, model=mix)
        dev["teacher"].save(teacher_dev)

    cache = build_teacher_cache(mix, stage3_groups(data.groups, cfg), run_dir / "teacher_cache.pt",
                                with_hidden=cfg.stage3.text_path == "cached", chunk_groups=cfg.stage2.batch_queries,
                                progress=progress)
    if not (resume and (run_dir / "stage3.ckpt").exists()):
        init_projector(mix, list(dict.fromkeys(item.text for g in data.groups[:64] for item in g.items)))
    stage3 = run_stage3(mix, data.groups, cfg, cache, run_dir, settings, resume, progress)
    echo(f"stage III: loss {stage3.mean(0, 10):.4f} -> {stage3.mean(-10, None):.4f}, {stage3.items_per_s:.1f} items/s")

    m = cfg.model

    def adapter_of(lora) -> dict:
        return {"kind": "full"} if m.full_finetune else {"kind": "lora", "rank": lora.rank, "alpha": lora.alpha,
                                                         "targets": list(lora.targets)}

    folder = save_weight_set(
        out_dir, encoder=mix.encoder, ranker=mix.ranker, base_model=m.base_model, encoder_model=m.encoder,
        base_fingerprint=loading.encoder_base_fingerprint(settings.home, m.encoder), adapter=adapter_of(m.lora),
        encoder_adapter=adapter_of(m.encoder_lora) if m.encoder_lora else None, save_dtype=m.save_dtype,
        meta={
            "preset": cfg.name,
            "max_item_text_tokens": cfg.data.max_item_tokens,
            "data": data.card.as_dict(),
            "steps": {"stage2": len(stage2.losses), "stage3": len(stage3.losses)},
            "train_loss": {"stage2_first10": stage2.mean(0, 10), "stage2_last10": stage2.mean(-10, None),
                           "stage3_first10": stage3.mean(0, 10), "stage3_last10": stage3.mean(-10, None)},
            "items_per_s": {"stage2": stage2.items_per_s, "stage3": stage3.items_per_s},
            "config": config_dict(cfg),
        },
    )
    echo(f"weight set: {folder}")
    if evaluate:
        dev["mixlm"] = dev_metrics(sets, data, cfg, settings, "mixlm", run_dir, weights=str(folder))
        if cfg.eval.compare_base:
            dev["mixlm_untrained"] = dev_metrics(sets, data, cfg, settings, "mixlm", run_dir, weights="none")
    paired = paired_dev(dev)  # {} without dev results
    metrics = {system: d.metrics for system, d in dev.items()}
    if evaluate:
        update_manifest(folder, dev_metrics=metrics, dev_paired=paired,
                        dev_first_stage=f"{cfg.eval.first_stage}:{cfg.eval.k}")
        for system, values in metrics.items():
            echo(f"dev {system}: " + ", ".join(f"{k}={v:.4f}" for k, v in values.items()))
        for pair, d in paired.items():
            echo(f"dev {pair}: NDCG@10 {d['NDCG@10']:+.4f} ± {d['SE']:.4f} (paired, same queries)")
    mix.encoder.eval(), mix.ranker.eval()
    return RunResult(folder, data, stage2, stage3, metrics, paired, time.perf_counter() - t_start,
                     mix if keep_model else None)


def run_folder(cfg: TrainConfig, out_dir: Path, run_dir: Path | None = None) -> Path:
    """The run's work folder: ``--run-dir``, else <out>/.runs/<preset>."""
    return Path(run_dir or Path(out_dir) / ".runs" / cfg.name)


def prepare(cfg: TrainConfig, settings: Settings, data_root: Path, run_dir: Path, evaluate: bool = True
            ) -> tuple[list[RelevanceSet], TrainingData, dict[str, DevResult]]:
    """The sets, the training data and (with ``evaluate``) the first stages' dev metrics as baselines.

    This is all a run needs the MiniLM bi-encoder for, and its embeddings land in the on-disk cache: run on its
    own (``mixlm train --prepare-only``), it fills the cache that lets a machine without MiniLM train
    (deploy/device/).
    """
    sets = [load_relevance_set(p) for p in resolve_sets(data_root, cfg.data.sets)]
    data = build_training_data(sets, cfg.data, settings)
    dev = {fs: dev_metrics(sets, data, cfg, settings, fs, run_dir) for fs in cfg.data.first_stage} if evaluate else {}
    return sets, data, dev


def check_same_config(path: Path, cfg: TrainConfig) -> None:
    """A resumed run must use the config it started with (thread count aside): checkpoints and caches depend on it."""
    current = config_dict(cfg)
    current["model"].pop("cpu_threads", None)
    if path.exists():
        started = json.loads(path.read_text())
        if started != current:
            changed = sorted(k for k in current if current.get(k) != started.get(k))
            raise ConfigError(f"{path.parent}: the config changed since this run started ({', '.join(changed)}); "
                              "start afresh without --resume or use another --run-dir")
    else:
        path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def dev_subset(rs: RelevanceSet, query_ids: list[str]) -> RelevanceSet:
    """The set restricted to its held-out dev queries (all docs kept), for training/evaluate.py."""
    keep = set(query_ids)
    return RelevanceSet(
        name=rs.name,
        queries={q: v for q, v in rs.queries.items() if q in keep},
        docs=rs.docs,
        qrels={q: v for q, v in rs.qrels.items() if q in keep},
    )


@dataclass
class DevResult:
    """One system's dev metrics, and its NDCG@10 per "<set>/<query id>" for paired differences."""

    metrics: dict[str, float]
    per_query: dict[str, float] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"metrics": self.metrics, "per_query": self.per_query}))

    @classmethod
    def load(cls, path: Path) -> DevResult:
        raw = json.loads(path.read_text())
        # Run folders from before per-query values hold the metrics alone.
        return cls(raw["metrics"], raw.get("per_query", {})) if "metrics" in raw else cls(raw)


def paired_dev(dev: dict[str, DevResult]) -> dict[str, dict[str, float]]:
    """The trained MixLM against every other system on the same dev queries: issue 7's targets are these
    differences (within 0.01 of the teacher, +0.05 over the bi-encoder)."""
    from training.metrics import paired_difference

    if "mixlm" not in dev or not dev["mixlm"].per_query:
        return {}
    out = {}
    for system, d in dev.items():
        if system != "mixlm" and d.per_query:
            diff, se = paired_difference(dev["mixlm"].per_query, d.per_query)
            out[f"mixlm - {system}"] = {"NDCG@10": diff, "SE": se}
    return out


def dev_metrics(sets: list[RelevanceSet], data: TrainingData, cfg: TrainConfig, settings: Settings, system: str,
                run_dir: Path, model=None, weights: str | None = None) -> DevResult:
    """Mean dev metrics over the sets for one system: "teacher" (text prompt), "mixlm" (item tokens), "bm25" or
    "biencoder"."""
    from training.evaluate import SE_COLUMN, Evaluation
    from training.metrics import mean_and_se

    eval_settings = settings.model_copy(update={
        "base_model": cfg.model.base_model, "n_item_tokens": cfg.model.n_item_tokens, "encoder_model": "auto",
        "max_item_text_tokens": cfg.data.max_item_tokens, **({"weights": weights} if weights else {}),
    })
    totals: dict[str, float] = {}
    per_query: dict[str, float] = {}
    n = 0
    for rs in sets:
        subset = dev_subset(rs, data.dev[rs.name])
        if not subset.qrels:
            continue
        evaluation = Evaluation(subset, eval_settings, candidates=f"{cfg.eval.first_stage}:{cfg.eval.k}",
                                cache_dir=run_dir / "eval_cache")
        if model is not None:
            evaluation.use_model(model)
        was_training = model.ranker.training if model is not None else False
        if model is not None:
            model.encoder.eval(), model.ranker.eval()
        result = evaluation.run_system(system)
        if model is not None and was_training:
            model.encoder.train(), model.ranker.train()
        for k, v in result.metrics.items():
            totals[k] = totals.get(k, 0.0) + v * len(subset.qrels)
        n += len(subset.qrels)
        per_query.update({f"{rs.name}/{q}": v for q, v in result.per_query.items()})
    metrics = {k: v / max(n, 1) for k, v in totals.items()}
    return DevResult({**metrics, SE_COLUMN: mean_and_se(list(per_query.values()))[1]}, per_query)


def summary_table(result: RunResult) -> tuple[list[str], list[list]]:
    """One row per stage (steps, throughput, loss) and per dev system (metrics), for bench/RESULTS.md."""
    from training.evaluate import SE_COLUMN

    metrics = ("NDCG@10", SE_COLUMN, "MRR@10", "Recall@50")
    header = ["what", "steps", "items/s", "loss first 10", "loss last 10", *metrics]
    rows: list[list] = []
    for name, h in (("stage II (teacher)", result.stage2), ("stage III (joint)", result.stage3)):
        rows.append([name, len(h.losses), round(h.items_per_s, 2), round(h.mean(0, 10), 4), round(h.mean(-10, None), 4),
                     *[""] * len(metrics)])
    for system, m in result.dev.items():
        rows.append([f"dev: {system}", "", "", "", "", *(round(m[k], 4) if k in m else "" for k in metrics)])
    for pair, d in result.dev_paired.items():  # a difference and its paired error, in the NDCG@10 columns
        rows.append([f"dev: {pair}", "", "", "", "", round(d["NDCG@10"], 4), round(d["SE"], 4), "", ""])
    return header, rows
