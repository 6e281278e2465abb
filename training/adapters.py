"""LoRA adapters on the bodies of the encoder and the ranker (peft), and merging them for inference.

Adapters are injected with ``peft.inject_adapter_in_model`` straight into the LlamaModel, so the model core's
``Encoder.body`` and ``Ranker.lm.model`` keep their types and call paths. Saved keys are relative to that
LlamaModel with peft's adapter name dropped (``layers.0.self_attn.q_proj.lora_A.weight``), so a weight set
does not depend on peft's naming. Merging is plain arithmetic (W += alpha/r * B @ A, peft's forward), in fp32.
"""

from __future__ import annotations

import torch
from torch import nn

from training.config import LoraSpec

ADAPTER = "default"
LORA_A, LORA_B = ".lora_A.weight", ".lora_B.weight"


def add_lora(body: nn.Module, spec: LoraSpec) -> nn.Module:
    """Inject LoRA into the target linears of a body (LlamaModel, BertModel) in place; only the adapters train."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=list(spec.targets))
    body = inject_adapter_in_model(config, body, adapter_name=ADAPTER)
    for name, param in body.named_parameters():
        param.requires_grad = ".lora_" in name
        if param.requires_grad:
            param.data = param.data.float()  # adapters train in fp32 even on a bf16 base
    return body


def lora_state(body: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights of a LoRA-injected body, keyed without peft's adapter name."""
    out = {}
    for name, tensor in body.state_dict().items():
        if ".lora_A." in name or ".lora_B." in name:
            out[name.replace(f".{ADAPTER}.", ".")] = tensor.detach()
    return out


def load_lora_state(body: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy saved adapter weights into a LoRA-injected body (the inverse of lora_state)."""
    params = dict(body.named_parameters())
    for key, tensor in state.items():
        name = key.replace(".lora_A.", f".lora_A.{ADAPTER}.").replace(".lora_B.", f".lora_B.{ADAPTER}.")
        if name not in params:
            raise KeyError(f"adapter weight {key} has no matching parameter (LoRA targets differ?)")
        with torch.no_grad():
            params[name].copy_(tensor)


def merge_lora(body: nn.Module, state: dict[str, torch.Tensor], rank: int, alpha: float) -> int:
    """Add each adapter's delta into the plain (un-injected) body's weights in place -> number of layers merged."""
    scale = alpha / rank
    merged = 0
    for key in state:
        if not key.endswith(LORA_A):
            continue
        prefix = key[: -len(LORA_A)]
        linear = body.get_submodule(prefix)
        a, b = state[key].float(), state[prefix + LORA_B].float()
        with torch.no_grad():
            linear.weight.copy_((linear.weight.float() + scale * (b @ a)).to(linear.weight.dtype))
        merged += 1
    return merged


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Every trainable parameter (adapters, projector, or all weights in a full fine-tune), for checkpoints."""
    return {n: p.detach() for n, p in module.named_parameters() if p.requires_grad}


def load_trainable_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


class Projector(nn.Linear):
    """The map after the encoder's item tokens into the ranker's width (§4.1), identity at the start when both
    widths agree. It computes in its own dtype (fp32 while training on a bf16 base) and hands back the input's
    dtype, so it can sit on any body."""

    def __init__(self, in_dim: int, out_dim: int | None = None):
        super().__init__(in_dim, out_dim or in_dim, bias=False)
        if self.weight.shape[0] == self.weight.shape[1]:
            with torch.no_grad():
                self.weight.copy_(torch.eye(in_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.to(self.weight.dtype)).to(x.dtype)
