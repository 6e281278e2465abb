"""One training run: data -> stage II teacher -> teacher cache -> stage III -> weight set -> dev metrics.

Work files (checkpoints, the teacher adapter, the teacher cache, the data card) live in a run folder, so
``--resume`` continues a killed run at the last checkpoint of whichever step it was in.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import torch

from mixlm import loading
from mixlm.model import MixLM
from mixlm.settings import Settings
from training.adapters import load_trainable_state, trainable_state
from training.config import ConfigError, TrainConfig, config_dict
from training.datasets import QRELS, RelevanceSet, load_relevance_set
from training.loop import History, fit_steps
from training.pairs import TrainingData, build_training_data
from training.stage2 import run_stage2
from training.stage3 import run_stage3, stage3_groups
from training.teacher_cache import build_teacher_cache
from training.trainable import build_trainable, init_projector, resolve_device
from training.weights_io import continuable, save_weight_set, update_manifest, warm_start

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
    time_budget: float | None = None,
) -> RunResult:
    """``time_budget`` (seconds): both stages cut their step counts to what fits (training/loop.py), stage II
    taking ``cfg.teacher_share`` of the time; the dev metrics are left their measured time."""
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    if cfg.model.cpu_threads:
        torch.set_num_threads(cfg.model.cpu_threads)
    if resolve_device(cfg, settings).startswith("cuda"):
        # TF32 for the fp32 passes outside autocast (dev metrics, teacher cache): rankings don't need fp32's mantissa.
        torch.set_float32_matmul_precision("high")
    try:
        return _run(cfg, settings, data_root, out_dir, run_dir, resume, evaluate, keep_model, progress, echo,
                    time_budget)
    finally:  # a library call leaves the process as it found it
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(precision)


def _run(cfg: TrainConfig, settings: Settings, data_root: Path, out_dir: Path, run_dir: Path | None, resume: bool,
         evaluate: bool, keep_model: bool, progress: bool, echo: Callable[[str], None],
         time_budget: float | None) -> RunResult:
    t_start = time.perf_counter()
    deadline = time.monotonic() + time_budget if time_budget else None
    torch.manual_seed(cfg.seed)
    run_dir = run_folder(cfg, out_dir, run_dir)
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir.parent / ".gitignore").write_text("*\n")  # work files never get committed with the weights
    check_same_config(run_dir / "config.json", cfg)
    # The set a run continues, checked before any training time is spent.
    init_manifest = (continuable(Path(cfg.stage3.init_from), (cfg.model.base_model, cfg.model.encoder),
                                 cfg.model.n_item_tokens) if cfg.stage3.init_from else None)

    sets, data, dev = prepare(cfg, settings, data_root, run_dir, evaluate)
    echo(data.card.render())
    (run_dir / "data_card.txt").write_text(data.card.render() + "\n")

    mix = build_trainable(settings, cfg)
    teacher_file = run_dir / "teacher.pt"
    no_teacher = bool(cfg.stage3.init_from) and not cfg.needs_teacher
    if no_teacher:
        stage2 = History()
        echo("stage II: skipped (stage III continues a weight set on labels alone: no teacher is read)")
    elif resume and teacher_file.exists():
        load_trainable_state(mix.ranker, torch.load(teacher_file, weights_only=True))
        stage2 = torch.load(run_dir / "stage2.ckpt", weights_only=False)["history"]
        echo("stage II: done earlier, teacher adapter loaded")
    else:
        stage2_deadline = None if deadline is None else share_of_time_left(deadline, cfg.teacher_share)
        stage2 = run_stage2(mix, data.groups, cfg, run_dir, settings, resume, progress, stage2_deadline)
        torch.save(trainable_state(mix.ranker), teacher_file)
    if stage2.losses:
        echo(f"stage II: {len(stage2.losses)} steps, loss {stage2.mean(0, 10):.4f} -> {stage2.mean(-10, None):.4f}, "
             f"{stage2.items_per_s:.1f} items/s{peak_memory()}")

    # Dev passes that need no stage III: the teacher's, and the untrained MixLM's, whose time is what the trained
    # one's will take (what a budgeted stage III leaves for it). Kept in the run folder for --resume.
    early = {"teacher": ("teacher", mix, None)} if evaluate and not no_teacher else {}
    if evaluate and cfg.eval.compare_base:
        early["mixlm_untrained"] = ("mixlm", None, "none")
    seconds: dict[str, float] = {}
    for name, (system, trained, weights) in early.items():
        path = run_dir / f"{name}_dev.json"
        if resume and path.exists():
            dev[name] = DevResult.load(path)
            continue
        t_dev = time.monotonic()
        dev[name] = dev_metrics(sets, data, cfg, settings, system, run_dir, model=trained, weights=weights)
        dev[name].save(path)
        seconds[name] = time.monotonic() - t_dev

    stage3_deadline, plan_file = None, run_dir / "budget.json"
    if deadline is not None:
        reserve = seconds.get("mixlm_untrained", seconds.get("teacher", 0.05 * time_budget)) if evaluate else 0.0
        stage3_deadline = deadline - reserve
    if deadline is not None or plan_file.exists():  # a budgeted run resumed without one keeps its plan too
        seconds_left = time_left(stage3_deadline) if stage3_deadline is not None else 0.0
        cfg = budget_stage3(cfg, stage2, seconds_left, len(data.groups), plan_file)
        echo(f"time budget: stage III at most {cfg.stage3.steps} steps"
             + (f", {time_left(deadline):.0f} s left" if deadline is not None else " (this run folder's plan)"))

    cache = None
    if cfg.needs_teacher:
        cache = build_teacher_cache(mix, stage3_groups(data.groups, cfg), run_dir / "teacher_cache.pt",
                                    with_hidden=cfg.stage3.text_path == "cached", chunk_groups=cfg.stage2.batch_queries,
                                    progress=progress)
    frozen_adapter = {"kind": "none"}  # a frozen encoder body serves as the base, unless a warm start brings one
    if init_manifest is not None:
        # After the teacher cache: until here the ranker is the teacher. A resumed run loads it too, for the frozen
        # encoder adapter that checkpoints (trainable weights only) do not hold.
        frozen_adapter = warm_start(Path(cfg.stage3.init_from), init_manifest, mix.encoder, mix.ranker,
                                    cfg.stage3.freeze_encoder)
        echo(f"stage III: starts from the weight set {cfg.stage3.init_from}")
    elif not (resume and (run_dir / "stage3.ckpt").exists()):
        init_projector(mix, list(dict.fromkeys(item.text for g in data.groups[:64] for item in g.items)),
                       centred=cfg.model.projector_init == "centred")
    stage3 = run_stage3(mix, data.groups, cfg, cache, run_dir, settings, resume, progress, stage3_deadline)
    echo(f"stage III: {len(stage3.losses)} steps, loss {stage3.mean(0, 10):.4f} -> {stage3.mean(-10, None):.4f}, "
         f"{stage3.items_per_s:.1f} items/s{peak_memory()}")

    m = cfg.model

    def adapter_of(lora) -> dict:
        return {"kind": "full"} if m.full_finetune else {"kind": "lora", "rank": lora.rank, "alpha": lora.alpha,
                                                         "targets": list(lora.targets)}

    encoder_adapter = adapter_of(m.encoder_lora) if m.encoder_lora else None
    if cfg.stage3.freeze_encoder:
        encoder_adapter = frozen_adapter
    folder = save_weight_set(
        out_dir, encoder=mix.encoder, ranker=mix.ranker, base_model=m.base_model, encoder_model=m.encoder,
        base_fingerprint=loading.encoder_base_fingerprint(settings.home, m.encoder), adapter=adapter_of(m.lora),
        encoder_adapter=encoder_adapter, save_dtype=m.save_dtype,
        meta={
            "preset": cfg.name,
            "max_item_text_tokens": cfg.data.max_item_tokens,
            "data": data.card.as_dict(),
            "steps": {"stage2": len(stage2.losses), "stage3": len(stage3.losses)},
            "train_loss": {"stage2_first10": stage2.mean(0, 10), "stage2_last10": stage2.mean(-10, None),
                           "stage3_first10": stage3.mean(0, 10), "stage3_last10": stage3.mean(-10, None)},
            "items_per_s": {"stage2": stage2.items_per_s, "stage3": stage3.items_per_s},
            "time_budget_s": time_budget,
            "config": config_dict(cfg),
        },
    )
    echo(f"weight set: {folder}")
    if evaluate:
        dev["mixlm"] = dev_metrics(sets, data, cfg, settings, "mixlm", run_dir, weights=str(folder))
        if "mixlm_untrained" in dev:  # listed after the trained one
            dev["mixlm_untrained"] = dev.pop("mixlm_untrained")
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


def peak_memory() -> str:
    """On CUDA, the suffix ', peak GPU memory N GiB' (what a bigger batch could use); else ''."""
    if not torch.cuda.is_available():
        return ""
    return f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"


def time_left(deadline: float) -> float:
    return deadline - time.monotonic()


def share_of_time_left(deadline: float, share: float) -> float:
    """The deadline of a part that gets ``share`` of the time left before ``deadline``."""
    return time.monotonic() + share * max(time_left(deadline), 0.0)


# Costs per query group, over a stage II step's time per group (forward and backward of the text prompt): a stage III
# step by text path (its encoder reads each item's text as the teacher did; "no_grad" and "grad" also run the text
# prompt through the ranker), and the teacher cache's forward pass (0.47 measured on the 2-core CPU). A frozen encoder
# saves its share of a step: a "cached" step then took 0.24 of a stage II step's time per group (cpu-minilm-frozen,
# 0.93 s against 3.9 s a step of two groups on the 2-core CPU).
STAGE3_COST = {"cached": 1.0, "no_grad": 1.4, "grad": 2.0}
ENCODER_COST = 0.75
CACHE_COST = 0.5


def budget_stage3(cfg: TrainConfig, stage2: History, seconds: float, n_groups: int, plan_file: Path) -> TrainConfig:
    """cfg with stage III cut to 1.2x the steps that fit ``seconds`` with their teacher cache, at stage II's pace,
    so that the cache holds no groups a budgeted stage III will not reach (stage III then times its own first steps
    and cuts further). Kept in ``plan_file``: a resumed run keeps its plan, and its cache, with any budget."""
    if plan_file.exists():
        steps = json.loads(plan_file.read_text())["stage3_steps"]
    else:
        per_group = stage2.seconds / max(len(stage2.losses) * cfg.stage2.batch_queries, 1)
        batch = cfg.stage3.batch_queries
        cost = STAGE3_COST[cfg.stage3.text_path] - (ENCODER_COST if cfg.stage3.freeze_encoder else 0.0)
        step, cache = per_group * batch * cost, per_group * (CACHE_COST if cfg.needs_teacher else 0.0)
        steps = fit_steps(cfg.stage3.steps, 0, step + batch * cache, seconds)
        if steps * batch > n_groups:  # every group gets cached: the cache costs its size once, not per step
            steps = fit_steps(cfg.stage3.steps, 0, step, seconds - n_groups * cache)
        steps = max(1, min(cfg.stage3.steps, math.ceil(1.2 * steps)))
        plan_file.write_text(json.dumps({"stage3_steps": steps}) + "\n")
    s3 = cfg.stage3
    warmup = round(s3.warmup_steps * steps / s3.steps)
    return msgspec.structs.replace(cfg, stage3=msgspec.structs.replace(s3, steps=steps, warmup_steps=warmup))


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
        if not h.losses:  # a stage that did not run (no stage II when a set is continued on labels alone)
            continue
        rows.append([name, len(h.losses), round(h.items_per_s, 2), round(h.mean(0, 10), 4), round(h.mean(-10, None), 4),
                     *[""] * len(metrics)])
    for system, m in result.dev.items():
        rows.append([f"dev: {system}", "", "", "", "", *(round(m[k], 4) if k in m else "" for k in metrics)])
    for pair, d in result.dev_paired.items():  # a difference and its paired error, in the NDCG@10 columns
        rows.append([f"dev: {pair}", "", "", "", "", round(d["NDCG@10"], 4), round(d["SE"], 4), "", ""])
    return header, rows
