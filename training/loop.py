"""A plain training loop (nanoGPT-style): AdamW, linear warmup then cosine decay, checkpoints, resume.

The batch of step i is a pure function of (seed, i), so a resumed run sees exactly the data it would have
seen without the interruption; a checkpoint holds the trainable weights, the optimiser and the step.
SIGTERM and Ctrl-C save a checkpoint before stopping.
"""

from __future__ import annotations

import functools
import logging
import math
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from training.adapters import load_trainable_state, trainable_state
from training.config import StageConfig

log = logging.getLogger(__name__)

# step_fn(batch, step) -> (loss, parts for logging, number of items in the batch)
StepFn = Callable[[list, int], tuple[torch.Tensor, dict[str, float], int]]


class Interrupted(Exception):
    """Training stopped by a signal after saving a checkpoint; rerun with --resume to continue."""


@dataclass
class History:
    losses: list[float] = field(default_factory=list)
    parts: list[dict[str, float]] = field(default_factory=list)
    items: int = 0
    seconds: float = 0.0

    def mean(self, start: int, stop: int) -> float:
        window = self.losses[start:stop]
        return sum(window) / max(len(window), 1)

    @property
    def items_per_s(self) -> float:
        return self.items / max(self.seconds, 1e-9)


def lr_factor(step: int, warmup: int, total: int, floor: float = 0.1) -> float:
    """Linear warmup to 1, then cosine down to ``floor`` at the last step (§4.3.3)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@functools.lru_cache(maxsize=4)
def _epoch_order(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    return tuple(torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist())


def batch_indices(step: int, batch: int, n: int, seed: int) -> list[int]:
    """Indices of step's batch: epochs are seeded permutations of range(n), walked in order."""
    out = []
    for position in range(step * batch, (step + 1) * batch):
        epoch, offset = divmod(position, n)
        out.append(_epoch_order(n, seed, epoch)[offset])
    return out


def visited(steps: int, batch: int, n: int, seed: int) -> list[int]:
    """Every index a run of ``steps`` steps will touch (e.g. to cache teacher predictions only for those)."""
    return sorted({i for step in range(steps) for i in batch_indices(step, batch, n, seed)})


def autocast_for(device: str, bf16: bool):
    if bf16 and device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


class _StopFlag:
    """Turns SIGTERM into a flag the loop checks between steps (main thread only)."""

    def __init__(self):
        self.stop = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def _handle(self, signum, frame):
        self.stop = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def run_loop(
    name: str,
    module: torch.nn.Module,
    param_groups: list[dict],
    stage: StageConfig,
    data: Sequence,
    step_fn: StepFn,
    checkpoint: Path,
    *,
    checkpoint_every: int,
    seed: int,
    resume: bool,
    device: str = "cpu",
    autocast_bf16: bool = False,
    log_every: int = 10,
    progress: bool = True,
) -> History:
    """Train ``module``'s trainable parameters for ``stage.steps`` steps over ``data`` -> loss history."""
    optimizer = torch.optim.AdamW(param_groups, lr=stage.lr, weight_decay=stage.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, stage.warmup_steps, stage.steps))
    history, start = History(), 0
    if resume and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        load_trainable_state(module, state["weights"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        history, start = state["history"], state["step"]
        log.info("%s: resumed at step %d from %s", name, start, checkpoint)

    def save(step: int) -> None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"weights": trainable_state(module), "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(), "history": history, "step": step}, tmp)
        tmp.replace(checkpoint)  # atomic: a kill mid-save leaves the previous checkpoint intact

    params = [p for g in param_groups for p in g["params"]]
    module.train()
    bar = tqdm(total=stage.steps, initial=start, desc=name, unit="step", disable=not progress, dynamic_ncols=True)
    try:
        with _StopFlag() as flag:
            for step in range(start, stage.steps):
                t0 = time.perf_counter()
                batch = [data[i] for i in batch_indices(step, stage.batch_queries, len(data), seed)]
                with autocast_for(device, autocast_bf16):
                    loss, parts, n_items = step_fn(batch, step)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if stage.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
                optimizer.step()
                schedule.step()
                history.losses.append(float(loss.detach()))
                history.parts.append(parts)
                history.items += n_items
                history.seconds += time.perf_counter() - t0
                bar.update(1)
                bar.set_postfix(loss=f"{history.mean(-log_every, None):.4f}", items_s=f"{history.items_per_s:.1f}",
                                lr=f"{schedule.get_last_lr()[0]:.2e}")
                if (step + 1) % log_every == 0:
                    log.info("%s step %d/%d loss %.4f %s items/s %.1f", name, step + 1, stage.steps,
                             history.mean(-log_every, None), parts, history.items_per_s)
                if (step + 1) % checkpoint_every == 0 or step + 1 == stage.steps:
                    save(step + 1)
                if flag.stop:
                    raise Interrupted(f"{name}: stopped by SIGTERM at step {step + 1}; checkpoint {checkpoint}")
    except (KeyboardInterrupt, Interrupted):
        save(len(history.losses))  # one loss per finished step, so this is the step to resume at
        raise
    finally:
        bar.close()
    return history
