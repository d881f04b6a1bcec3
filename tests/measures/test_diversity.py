"""Diversity measures against values counted by hand."""

from __future__ import annotations

import pytest

from rlhfops.measures.diversity import (
    LOOP_REPEAT_FRACTION,
    distinct_n,
    looping_share,
    loops,
    opening_share,
    repeated_ngram_fraction,
    text_distinct_n,
)


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


def test_n_below_one_is_refused_everywhere():
    for fn in (distinct_n, repeated_ngram_fraction):
        with pytest.raises(ValueError, match="n must be >= 1"):
            fn([[1, 2, 3]], 0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        text_distinct_n("a b c", 0)


def test_repeated_ngram_fraction_defaults_to_4_grams():
    seq = [1, 2, 3, 4, 1, 2, 3, 4, 1]
    # 4-grams: 1234 2341 3412 4123 1234 2341 -> 2 of 6 repeat; 5-grams: 1 of 5
    assert repeated_ngram_fraction([seq]) == pytest.approx(1 / 3, rel=1e-12)
    assert repeated_ngram_fraction([seq], 5) == pytest.approx(1 / 5, rel=1e-12)


# 17 distinct words, then the first 6 again: 20 word 4-grams of which 3 repeat (exactly 0.15); of the 19
# 5-grams 2 repeat (0.105)
AT_THE_LIMIT = " ".join([f"w{i}" for i in range(17)] + [f"w{i}" for i in range(6)])


def test_a_reply_loops_at_exactly_the_limit_of_repeated_4_grams():
    assert LOOP_REPEAT_FRACTION == 0.15
    assert repeated_ngram_fraction([AT_THE_LIMIT.split()]) == 0.15
    assert loops(AT_THE_LIMIT)  # at the limit (>=) with the default 4-grams
    assert not loops(AT_THE_LIMIT, 5)  # 2 of 19 5-grams
    assert not loops(AT_THE_LIMIT, limit=0.16)
    assert not loops(" ".join(f"w{i}" for i in range(23)))


def test_looping_share_is_the_share_of_replies_that_loop():
    assert looping_share([AT_THE_LIMIT, "a b c d e", AT_THE_LIMIT, "x"]) == 0.5  # default 4-grams, 0.15
    assert looping_share([AT_THE_LIMIT, "a b c d e"], 5) == 0.0
    assert looping_share([AT_THE_LIMIT], limit=0.2) == 0.0
    assert looping_share([]) == 0.0
