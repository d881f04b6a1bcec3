"""Agreement input edges the mutation run found untested (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

from rlhfops.annotate.agreement import fleiss_kappa
from rlhfops.errors import UserError


@pytest.mark.parametrize("shape", [(0, 2), (3, 0), (3,)])
def test_fleiss_kappa_refuses_an_empty_or_flat_matrix(shape):
    with pytest.raises(UserError, match="non-empty items x categories"):
        fleiss_kappa(np.zeros(shape))


def test_category_counts_and_coincidences_are_immutable():
    # issue 17 (session 4): the public results are frozen; a caller cannot relabel them in place
    import dataclasses

    from rlhfops.annotate.agreement import category_counts, coincidence_matrix

    ratings = [["a", "b", "a"], ["a", "b", "b"]]
    for result, field in ((category_counts(ratings), "labels"), (coincidence_matrix(ratings), "values")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(result, field, ["x", "y"])


def test_alpha_is_undefined_when_the_expected_disagreement_is_exactly_zero():
    # two distinct values whose squared difference underflows to 0.0: expected disagreement 0 is refused;
    # a difference whose square is still a positive float gives a number (both sides of `expected <= 0`)
    from rlhfops.annotate.agreement import krippendorff_alpha

    with pytest.raises(UserError, match="expected disagreement is 0"):
        krippendorff_alpha([[0.0, 1e-200, 0.0], [0.0, 1e-200, 1e-200]], level="interval")
    assert krippendorff_alpha([[0.0, 1e-150, 0.0], [0.0, 1e-150, 1e-150]], level="interval") == pytest.approx(
        4 / 9
    )


def test_category_counts_are_items_by_categories_for_a_non_square_matrix():
    # 2 raters x 3 items, 2 categories: counts [3 items, 2 categories] (not raters x ..., not transposed)
    from rlhfops.annotate.agreement import category_counts

    cc = category_counts([["a", "b", "a"], ["a", "b", None]])
    assert cc.labels == ["a", "b"]
    assert cc.counts.tolist() == [[2, 0], [0, 2], [1, 0]]


def test_float_ratings_with_none_for_missing_equal_the_nan_matrix():
    # None makes the matrix an object array: its float ratings are values, only None / NaN are missing
    from rlhfops.annotate.agreement import krippendorff_alpha, percent_agreement

    with_none = [[1.0, None, 2.0, 1.5], [1.0, 2.0, 2.0, 1.0]]
    with_nan = np.array([[1.0, np.nan, 2.0, 1.5], [1.0, 2.0, 2.0, 1.0]])
    assert percent_agreement(with_none) == percent_agreement(with_nan) == 2 / 3
    assert krippendorff_alpha(with_none, level="interval") == krippendorff_alpha(with_nan, level="interval")


def test_a_wrong_shape_names_the_shape_expected():
    from rlhfops.annotate.agreement import cohen_kappa, krippendorff_alpha

    with pytest.raises(UserError, match=r"expected a 2-D array \(raters x items\)"):
        krippendorff_alpha([1, 2, 3])
    with pytest.raises(UserError, match=r"expected a 1-D array \(one rating per item\)"):
        cohen_kappa([[1, 2]], [1, 2])


def test_a_nan_among_string_ratings_is_missing_not_a_category():
    from rlhfops.annotate.agreement import percent_agreement

    assert percent_agreement([["a", np.nan, "a"], ["a", "b", "a"]]) == 1.0  # not 'nan' vs 'b'


def test_numeric_ratings_of_a_non_square_matrix():
    from rlhfops.annotate.agreement import category_counts, percent_agreement

    assert percent_agreement(np.array([[1, 2, 1], [1, 2, 2]])) == pytest.approx(2 / 3)
    assert category_counts(np.array([[1, 2, 1], [1, 2, 2]])).counts.tolist() == [[2, 0], [0, 2], [1, 1]]


def test_a_coincidence_matrix_covers_an_unused_value_of_the_domain():
    from rlhfops.annotate.agreement import coincidence_matrix

    c = coincidence_matrix([["a", "b"], ["a", "b"]], value_domain=["a", "b", "c"])
    assert c.values == ["a", "b", "c"] and c.matrix.tolist() == [[2, 0, 0], [0, 2, 0], [0, 0, 0]]


def test_a_numeric_value_domain_given_unsorted_codes_each_rating_as_its_value():
    from rlhfops.annotate.agreement import coincidence_matrix

    ratings = np.array([[3.0, 1.0, 2.0], [3.0, 1.0, 1.0]])
    c = coincidence_matrix(ratings, value_domain=[3.0, 1.0, 2.0])
    assert c.values == [3.0, 1.0, 2.0]  # the domain's order is kept
    assert c.matrix.tolist() == [[2, 0, 0], [0, 2, 1], [0, 1, 0]]


def test_ratio_alpha_checks_only_the_values_rated_for_a_negative():
    """A value_domain may name values no rating uses; only used values must be >= 0 on a ratio scale."""
    from rlhfops.annotate.agreement import krippendorff_alpha

    ratings = [[1.0, 2.0, 3.0, 2.0], [1.0, 3.0, 3.0, 2.0]]
    plain = krippendorff_alpha(ratings, "ratio")
    assert krippendorff_alpha(ratings, "ratio", value_domain=[-1.0, 1.0, 2.0, 3.0]) == pytest.approx(plain)
    with pytest.raises(UserError, match="ratio data must be >= 0"):
        krippendorff_alpha([[-1.0, 2.0], [-1.0, 3.0]], "ratio")


def test_labels_of_mixed_types_are_ordered_by_type_then_text():
    """Nominal labels of mixed types (an int beside strings) cannot be sorted directly: alpha is the same as
    for the labels written as text, and the coincidence matrix lists the categories by type name then text."""
    from rlhfops.annotate.agreement import coincidence_matrix, krippendorff_alpha

    mixed = np.array([[1, "a", "b", "a"], [1, "a", "a", "b"]], dtype=object)
    text = [["1", "a", "b", "a"], ["1", "a", "a", "b"]]
    assert krippendorff_alpha(mixed) == pytest.approx(krippendorff_alpha(text))
    c = coincidence_matrix(mixed)
    assert list(c.values) == [1, "a", "b"]  # 'int' < 'str'
