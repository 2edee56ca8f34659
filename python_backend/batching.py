"""Group the requests of a dynamic batch so little compute goes to padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def group_by_length(
    items: Sequence[T], lengths: Sequence[int], max_growth: float = 0.25
) -> list[list[T]]:
    """Split items into groups whose lengths stay within `max_growth` of the shortest.

    Each group is padded to its longest member, so a group of windows of 100
    and 384 tokens would spend most of its work on padding. On a CPU, one run
    per group costs no more than one run of the whole batch.
    """
    order = sorted(range(len(items)), key=lambda index: lengths[index])
    groups: list[list[T]] = []
    shortest = 0
    for index in order:
        if not groups or lengths[index] > shortest * (1.0 + max_growth):
            groups.append([])
            shortest = lengths[index]
        groups[-1].append(items[index])
    return groups
