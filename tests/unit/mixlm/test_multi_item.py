import torch

from mixlm.multi_item import multi_item_layout, pad_layouts


def test_items_see_prefix_and_themselves_only():
    layout = multi_item_layout(prefix_len=3, item_lens=[2, 1])
    m = layout.mask
    # prefix is plain causal
    assert m[2, :3].all() and not m[0, 1]
    # first item (positions 3, 4) sees the prefix and itself, causally
    assert m[4, :5].all() and not m[3, 4]
    # second item (position 5) sees the prefix and itself, not item one
    assert m[5, :3].all() and m[5, 5] and not m[5, 3] and not m[5, 4]


def test_position_ids_restart_after_the_prefix():
    layout = multi_item_layout(prefix_len=3, item_lens=[2, 3])
    assert layout.position_ids.tolist() == [0, 1, 2, 3, 4, 3, 4, 5]


def test_readout_is_each_items_last_token():
    layout = multi_item_layout(prefix_len=4, item_lens=[2, 1, 3])
    assert layout.readout.tolist() == [5, 6, 9]
    assert layout.item_starts.tolist() == [4, 6, 7]


def test_padding_rows_attend_to_themselves_so_softmax_has_no_empty_row():
    short, long = multi_item_layout(2, [1]), multi_item_layout(2, [2, 2])
    position_ids, mask = pad_layouts([short, long])
    assert position_ids.shape == (2, 6) and mask.shape == (2, 1, 6, 6)
    assert mask[0, 0].any(-1).all()  # every row of the short sequence attends to something
    assert not mask[0, 0, 4, :3].any() and mask[0, 0, 4, 4]


def test_zero_length_items_are_rejected():
    try:
        multi_item_layout(3, [2, 0])
    except ValueError as e:
        assert "every item" in str(e)
    else:
        raise AssertionError("expected ValueError")
