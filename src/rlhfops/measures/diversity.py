"""Diversity of generated replies: distinct-n, repeated n-grams and the share of the top opening.

Used by PPO rollouts and evaluations (token ids or whitespace words), the rule judge and the demo rubric
(one reply's whitespace words). Pure functions of sequences of hashable tokens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence


def _ngrams(seq: Sequence[Hashable], n: int) -> list[tuple[Hashable, ...]]:
    return [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")


def distinct_n(token_sequences: Sequence[Sequence[Hashable]], n: int) -> float:
    """Distinct-n diversity (Li et al. 2016, "A Diversity-Promoting Objective Function for Neural
    Conversation Models", §4.1): unique n-grams / total n-grams, pooled over all sequences.

    Tokens may be ids or words. Returns 0.0 when no sequence is at least ``n`` tokens long.
    """
    _check_n(n)
    grams = [g for seq in token_sequences for g in _ngrams(list(seq), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def text_distinct_n(text: str, n: int = 2) -> float:
    """Distinct-n of one reply's whitespace words (Li et al. 2016); 1.0 when it has fewer than ``n`` words
    (too short to repeat itself)."""
    _check_n(n)
    grams = _ngrams(text.split(), n)
    return len(set(grams)) / len(grams) if grams else 1.0


def repeated_ngram_fraction(token_sequences: Sequence[Sequence[Hashable]], n: int = 4) -> float:
    """Mean over sequences of the share of a sequence's n-grams that repeat an earlier n-gram in it.

    A degenerate, looping response ("a b a b a b") scores near 1; a response without repeats 0.
    Sequences shorter than ``n`` are skipped; 0.0 when none is long enough.
    """
    _check_n(n)
    shares = []
    for seq in token_sequences:
        grams = _ngrams(list(seq), n)
        if grams:
            shares.append((len(grams) - len(Counter(grams))) / len(grams))
    return sum(shares) / len(shares) if shares else 0.0


def opening_share(texts: Sequence[str], words: int = 3) -> float:
    """Share of replies that start with the most common first ``words`` words (lower-cased, whitespace
    split): 1.0 when every reply opens the same way (a formulaic opening, a reward-hacking sign); 0.0
    for no replies."""
    if not texts:
        return 0.0
    openings = Counter(" ".join(t.lower().split()[:words]) for t in texts)
    return max(openings.values()) / len(texts)


#: a reply "loops" when at least this share of its word 4-grams repeat an earlier 4-gram of the same reply:
#: "I've also replaced the faulty part with a new one. I've also replaced the faulty part" repeats 3 of 13
#: (0.23); a varied reply of 2-4 sentences repeats none or one in 30+ (< 0.05)
LOOP_REPEAT_FRACTION = 0.15


def loops(text: str, n: int = 4, limit: float = LOOP_REPEAT_FRACTION) -> bool:
    """Whether one reply repeats itself: the share of its whitespace-word ``n``-grams that repeat an earlier
    one in the same reply (:func:`repeated_ngram_fraction`) is at least ``limit``."""
    return repeated_ngram_fraction([text.split()], n) >= limit


def looping_share(texts: Sequence[str], n: int = 4, limit: float = LOOP_REPEAT_FRACTION) -> float:
    """Share of ``texts`` that loop (:func:`loops`); 0.0 for no texts."""
    return sum(loops(t, n, limit) for t in texts) / len(texts) if texts else 0.0
