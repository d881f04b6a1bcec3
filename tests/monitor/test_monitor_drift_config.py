"""DriftConfig (``monitor.drift``): every documented default, every bound on both sides of its edge,
and a description on every field (issue 17: the mutation run of monitor/drift.py changed these and no
mapped test noticed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rlhfops.monitor.drift import DriftConfig

DEFAULTS = {
    "alpha": 0.05,
    "auc_threshold": 0.55,
    "rule": "and",
    "n_permutations": 200,
    "mmd_max_per_side": 1000,
    "auc_max_per_side": 2000,
    "cv": 5,
    "novelty_quantile": 0.95,
    "max_reference": 5000,
    "min_cluster_size": 5,
    "n_examples": 5,
    "max_density_ratio": 0.25,
    "max_cluster_points": 2000,
    "min_window_records": 30,
    "seed": 0,
}

# field -> (accepted values at or just inside each edge, refused values just past it)
EDGES = {
    "alpha": ([1e-9, 1 - 1e-9], [0.0, 1.0]),
    "auc_threshold": ([0.5, 1 - 1e-9], [0.5 - 1e-9, 1.0]),
    "n_permutations": ([19], [18]),
    "mmd_max_per_side": ([10, None], [9]),
    "auc_max_per_side": ([10, None], [9]),
    "cv": ([2], [1]),
    "novelty_quantile": ([0.5 + 1e-9, 1 - 1e-9], [0.5, 1.0]),
    "max_reference": ([50], [49]),
    "min_cluster_size": ([2], [1]),
    "n_examples": ([1], [0]),
    "max_density_ratio": ([1e-9, 1.0], [0.0, 1.0 + 1e-9]),
    "max_cluster_points": ([10], [9]),
    "min_window_records": ([10], [9]),
}


def test_the_documented_defaults():
    cfg = DriftConfig()
    assert {k: getattr(cfg, k) for k in DEFAULTS} == DEFAULTS
    assert set(DriftConfig.model_fields) == set(DEFAULTS)  # a new field gets a default checked here


@pytest.mark.parametrize("name", sorted(EDGES))
def test_each_bound_on_both_sides_of_its_edge(name):
    ok, bad = EDGES[name]
    for value in ok:
        assert getattr(DriftConfig(**{name: value}), name) == value
    for value in bad:
        with pytest.raises(ValidationError):
            DriftConfig(**{name: value})


def test_the_rules_are_and_or_mmd_auc_only():
    for rule in ("and", "or", "mmd", "auc"):
        assert DriftConfig(rule=rule).rule == rule
    with pytest.raises(ValidationError):
        DriftConfig(rule="xor")


def test_every_setting_has_a_description():
    # the generated settings reference (docs_gen) prints these; an empty one is an undocumented setting
    for name, f in DriftConfig.model_fields.items():
        assert f.description and len(f.description) > 10, name
