"""Weight sets: ``weights/<model_version>/`` = manifest.json + encoder adapter + ranker adapter + projector.

The service and worker load a set with ``mixlm.weights.build_mixlm``, which calls ``apply_weight_set`` here
and derives model_version from the fingerprint it returns, so ``save_weight_set`` computes the folder name
and the manifest's model_version the same way. LoRA adapters are merged into the base weights on load, so
inference runs the plain model at no extra cost.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mixlm.errors import WeightSetError
from mixlm.model import Encoder, Ranker
from mixlm.weights import manifest_encoder
from mixlm.version import model_version
from training.adapters import Projector, add_lora, load_lora_state, lora_state, merge_lora
from training.config import ConfigError, LoraSpec

MANIFEST = "manifest.json"
ENCODER_FILE = "encoder_adapter.safetensors"
RANKER_FILE = "ranker_adapter.safetensors"
PROJECTOR_FILE = "projector.safetensors"
FORMAT = "mixlm-weights/1"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise WeightSetError(f"{folder}: no {MANIFEST}")
    return json.loads(path.read_text())


def encoder_fingerprint(folder: Path) -> str:
    """Hash of what the item tokens depend on: the encoder adapter and the projector files (feeds model_version)."""
    h = hashlib.sha256()
    for name in (ENCODER_FILE, PROJECTOR_FILE):
        path = Path(folder) / name
        h.update(name.encode())
        h.update(path.read_bytes() if path.exists() else b"")
    return h.hexdigest()[:16]


def _body_state(body: torch.nn.Module, kind: str) -> dict[str, torch.Tensor]:
    if kind == "none":  # a frozen body: the base serves as it is
        return {}
    if kind == "lora":
        return lora_state(body)
    # Full fine-tune: every weight of the body (large; for users with storage).
    return {k: v.detach() for k, v in body.state_dict().items()}


def save_weight_set(
    weights_dir: Path,
    *,
    encoder: Encoder,
    ranker: Ranker,
    base_model: str,
    base_fingerprint: str,
    adapter: dict,
    save_dtype: str = "bf16",
    meta: dict | None = None,
    encoder_model: str | None = None,
    encoder_adapter: dict | None = None,
) -> Path:
    """Write a weight set from trained modules -> its folder ``weights_dir/<model_version>``.

    ``adapter`` = {"kind": "lora"|"full", "rank", "alpha", "targets"} (the ranker's, and the encoder's unless
    ``encoder_adapter`` is given; {"kind": "none"}: an encoder trained frozen); ``base_fingerprint`` is the encoder
    base's (it feeds model_version);
    ``encoder_model`` defaults to ``base_model``; ``meta`` is merged into the manifest (data, steps, dev metrics,
    config). Written to a temporary folder first, then renamed into place.
    """
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    tmp = weights_dir / f".tmp-{time.time_ns()}"
    tmp.mkdir()
    dtype = DTYPES[save_dtype]
    kind = adapter["kind"]

    def write(tensors: dict[str, torch.Tensor], name: str) -> None:
        save_file({k: v.to(dtype).contiguous().cpu() for k, v in tensors.items()}, str(tmp / name), metadata={"format": FORMAT})

    write(_body_state(encoder.body, (encoder_adapter or adapter)["kind"]), ENCODER_FILE)
    write(_body_state(ranker.lm.model, kind), RANKER_FILE)
    if isinstance(encoder.projector, torch.nn.Linear):
        write({"weight": encoder.projector.weight}, PROJECTOR_FILE)
    fingerprint = encoder_fingerprint(tmp)
    version = model_version(base_fingerprint, fingerprint, encoder.n_tokens, encoder.sampling)
    manifest = {
        "format": FORMAT,
        "model_version": version,
        "base_model": base_model,
        "encoder_model": encoder_model or base_model,
        "base_fingerprint": base_fingerprint,
        "encoder_fingerprint": fingerprint,
        "n_item_tokens": encoder.n_tokens,
        "sampling": encoder.sampling,
        "created_at": int(time.time()),
        "adapter": {**adapter, "dtype": save_dtype},
        **({"encoder_adapter": {**encoder_adapter, "dtype": save_dtype}} if encoder_adapter else {}),
        "files": sorted(p.name for p in tmp.glob("*.safetensors")),
        **(meta or {}),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    folder = weights_dir / version
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def update_manifest(folder: Path, **fields) -> dict:
    """Add fields (e.g. dev metrics measured on the saved set) without touching the hashed files."""
    manifest = read_manifest(folder) | fields
    path = Path(folder) / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return manifest


def encoder_adapter_of(manifest: dict) -> dict:
    """The encoder's adapter entry of a manifest (sets before frozen or sentence encoders share the ranker's)."""
    return manifest.get("encoder_adapter", manifest["adapter"])


def apply_weight_set(folder: Path, encoder: Encoder, ranker: Ranker) -> str:
    """Load a weight set into plain (base) modules in place -> the encoder fingerprint for model_version."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("n_item_tokens") != encoder.n_tokens:
        raise WeightSetError(f"{folder}: trained for T_S={manifest.get('n_item_tokens')}, encoder keeps {encoder.n_tokens}")
    if manifest.get("sampling", "last") != encoder.sampling:
        raise WeightSetError(f"{folder}: trained with {manifest.get('sampling')} sampling, encoder does {encoder.sampling}")
    for name, body, adapter in ((ENCODER_FILE, encoder.body, encoder_adapter_of(manifest)),
                                (RANKER_FILE, ranker.lm.model, manifest["adapter"])):
        path = folder / name
        if not path.exists():
            raise WeightSetError(f"{folder}: {name} is missing")
        state = load_file(str(path))
        if adapter["kind"] == "none":
            continue
        if adapter["kind"] == "lora":
            merge_lora(body, state, adapter["rank"], adapter["alpha"])
        else:
            dtype = next(body.parameters()).dtype
            body.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    projector = folder / PROJECTOR_FILE
    if projector.exists():
        weight = load_file(str(projector))["weight"]
        encoder.projector = Projector(weight.shape[1], weight.shape[0]).to(weight.device)
        with torch.no_grad():
            encoder.projector.weight.copy_(weight.float())
        encoder.projector.to(next(encoder.body.parameters()).dtype)
    return encoder_fingerprint(folder)


def continuable(folder: Path, models: tuple[str, str], n_tokens: int) -> dict:
    """The manifest of a weight set that a run on ``models`` (the config's ranker and encoder bases) with
    ``n_tokens`` item tokens can continue; a ConfigError saying why not, before any training time is spent."""
    if not (Path(folder) / MANIFEST).is_file():
        raise ConfigError(f"stage3.init_from: {folder} is not a weight set (no {MANIFEST})")
    manifest = read_manifest(folder)
    trained_on = (manifest["base_model"], manifest_encoder(manifest))
    if trained_on != models:
        raise ConfigError(f"{folder}: trained on ranker/encoder {'/'.join(trained_on)}, this config has {'/'.join(models)}")
    if manifest.get("n_item_tokens") != n_tokens:
        raise ConfigError(f"{folder}: trained for T_S={manifest.get('n_item_tokens')}, this config has {n_tokens}")
    if manifest["adapter"]["kind"] != "lora" or encoder_adapter_of(manifest)["kind"] == "full":
        raise ConfigError(f"{folder}: only LoRA weight sets can be continued (this one is a full fine-tune)")
    return manifest


def warm_start(folder: Path, manifest: dict, encoder: Encoder, ranker: Ranker, freeze_encoder: bool = False) -> dict:
    """Load a LoRA weight set (its ``manifest`` as ``continuable`` checked it) into trainable modules (adapters
    injected, as ``build_trainable`` makes them), so stage III continues that set instead of starting from the
    teacher and the base encoder -> the encoder adapter's manifest entry. A frozen encoder gets the set's adapter
    injected and kept fixed: its items' states are the set's, and the saved set carries that adapter on."""
    folder = Path(folder)
    encoder_adapter = {k: v for k, v in encoder_adapter_of(manifest).items() if k != "dtype"}
    try:
        load_lora_state(ranker.lm.model, load_file(str(folder / RANKER_FILE)))
        if encoder_adapter["kind"] == "lora":
            if freeze_encoder:
                spec = LoraSpec(rank=encoder_adapter["rank"], alpha=encoder_adapter["alpha"],
                                targets=list(encoder_adapter["targets"]))
                for param in add_lora(encoder.body, spec).parameters():
                    param.requires_grad = False
            load_lora_state(encoder.body, load_file(str(folder / ENCODER_FILE)))
    except (KeyError, RuntimeError) as e:  # other targets (a missing name) or another rank (a shape mismatch)
        raise ConfigError(f"{folder}: its adapters do not fit this config's LoRA: {e}") from e
    projector = folder / PROJECTOR_FILE
    if projector.exists():
        weight = load_file(str(projector))["weight"]
        if not isinstance(encoder.projector, Projector) or encoder.projector.weight.shape != weight.shape:
            raise ConfigError(f"{folder}: its projector {tuple(weight.shape)} does not fit this config's")
        with torch.no_grad():
            encoder.projector.weight.copy_(weight.float())
    return encoder_adapter
