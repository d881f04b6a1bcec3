"""Inter-rater agreement metrics (public API): ``from rlhfops.agreement import krippendorff_alpha``.

Pure numpy functions, documented with shapes and references in :mod:`rlhfops.annotate.agreement`:

* :func:`percent_agreement` -- share of agreeing rater pairs per item (raters x items, missing allowed);
* :func:`cohen_kappa` -- two raters, unweighted or linear / quadratic weighted (Cohen 1960, 1968);
* :func:`fleiss_kappa` -- items x categories counts, fixed raters per item (Fleiss 1971);
* :func:`krippendorff_alpha` -- raters x items with missing values; nominal, ordinal, interval, ratio
  (Krippendorff 2011);
* :func:`category_counts`, :func:`coincidence_matrix` -- the tables the statistics are built on.
"""

from rlhfops.annotate.agreement import (
    LEVELS,
    CategoryCounts,
    Coincidences,
    category_counts,
    cohen_kappa,
    coincidence_matrix,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
)

__all__ = [
    "LEVELS",
    "CategoryCounts",
    "Coincidences",
    "category_counts",
    "coincidence_matrix",
    "cohen_kappa",
    "fleiss_kappa",
    "krippendorff_alpha",
    "percent_agreement",
]
