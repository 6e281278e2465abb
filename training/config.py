"""Training configuration: one TOML file per preset (training/presets/<name>.toml), decoded into typed structs.

Everything a run depends on (data sampling, LoRA, loss weights, the stage III curriculum, optimiser knobs) is
in that one file and is copied into the weight set's manifest, so a set says how it was made.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import msgspec

from mixlm.errors import MixLMError

PRESETS_DIR = Path(__file__).parent / "presets"


class ConfigError(MixLMError):
    """A training config file that is missing, malformed or inconsistent."""


class Struct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class LoraSpec(Struct):
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    # Linear layers of each Llama block that get an adapter (attention + MLP).
    targets: list[str] = msgspec.field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


class ModelConfig(Struct):
    base_model: Literal["smollm2-135m", "tiny"] = "smollm2-135m"
    # The encoder's base: "" = the ranker's base (an LLM read at its last N states); "minilm-l6" = the MiniLM
    # sentence encoder, mean-pooled (the paper's encoder is a GTE embedding model, §4.3.3); "tiny-bert" for tests.
    encoder_model: Literal["", "smollm2-135m", "tiny", "minilm-l6", "tiny-bert"] = ""
    n_item_tokens: int = 1
    device: str = "auto"
    # Trainable weights stay fp32; on CUDA the forward runs under bf16 autocast. On CPU "bf16" keeps the frozen
    # base in bf16 (half the memory traffic) and the adapters in fp32.
    base_dtype: Literal["fp32", "bf16"] = "fp32"
    autocast_bf16: bool = False
    gradient_checkpointing: bool = False
    full_finetune: bool = False  # True: every weight trains and ships (large); False: LoRA adapters only
    lora: LoraSpec = msgspec.field(default_factory=LoraSpec)
    # The encoder's adapter when it differs from the ranker's (a BERT body names its linears query/key/value/dense).
    encoder_lora: LoraSpec | None = None
    # A learned D x D map after the encoder's last-N states (§4.1 allows one); initialised to a scaled identity.
    projector: bool = True
    # Its start when the widths agree: "scaled" identity, or "centred": the identity minus the items' shared
    # direction (an LLM's last states are nearly parallel, cosine ~0.94), so items reach the ranker apart. Probed
    # on CPU: stage III restores the shared direction within ~40 steps, no measurable gain (bench/RESULTS.md).
    projector_init: Literal["scaled", "centred"] = "scaled"
    save_dtype: Literal["fp32", "bf16"] = "bf16"
    # torch intra-op threads; 0 = torch's default (all cores). 1 is far faster on a machine shared with other
    # busy processes: OpenMP barriers stall whenever one of its threads is descheduled.
    cpu_threads: int = 0

    @property
    def encoder(self) -> str:
        return self.encoder_model or self.base_model


class DataConfig(Struct):
    sets: list[str] = msgspec.field(default_factory=lambda: ["onet_titles"])
    train_queries: int = 1000  # judged queries sampled for training (after the dev ones are held out)
    dev_queries: int = 200  # held-out queries: never in training, used for the dev metrics in the manifest
    max_positives: int = 2
    hard_negatives: int = 5  # sampled from the first-stage top-k minus the relevant docs
    random_negatives: int = 2  # uniform over the corpus minus the relevant docs
    first_stage: list[Literal["bm25", "biencoder"]] = msgspec.field(default_factory=lambda: ["bm25", "biencoder"])
    candidates_k: int = 50
    max_item_tokens: int = 128  # item text is truncated to this many tokens (teacher text path and encoder)
    seed: int = 0


class StageConfig(Struct):
    steps: int = 100
    batch_queries: int = 2  # query groups per optimiser step; each group is one packed sequence
    lr: float = 2e-4
    warmup_steps: int = 10
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # Weight of the in-group listwise loss added to the stage's objective (training/losses.py; 0 = the paper's).
    listwise: float = 0.0


class Phase(Struct):
    """Loss weights for a share of stage III (paper §4.3.3: L = a*SFT + b*distill + c*(l1*hidden + l2*pred))."""

    fraction: float  # share of stage III steps spent in this phase
    sft: float
    distill: float
    align: float
    align_hidden: float = 1.0
    align_pred: float = 1.0


class Stage3Config(StageConfig):
    # How the full-text path of the self-alignment loss is computed:
    #   "grad"    : the ranker being trained runs the text prompt with gradients (the paper; ~9x the mixed cost)
    #   "no_grad" : the same forward without gradients: a stop-gradient target
    #   "cached"  : the stage II teacher's text-path hidden states and P(yes), computed once with the teacher
    #               predictions; the ranker starts from the teacher, so this is the stop-gradient target at step 0
    text_path: Literal["grad", "no_grad", "cached"] = "cached"
    phases: list[Phase] = msgspec.field(
        default_factory=lambda: [
            Phase(fraction=0.3, sft=0.2, distill=0.2, align=1.0),
            Phase(fraction=0.7, sft=1.0, distill=1.0, align=0.2),
        ]
    )
    encoder_lr: float | None = None  # None = lr
    # True: the encoder body stays the base (no adapter) and only the projector after it trains. Each item's
    # states are then computed once and reused, so a step costs the ranker's mixed pass alone instead of
    # re-encoding 16 item texts (not in the paper, which tunes the encoder too; a CPU budget buys many more steps).
    freeze_encoder: bool = False
    # Weight of the listwise distillation from the teacher's per-group ordering (training/losses.py), scaled like
    # the pointwise distillation by the phase's distill weight; 0 = the paper's pointwise distillation only.
    distill_listwise: float = 0.0
    distill_temperature: float = 1.0
    # A LoRA weight set folder (`mixlm train --init-from`): stage III starts from its ranker adapter, encoder adapter
    # and projector instead of the teacher's adapter and the base encoder, to continue a set on more queries or
    # steps. Stage II still trains (or is resumed) for the teacher that distillation and alignment read, unless no
    # phase reads it (labels alone: `needs_teacher`), when there is no stage II and no teacher cache.
    init_from: str = ""


class EvalConfig(Struct):
    first_stage: Literal["bm25", "biencoder"] = "bm25"
    k: int = 50
    compare_base: bool = True  # also score the untrained base on dev, for the manifest


class TrainConfig(Struct):
    name: str
    description: str = ""
    model: ModelConfig = msgspec.field(default_factory=ModelConfig)
    data: DataConfig = msgspec.field(default_factory=DataConfig)
    stage2: StageConfig = msgspec.field(default_factory=StageConfig)
    stage3: Stage3Config = msgspec.field(default_factory=Stage3Config)
    eval: EvalConfig = msgspec.field(default_factory=EvalConfig)
    checkpoint_every: int = 50
    log_every: int = 10
    seed: int = 0
    # With `mixlm train --time-budget`: stage II's share of the time left once the data is built; stage III gets
    # the rest but what the dev metrics will take.
    teacher_share: float = 0.3

    def validate(self) -> "TrainConfig":
        total = sum(p.fraction for p in self.stage3.phases)
        if not self.stage3.phases or abs(total - 1.0) > 1e-6:
            raise ConfigError(f"{self.name}: stage3 phase fractions must sum to 1, got {total}")
        if not 0.0 < self.teacher_share < 1.0:
            raise ConfigError(f"{self.name}: teacher_share must be between 0 and 1, got {self.teacher_share}")
        if self.model.lora.rank < 1 and not self.model.full_finetune:
            raise ConfigError(f"{self.name}: lora.rank must be >= 1")
        for stage in (self.stage2, self.stage3):
            if stage.steps < 1 or stage.batch_queries < 1 or stage.warmup_steps < 0:
                raise ConfigError(f"{self.name}: steps and batch_queries must be >= 1, warmup_steps >= 0")
        return self

    @property
    def needs_teacher(self) -> bool:
        """Whether stage III reads the teacher (distillation or self-alignment in some phase): only then are the
        teacher's predictions cached. Labels-only (every distill and align 0) suits continuing a set (init_from)
        that already ranks about as well as the teacher."""
        return any(p.distill or p.align for p in self.stage3.phases)

    def phase_at(self, step: int, total: int | None = None) -> Phase:
        """The stage III phase that step (0-based) of ``total`` (default: the configured steps) falls in."""
        edge = 0.0
        for phase in self.stage3.phases:
            edge += phase.fraction * (total or self.stage3.steps)
            if step < edge:
                return phase
        return self.stage3.phases[-1]


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def _config_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESETS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ConfigError(f"no training config {path} (presets: {', '.join(preset_names())})")
    return path


def merged(base: dict, override: dict) -> dict:
    """``base`` with ``override`` laid over it, tables merged key by key (lists and values replaced)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _raw_config(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The TOML table of ``path``; ``extends = "<preset or path>"`` starts from that config and overrides it."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'extends' loops back to itself")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from e
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    base = _config_path(parent if Path(parent).suffix == "" else path.parent / parent)
    return merged(_raw_config(base, (*seen, path.resolve())), raw)


def load_config(name_or_path: str | Path) -> TrainConfig:
    """A preset name (tiny, cpu, cpu-long, cpu-xl, gpu) or a path to a TOML file."""
    path = _config_path(name_or_path)
    raw = _raw_config(path)
    try:
        return msgspec.convert(raw, TrainConfig).validate()
    except msgspec.ValidationError as e:
        raise ConfigError(f"{path}: {e}") from e


def config_dict(cfg: TrainConfig) -> dict:
    return msgspec.to_builtins(cfg)
