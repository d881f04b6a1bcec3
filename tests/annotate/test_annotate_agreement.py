"""Agreement metrics against published worked examples, computed by hand in the comments."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest

from rlhfops.annotate.agreement import (
    category_counts,
    cohen_kappa,
    coincidence_matrix,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
)
from rlhfops.errors import UserError

N = None
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", sec. C: 4 observers x 12 units,
# values 1..5, missing values; unit 12 has one value only (not pairable).
KRIPP_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
]
# Pairable values per unit (m_u): 3,4,4,4,4,4,4,4,4,3,2 -> n = 40; n_c for c = 1..5: 9, 13, 10, 5, 3.
#
# nominal: sum_c o_cc = sum_u sum_c n_uc (n_uc - 1) / (m_u - 1)
#   = u1 6/2 + u2 6/3 + u3..u5 12/3 * 3 + u7 12/3 + u8 6/3 + u9 12/3 + u10 6/2 + u11 2/1 = 32,
#   alpha = 1 - (n - 1)(n - sum o_cc) / (n^2 - sum n_c^2) = 1 - 39 * 8 / (1600 - 384) = 1 - 312/1216.
NOMINAL = 1 - F(312, 1216)
# interval: sum_ck o_ck (c-k)^2 = sum_u 2 (m_u S2_u - S1_u^2) / (m_u - 1)
#   u2 {2,2,3,2}: 2(4*21 - 81)/3 = 2; u6 {1,2,3,4}: 2(4*30 - 100)/3 = 40/3; u8 {1,1,2,1}: 2(28 - 25)/3 = 2
#   -> 52/3; expected: 2 (n S2 - S1^2) with S1 = 100, S2 = 306 over the 40 values -> 2 * 2240 = 4480;
#   alpha = 1 - 39 * (52/3) / 4480 = 1 - 676/4480.
INTERVAL = 1 - F(676, 4480)
# ordinal: delta_ck = (g_k - g_c)^2 with mid-ranks g_c = sum_{v<c} n_v + n_c/2 = 4.5, 15.5, 27, 34.5, 38.5
#   observed: u2 6 * 11.5^2 / 3 = 264.5; u6 2 * (11^2 + 22.5^2 + 30^2 + 11.5^2 + 19^2 + 7.5^2) / 3 = 1384.5;
#   u8 6 * 11^2 / 3 = 242 -> 1891; expected: 2 (n S2 - S1^2) with S1 = 800, S2 = 20993.5 -> 399480;
#   alpha = 1 - 39 * 1891 / 399480 = 1 - 73749/399480.
ORDINAL = 1 - F(73749, 399480)
# ratio: delta_ck = ((c-k)/(c+k))^2; observed: u2 6 (1/5)^2 / 3;
#   u6 2 (1/9 + 1/4 + 9/25 + 1/25 + 1/9 + 1/49) / 3; u8 6 (1/3)^2 / 3;
#   expected: 2 sum_{c<k} n_c n_k delta_ck
#   = 2 (13 + 22.5 + 16.2 + 12 + 5.2 + 65/9 + 351/49 + 50/49 + 1.875 + 15/81).
RATIO_OBSERVED = (
    F(6, 25 * 3) + F(2, 3) * (F(1, 9) + F(1, 4) + F(9, 25) + F(1, 25) + F(1, 9) + F(1, 49)) + F(2, 9)
)
RATIO_EXPECTED = 2 * (
    F(13) + F(45, 2) + F(81, 5) + F(12) + F(26, 5) + F(65, 9) + F(351, 49) + F(50, 49) + F(15, 8) + F(15, 81)
)
RATIO = 1 - 39 * RATIO_OBSERVED / RATIO_EXPECTED


def test_krippendorff_2011_hand_computed_values_round_to_the_published_ones():
    # The paper reports alpha = 0.743 (nominal), 0.815 (ordinal), 0.849 (interval), 0.797 (ratio).
    assert [round(float(x), 3) for x in (NOMINAL, ORDINAL, INTERVAL, RATIO)] == [0.743, 0.815, 0.849, 0.797]


@pytest.mark.parametrize(
    ("level", "expected"),
    [("nominal", NOMINAL), ("ordinal", ORDINAL), ("interval", INTERVAL), ("ratio", RATIO)],
)
def test_krippendorff_2011_example(level, expected):
    assert krippendorff_alpha(KRIPP_2011, level) == pytest.approx(float(expected), rel=1e-12, abs=1e-12)


def test_krippendorff_2011_coincidence_matrix():
    # o_ck = sum_u (n_uc n_uk - [c=k] n_uc) / (m_u - 1), e.g. o_12 = u6 1*1/3 + u8 3*1/3 = 4/3,
    # o_11 = u1 6/2 + u8 6/3 + u11 2/1 = 7 (the matrix printed in the paper, sec. C).
    t = F(1, 3)
    expected = [
        [7, 4 * t, t, t, 0],
        [4 * t, 10, 4 * t, t, 0],
        [t, 4 * t, 8, t, 0],
        [t, t, t, 4, 0],
        [0, 0, 0, 0, 3],
    ]
    co = coincidence_matrix(KRIPP_2011)
    assert co.values == [1.0, 2.0, 3.0, 4.0, 5.0]
    np.testing.assert_allclose(co.matrix, np.array(expected, dtype=float), rtol=0, atol=1e-12)
    np.testing.assert_allclose(co.matrix.sum(axis=1), [9, 13, 10, 5, 3], atol=1e-12)


def test_krippendorff_labels_missing_as_nan_and_strings_with_value_domain():
    as_nan = np.array([[np.nan if v is None else v for v in row] for row in KRIPP_2011], dtype=float)
    assert krippendorff_alpha(as_nan, "interval") == pytest.approx(float(INTERVAL), abs=1e-12)
    names = {1: "very low", 2: "low", 3: "mid", 4: "high", 5: "very high"}
    words = [[None if v is None else names[v] for v in row] for row in KRIPP_2011]
    domain = list(names.values())
    assert krippendorff_alpha(words, "nominal") == pytest.approx(float(NOMINAL), abs=1e-12)
    assert krippendorff_alpha(words, "ordinal", value_domain=domain) == pytest.approx(
        float(ORDINAL), abs=1e-12
    )
    # a value domain listing unused categories changes nothing (they have n_c = 0)
    wider = [1, 2, 3, 4, 5, 6, 7]
    assert krippendorff_alpha(KRIPP_2011, "ordinal", value_domain=wider) == pytest.approx(
        float(ORDINAL), abs=1e-12
    )


def test_krippendorff_missing_data_invariances():
    base = krippendorff_alpha(KRIPP_2011, "interval")
    # a rater with no ratings, and items rated once, are not pairable: alpha unchanged
    padded = [row + [N, N] for row in KRIPP_2011] + [[N] * 14]
    padded[1][12], padded[3][13] = 2, 4
    assert krippendorff_alpha(padded, "interval") == pytest.approx(base, abs=1e-12)
    # permuting raters or items changes nothing; interval alpha is invariant under x -> a x + b
    arr = np.array([[np.nan if v is None else v for v in row] for row in KRIPP_2011], dtype=float)
    rng = np.random.default_rng(3)
    shuffled = arr[rng.permutation(4)][:, rng.permutation(12)]
    assert krippendorff_alpha(shuffled, "interval") == pytest.approx(base, abs=1e-12)
    assert krippendorff_alpha(3.5 * arr - 7.0, "interval") == pytest.approx(base, abs=1e-12)
    # ordinal depends on order only
    assert krippendorff_alpha(arr**3, "ordinal") == pytest.approx(float(ORDINAL), abs=1e-12)


def test_krippendorff_perfect_and_systematic_disagreement():
    assert krippendorff_alpha([[1, 2, 3, 1], [1, 2, 3, 1]], "nominal") == 1.0
    # two raters always opposite on a binary label: D_o = D_e * (n-1)/n ... alpha < 0
    assert krippendorff_alpha([[0, 1, 0, 1], [1, 0, 1, 0]], "nominal") < -0.5


def test_percent_agreement_hand_example():
    # per pairable unit: u2 {2,2,3,2} 6/12, u6 {1,2,3,4} 0, u8 {1,1,2,1} 6/12, the other 8 units 1 -> 9/11
    assert percent_agreement(KRIPP_2011) == pytest.approx(9 / 11, abs=1e-12)
    prefs = [["A", "A", "tie", None], ["A", "B", "tie", "B"], ["A", "B", "both_bad", None]]
    # items: {A,A,A} 1; {A,B,B} 2/6; {tie,tie,both_bad} 2/6; {B} skipped -> (1 + 1/3 + 1/3) / 3
    assert percent_agreement(prefs) == pytest.approx(5 / 9, abs=1e-12)


# Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories; kappa = 0.210.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_wikipedia_example():
    # column sums 20, 28, 39, 21, 32 of N n = 140
    #   -> P_e = (400 + 784 + 1521 + 441 + 1024) / 140^2 = 4170/19600
    # P_i = (sum_j n_ij^2 - 14) / 182: numerators 182, 46, 56, 80, 60, 84, 44, 32, 52, 52
    assert [sum(r) for r in FLEISS_TABLE] == [14] * 10
    cols = np.array(FLEISS_TABLE).sum(axis=0).tolist()
    assert cols == [20, 28, 39, 21, 32]  # the table's p_j row: 0.143, 0.200, 0.279, 0.150, 0.229
    p_i = [round((sum(x * x for x in row) - 14) / 182, 3) for row in FLEISS_TABLE]
    assert p_i == [1.0, 0.253, 0.308, 0.44, 0.33, 0.462, 0.242, 0.176, 0.286, 0.286]  # the table's P_i column
    p_e = F(sum(c * c for c in cols), 140**2)
    p_bar = F(sum(sum(x * x for x in row) - 14 for row in FLEISS_TABLE), 10 * 182)
    kappa = (p_bar - p_e) / (1 - p_e)
    assert round(float(kappa), 3) == 0.210
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(float(kappa), abs=1e-12)


def test_fleiss_from_ratings_and_counts_helper():
    ratings = [["A", "B", "A"], ["A", "B", "B"], ["A", "tie", "B"]]
    cc = category_counts(ratings)
    assert cc.labels == ["A", "B", "tie"]
    assert cc.counts.tolist() == [[3, 0, 0], [0, 2, 1], [1, 2, 0]]
    # P_i = 1, 1/3, 1/3; p = 4/9, 4/9, 1/9 -> P_e = 33/81
    p_bar, p_e = F(5, 9), F(33, 81)
    assert fleiss_kappa(cc.counts) == pytest.approx(float((p_bar - p_e) / (1 - p_e)), abs=1e-12)


def test_cohen_kappa_wikipedia_example():
    # 50 proposals: both yes 20, A yes / B no 5, A no / B yes 10, both no 15.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    # p_o = 35/50 = 0.7; p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = 0.2 / 0.5 = 0.4
    assert cohen_kappa(a, b) == pytest.approx(0.4, abs=1e-12)


def test_cohen_kappa_weighted_hand_example():
    a = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    b = [1, 2, 1, 2, 3, 2, 3, 2, 3, 1]
    # observed [[2,1,0],[0,2,1],[1,1,2]]; expected rows 3,3,4 x cols 3,4,3 / 10
    #   = [[.9,1.2,.9],[.9,1.2,.9],[1.2,1.6,1.2]]
    # unweighted: (0.6 - 0.33) / 0.67; linear: 1 - 5 / 8.8; quadratic: 1 - 7 / 13
    assert cohen_kappa(a, b) == pytest.approx(0.27 / 0.67, abs=1e-12)
    assert cohen_kappa(a, b, weights="linear") == pytest.approx(1 - 5 / 8.8, abs=1e-12)
    assert cohen_kappa(a, b, weights="quadratic") == pytest.approx(1 - 7 / 13, abs=1e-12)
    # labels fix the order (weights use positions) and may include unused categories
    assert cohen_kappa(a, b, weights="linear", labels=[1, 2, 3, 4]) == pytest.approx(1 - 5 / 8.8, abs=1e-12)
    reordered = cohen_kappa(a, b, weights="linear", labels=[3, 1, 2])
    assert abs(reordered - (1 - 5 / 8.8)) > 0.05
    # missing labels drop the item
    assert cohen_kappa(a + [None, 2], b + [3, None]) == pytest.approx(0.27 / 0.67, abs=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: krippendorff_alpha([[1, N, 2], [N, 3, N]]), "no item has two or more ratings"),
        (lambda: krippendorff_alpha([[2, 2, N], [2, 2, 5]]), "every pairable rating is 2.0"),
        (lambda: krippendorff_alpha([[1, 2], [1, 2]], "cardinal"), "level='cardinal'"),
        (lambda: krippendorff_alpha([["A", "B"], ["A", "A"]], "interval"), "needs numeric ratings"),
        (lambda: krippendorff_alpha([["A", "B"], ["A", "A"]], "ordinal"), "need value_domain"),
        (
            lambda: krippendorff_alpha([[1, 2], [1, 3]], value_domain=[1, 2]),
            "value 3.0 is not in value_domain",
        ),
        (lambda: krippendorff_alpha([[-1, 2], [1, 2]], "ratio"), "must be >= 0"),
        (lambda: krippendorff_alpha([1, 2, 3]), "expected a 2-D array"),
        (lambda: krippendorff_alpha([[1, 2], [1]]), "rows of different lengths"),
        (lambda: krippendorff_alpha([[1, np.inf], [1, 2]]), "infinite"),
        (lambda: percent_agreement([[1, N], [N, 1]]), "no item has two or more ratings"),
        (lambda: fleiss_kappa([[2, 1], [1, 1]]), "item 0 has 3 ratings but item 1 has 2"),
        (lambda: fleiss_kappa([[1, 0], [0, 1]]), "at least two raters"),
        (lambda: fleiss_kappa([[3, 0], [3, 0]]), "one category"),
        (lambda: fleiss_kappa([[1.5, 0.5]]), "non-negative integers"),
        (lambda: fleiss_kappa([1, 2]), "items x categories"),
        (lambda: cohen_kappa([1, 2], [1]), "a has 2 labels and b has 1"),
        (lambda: cohen_kappa(["A", "A"], ["A", "A"]), "same label"),
        (lambda: cohen_kappa([1, N], [N, 2]), "no item has a label from both"),
        (lambda: cohen_kappa([1, 2], [1, 2], weights="cubic"), "weights='cubic'"),
        (lambda: cohen_kappa([1, 2], [1, 5], labels=[1, 2]), "value 5 is not in value_domain"),
    ],
)
def test_bad_input_raises_one_line_user_error(call, match):
    with pytest.raises(UserError, match=match) as err:
        call()
    assert "\n" not in str(err.value)
