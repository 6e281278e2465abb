"""A plain training loop (nanoGPT-style): AdamW, linear warmup then cosine decay, checkpoints, resume.

The batch of step i is a pure function of (seed, i), so a resumed run sees exactly the data it would have
seen without the interruption; a checkpoint holds the trainable weights, the optimiser and the step.
SIGTERM and Ctrl-C save a checkpoint before stopping.

With a deadline (``mixlm train --time-budget``) the stage times its first steps and then sets its step count
once, to what fits: the cosine schedule (and stage III's curriculum) then runs to its end inside the time,
instead of being cut off with the learning rate still high.
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

# step_fn(batch, step, total steps) -> (loss, parts for logging, number of items in the batch)
StepFn = Callable[[list, int, int], tuple[torch.Tensor, dict[str, float], int]]

# Steps timed before a deadline sets the stage's step count. The first is left out of the pace: it pays one-off
# costs (CUDA context and kernel selection, allocator growth).
CALIBRATION_STEPS = 6


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


def fit_steps(planned: int, done: int, seconds_per_step: float, seconds_left: float) -> int:
    """The step count that fits the time left at the measured pace: ``done`` plus as many more as fit, at most
    ``planned`` (never fewer than ``done``: those already ran)."""
    more = int(max(seconds_left, 0.0) // max(seconds_per_step, 1e-9))
    return max(done, min(planned, done + more))


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
    deadline: float | None = None,
) -> History:
    """Train ``module``'s trainable parameters for ``stage.steps`` steps over ``data`` -> loss history.

    ``deadline`` (a ``time.monotonic()`` value): after CALIBRATION_STEPS steps the step count is cut to what fits
    before it, warmup scaled alike; kept in the checkpoint, so a resumed stage keeps that plan."""
    plan = {"total": stage.steps, "warmup": stage.warmup_steps}
    optimizer = torch.optim.AdamW(param_groups, lr=stage.lr, weight_decay=stage.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, plan["warmup"], plan["total"]))
    history, start, budgeted = History(), 0, False  # budgeted: plan set by a deadline (now or before a stop)
    if resume and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        load_trainable_state(module, state["weights"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        history, start = state["history"], state["step"]
        if state.get("plan"):
            plan, budgeted = state["plan"], True
        log.info("%s: resumed at step %d of %d from %s", name, start, plan["total"], checkpoint)

    def save(step: int) -> None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"weights": trainable_state(module), "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(), "history": history, "step": step,
                    "plan": plan if budgeted else None}, tmp)
        tmp.replace(checkpoint)  # atomic: a kill mid-save leaves the previous checkpoint intact

    params = [p for g in param_groups for p in g["params"]]
    module.train()
    bar = tqdm(total=plan["total"], initial=start, desc=name, unit="step", disable=not progress, dynamic_ncols=True)
    paces: list[float] = []
    try:
        with _StopFlag() as flag:
            step = start
            while step < plan["total"]:
                t0 = time.perf_counter()
                batch = [data[i] for i in batch_indices(step, stage.batch_queries, len(data), seed)]
                with autocast_for(device, autocast_bf16):
                    loss, parts, n_items = step_fn(batch, step, plan["total"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if stage.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
                optimizer.step()
                schedule.step()
                history.losses.append(float(loss.detach()))
                history.parts.append(parts)
                history.items += n_items
                paces.append(time.perf_counter() - t0)
                history.seconds += paces[-1]
                if deadline is not None and not budgeted and len(paces) == CALIBRATION_STEPS:
                    budgeted, pace = True, sum(paces[1:]) / (len(paces) - 1)
                    total = fit_steps(stage.steps, step + 1, pace, deadline - time.monotonic())
                    plan = {"total": total, "warmup": round(stage.warmup_steps * total / stage.steps)}
                    bar.total = total
                    log.info("%s: %.2f s a step, %d of %d steps fit the time budget", name, pace, total, stage.steps)
                elif budgeted and deadline is not None and time.monotonic() > deadline and step + 1 < plan["total"]:
                    # Slower than its first steps said: stop at the deadline rather than overrun the budget.
                    log.warning("%s: out of time at step %d of %d", name, step + 1, plan["total"])
                    plan = {**plan, "total": step + 1}
                bar.update(1)
                bar.set_postfix(loss=f"{history.mean(-log_every, None):.4f}", items_s=f"{history.items_per_s:.1f}",
                                lr=f"{schedule.get_last_lr()[0]:.2e}")
                if (step + 1) % log_every == 0:
                    log.info("%s step %d/%d loss %.4f %s items/s %.1f", name, step + 1, plan["total"],
                             history.mean(-log_every, None), parts, history.items_per_s)
                step += 1
                if step % checkpoint_every == 0 or step == plan["total"]:
                    save(step)
                if flag.stop:
                    raise Interrupted(f"{name}: stopped by SIGTERM at step {step}; checkpoint {checkpoint}")
    except (KeyboardInterrupt, Interrupted):
        save(len(history.losses))  # one loss per finished step, so this is the step to resume at
        raise
    finally:
        bar.close()
    return history
