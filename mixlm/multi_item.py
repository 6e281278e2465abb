"""Multi-item scoring layout (paper §5.2.2): one sequence per request = shared prefix + every item.

Each item attends to the prefix and causally to itself only; position ids restart after the prefix, so an
item sees exactly what it would see alone behind the prefix, and P(yes) is read at its last token.
Pure functions over lengths: no model code, no tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class Layout:
    """One packed sequence: prefix then items. mask[i, j] is True where token i may attend to token j."""

    position_ids: torch.Tensor  # [L] long
    mask: torch.Tensor  # [L, L] bool
    readout: torch.Tensor  # [n_items] long: index of each item's last token
    item_starts: torch.Tensor  # [n_items] long

    @property
    def length(self) -> int:
        return int(self.position_ids.shape[0])


def multi_item_layout(prefix_len: int, item_lens: Sequence[int]) -> Layout:
    if prefix_len < 0 or any(n < 1 for n in item_lens):
        raise ValueError(f"prefix_len must be >= 0 and every item >= 1 token, got {prefix_len}, {list(item_lens)}")
    lens = torch.tensor(list(item_lens), dtype=torch.long)
    total = prefix_len + int(lens.sum())
    starts = prefix_len + torch.cumsum(lens, 0) - lens
    # segment id per token: 0 = prefix, k = item k (1-based); offset within the segment.
    segment = torch.zeros(total, dtype=torch.long)
    offset = torch.arange(total, dtype=torch.long)
    for k, (s, n) in enumerate(zip(starts.tolist(), lens.tolist()), start=1):
        segment[s : s + n] = k
        offset[s : s + n] = torch.arange(n)
    position_ids = torch.where(segment == 0, offset, prefix_len + offset)
    idx = torch.arange(total)
    causal = idx[None, :] <= idx[:, None]
    same_segment = segment[:, None] == segment[None, :]
    to_prefix = segment[None, :] == 0
    mask = causal & (same_segment | to_prefix)
    return Layout(position_ids=position_ids, mask=mask, readout=starts + lens - 1, item_starts=starts)


def pad_layouts(layouts: Sequence[Layout]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack layouts of different lengths into [B, L] position ids and a [B, 1, L, L] bool mask.

    Padding tokens attend only to themselves, so no softmax row is empty (an all-masked row gives NaN).
    """
    width = max(layout.length for layout in layouts)
    position_ids = torch.zeros(len(layouts), width, dtype=torch.long)
    mask = torch.eye(width, dtype=torch.bool).repeat(len(layouts), 1, 1)
    for b, layout in enumerate(layouts):
        n = layout.length
        position_ids[b, :n] = layout.position_ids
        mask[b, :n, :n] = layout.mask
    return position_ids, mask[:, None]
