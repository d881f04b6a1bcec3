"""One home for each shared measure: pure functions, cited, tested against hand-computed values.

* :mod:`rlhfops.measures.intervals` -- Wilson score, Student t and percentile bootstrap intervals;
* :mod:`rlhfops.measures.refusal` -- the one refusal rule (red team, monitoring, evaluation, judges);
* :mod:`rlhfops.measures.diversity` -- distinct-n, repeated n-grams and the top opening's share.
* :mod:`rlhfops.measures.kl_reading` -- how a reported KL reads (its estimator; a negative value explained).

This package sits at the bottom of the layering: it imports nothing from rlhfops except
:mod:`rlhfops.errors`, and no other module defines its own copy of these measures (a test checks both).
"""
