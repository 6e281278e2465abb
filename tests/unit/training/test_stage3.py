"""Stage III's collapse detector: the mean cosine between different items' tokens."""

from __future__ import annotations

import pytest
import torch

from training.stage3 import item_cosine


def test_items_mapped_to_one_point_read_as_collapsed():
    same = torch.randn(1, 1, 16).expand(6, 1, 16)
    assert item_cosine(same) == pytest.approx(1.0, abs=1e-5)


def test_orthogonal_items_read_as_apart():
    tokens = torch.eye(8)[:5, None, :] * 3.0
    assert item_cosine(tokens) == pytest.approx(0.0, abs=1e-6)


def test_an_item_is_not_compared_with_itself():
    tokens = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]]])
    # pairs: (a, b) 0, (a, c) and (b, c) 1/sqrt(2): the diagonal would pull the mean towards 1
    assert item_cosine(tokens) == pytest.approx(2 / (3 * 2**0.5), abs=1e-6)
