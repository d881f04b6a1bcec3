"""The drift decision on data where exactly one detector fires, so "and" and "or" differ, and the MMD
p-value and the AUC threshold are honoured at their edges (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

from rlhfops.monitor.drift import DriftConfig, domain_classifier_auc, input_drift

RULES = ("and", "or", "mmd", "auc")


def _reports(train, prod, **kw):
    return {rule: input_drift(train, prod, DriftConfig(rule=rule, **kw)) for rule in RULES}


def test_only_the_mmd_test_fires_on_a_change_of_spread():
    # same mean, three times the spread: a kernel two-sample test sees it, a linear classifier cannot
    rng = np.random.default_rng(3)
    train = rng.normal(size=(150, 4))
    prod = rng.normal(size=(150, 4)) * 3.0
    reps = _reports(train, prod, n_permutations=49, auc_threshold=0.6)
    r = reps["and"]
    assert r.mmd.p_value == pytest.approx(1 / 50)  # stronger than every permutation
    assert r.auc.auc < 0.6 and not r.auc.drift
    assert {rule: rep.drifted for rule, rep in reps.items()} == {
        "and": False,
        "or": True,
        "mmd": True,
        "auc": False,
    }


def test_only_the_classifier_fires_when_the_mmd_p_value_cannot_reach_alpha():
    # a large mean shift, but 19 permutations: the smallest possible p-value is 1/20 = 0.05, above alpha
    rng = np.random.default_rng(4)
    train = rng.normal(size=(100, 4))
    prod = rng.normal(size=(100, 4)) + np.r_[2.0, 0, 0, 0]
    reps = _reports(train, prod, n_permutations=19, alpha=0.04)
    r = reps["and"]
    assert r.mmd.p_value == pytest.approx(0.05) and r.auc.auc > 0.8 and r.auc.drift
    assert {rule: rep.drifted for rule, rep in reps.items()} == {
        "and": False,
        "or": True,
        "mmd": False,
        "auc": True,
    }
    # the same data with alpha just above the p-value: both fire. p == alpha does not fire (p < alpha)
    assert input_drift(train, prod, DriftConfig(n_permutations=19, alpha=0.0501)).drifted
    assert not input_drift(train, prod, DriftConfig(n_permutations=19, alpha=0.05, rule="mmd")).drifted


def test_neither_fires_on_the_same_distribution():
    rng = np.random.default_rng(5)
    train, prod = rng.normal(size=(120, 4)), rng.normal(size=(120, 4))
    reps = _reports(train, prod, n_permutations=99)
    r = reps["or"]
    assert r.mmd.p_value > 0.05 and not r.auc.drift
    assert not any(rep.drifted for rep in reps.values())


def test_auc_threshold_is_strict():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(80, 3))
    Y = rng.normal(size=(80, 3)) + np.r_[0.6, 0, 0]
    auc = domain_classifier_auc(X, Y).auc
    assert 0.55 < auc < 1
    assert domain_classifier_auc(X, Y, threshold=auc).drift is False
    assert domain_classifier_auc(X, Y, threshold=auc - 1e-9).drift is True
