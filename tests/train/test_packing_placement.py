"""Row placement for packing: every sequence placed once without overlap, rows never over the limit,
and the rows balanced (the narrowest width that needs no more rows than the limit does)."""

from __future__ import annotations

import random

import pytest

from rlhfops.train.forward import _first_fit_decreasing, pack_completions, place_sequences


def _check(lengths: list[int], row_len: int) -> tuple[int, int]:
    placement, rows = place_sequences(lengths, row_len)
    spans: dict[int, list[tuple[int, int]]] = {}
    for (row, start), n in zip(placement, lengths, strict=True):
        assert 0 <= row < rows and start >= 0 and start + n <= row_len
        spans.setdefault(row, []).append((start, start + n))
    for segs in spans.values():  # no two sequences overlap in a row
        segs.sort()
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(segs, segs[1:], strict=False))
    assert sorted(spans) == list(range(rows))  # no empty row
    width = max(s + n for (_, s), n in zip(placement, lengths, strict=True))
    return rows, width


def test_balanced_rows_by_hand():
    lengths = [150, 180, 200, 190]  # 720 tokens
    placement, rows = _first_fit_decreasing(lengths, 512)  # [200, 190] = 390, then 180 + 150 = 330
    assert rows == 2 and max(s + n for (_, s), n in zip(placement, lengths, strict=True)) == 390
    rows, width = _check(lengths, 512)
    assert rows == 2 and width == 370  # [200, 150] and [190, 180]: the narrowest split into two rows
    assert _check([300, 100], 512) == (1, 400)  # fits one row: width is the total, not the limit
    assert _check([512, 1], 512) == (2, 512)
    assert place_sequences([5, 3], 8, packing=False) == ([(0, 0), (1, 0)], 2)


@pytest.mark.parametrize("seed", range(20))
def test_never_more_rows_and_never_wider_than_plain_first_fit(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 300) for _ in range(rng.randint(1, 24))]
    row_len = max(512, max(lengths))
    plain, plain_rows = _first_fit_decreasing(lengths, row_len)
    plain_width = max(s + n for (_, s), n in zip(plain, lengths, strict=True))
    rows, width = _check(lengths, row_len)
    assert rows <= plain_rows and width <= plain_width
    assert width >= -(-sum(lengths) // rows)  # no placement can be narrower than the average


def test_pack_completions_uses_the_balanced_width():
    batch = pack_completions([[1] * 50] * 4, [[2] * 100, [2] * 130, [2] * 150, [2] * 140], 512, pad_id=0)
    assert tuple(batch.input_ids.shape) == (2, 370)  # sequences of 150, 180, 200, 190 as above
