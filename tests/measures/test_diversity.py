"""Diversity measures against values counted by hand."""

from __future__ import annotations

import pytest

from rlhfops.measures.diversity import distinct_n, opening_share, repeated_ngram_fraction, text_distinct_n


def test_distinct_n_pooled_over_sequences():
    seqs = [[1, 2, 3, 1, 2], [1, 2], [7]]
    # bigrams: (1,2) (2,3) (3,1) (1,2) | (1,2) | none -> 5 total, 3 unique
    assert distinct_n(seqs, 2) == pytest.approx(3 / 5, rel=1e-12)
    assert distinct_n(seqs, 1) == pytest.approx(4 / 8, rel=1e-12)  # tokens 1,2,3,1,2,1,2,7: {1,2,3,7}
    assert distinct_n([[1]], 2) == 0.0  # no sequence long enough
    assert distinct_n([["a", "b"], ["a", "b"]], 2) == 0.5  # words work too: (a,b) twice
    with pytest.raises(ValueError, match="n must be >= 1"):
        distinct_n(seqs, 0)


def test_text_distinct_n_of_one_reply():
    assert text_distinct_n("a b a b a b") == pytest.approx(2 / 5, rel=1e-12)  # (a,b)x3 (b,a)x2
    assert text_distinct_n("the cat sat on the mat", 1) == pytest.approx(5 / 6, rel=1e-12)
    assert text_distinct_n("one") == 1.0  # too short to repeat itself
    assert text_distinct_n("") == 1.0


def test_repeated_ngram_fraction():
    seqs = [[1, 2, 3, 1, 2], [1, 2], [7]]
    # per sequence: seq0 4 bigrams, 1 repeat -> 1/4; seq1 0/1; seq2 skipped -> mean 0.125
    assert repeated_ngram_fraction(seqs, 2) == pytest.approx(0.125, rel=1e-12)
    assert repeated_ngram_fraction([[5, 5, 5, 5, 5]], 2) == pytest.approx(3 / 4, rel=1e-12)
    assert repeated_ngram_fraction([[1, 2]], 4) == 0.0


def test_opening_share():
    assert opening_share(["a b c d", "a b c e", "x y z"]) == pytest.approx(2 / 3, rel=1e-12)
    assert opening_share(["Hello there friend", "hello  THERE friend!"]) == 0.5  # "friend" vs "friend!"
    assert opening_share(["Hello there friend", "hello  THERE friend"]) == 1.0  # case and spacing ignored
    assert opening_share(["a b c d", "a b x"], words=2) == 1.0
    assert opening_share([]) == 0.0
