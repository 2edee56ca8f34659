"""Length grouping of the requests in one dynamic batch."""

from python_backend.batching import group_by_length


def test_similar_lengths_share_a_group():
    assert group_by_length(["a", "b", "c"], [100, 110, 120]) == [["a", "b", "c"]]


def test_long_windows_get_their_own_group():
    groups = group_by_length(["long", "short", "mid"], [384, 64, 70])
    assert groups == [["short", "mid"], ["long"]]


def test_every_item_kept_once():
    lengths = [5, 300, 17, 64, 65, 384, 1, 128]
    items = list(range(len(lengths)))
    groups = group_by_length(items, lengths)
    assert sorted(item for group in groups for item in group) == items
    for group in groups:
        widths = [lengths[item] for item in group]
        assert max(widths) <= min(widths) * 1.25


def test_empty_batch():
    assert group_by_length([], []) == []
