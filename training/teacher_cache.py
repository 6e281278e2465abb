"""Teacher predictions cached once on disk (paper §4.3.3 distillation target): P(yes) and, for the
"cached" self-alignment text path, the last hidden state of every (query, item) pair of the training data.

Built in chunks and saved after each, so a killed run picks up where it stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mixlm.model import MixLM, p_yes
from training.pairs import QueryGroup
from training.stage2 import text_forward

log = logging.getLogger(__name__)


class TeacherCache:
    def __init__(self, keys: list[str], p_yes: torch.Tensor, hidden: torch.Tensor | None):
        self.index = {k: i for i, k in enumerate(keys)}
        self.keys, self.p_yes, self.hidden = keys, p_yes, hidden

    def lookup(self, groups: list[QueryGroup], device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """P(yes) [N] and hidden [N, D] (or None) of the batch's items, in packing order."""
        rows = torch.tensor([self.index[g.key(item)] for g in groups for item in g.items])
        hidden = self.hidden[rows].to(device) if self.hidden is not None else None
        return self.p_yes[rows].to(device), hidden


def build_teacher_cache(mix: MixLM, groups: list[QueryGroup], path: Path, with_hidden: bool,
                        chunk_groups: int = 4, save_every: int = 50, progress: bool = True) -> TeacherCache:
    """Run the teacher (no grad) over every group once. A file already at ``path`` (a killed run, or a longer
    stage III over the same teacher) is reused: only groups with a pair it lacks are run."""
    state = torch.load(path, weights_only=True) if path.exists() else {"keys": [], "p_yes": [], "hidden": []}
    known = set(state["keys"])
    todo = [g for g in groups if any(g.key(item) not in known for item in g.items)]
    was_training = mix.ranker.training
    mix.ranker.eval()
    bar = tqdm(total=len(groups), initial=len(groups) - len(todo), desc="teacher predictions", unit="query",
               disable=not progress)

    def save() -> None:
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    with torch.no_grad():
        for s in range(0, len(todo), chunk_groups):
            chunk = todo[s : s + chunk_groups]
            logits, hidden = text_forward(mix, chunk)
            state["keys"] += [g.key(item) for g in chunk for item in g.items]
            state["p_yes"].append(p_yes(logits).cpu())
            if with_hidden:
                state["hidden"].append(hidden.float().cpu().to(torch.bfloat16))
            bar.update(len(chunk))
            if (s // chunk_groups + 1) % save_every == 0:
                save()
    bar.close()
    if todo or not path.exists():
        save()
    mix.ranker.train(was_training)
    hidden = torch.cat(state["hidden"]).float() if with_hidden and state["hidden"] else None
    log.info("teacher cache: %d pairs at %s", len(state["keys"]), path)
    return TeacherCache(state["keys"], torch.cat(state["p_yes"]) if state["p_yes"] else torch.empty(0), hidden)
