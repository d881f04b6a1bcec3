"""Wherever a person reads a KL, it says how to read it: the summed k3 (never negative) that rlhfops
reports, or, for an older record that may hold a negative k1 estimate, why it is negative."""

from __future__ import annotations

from rlhfops.measures.kl_reading import NEGATIVE_NOTE, curve_note, kl_note


def test_kl_note_names_the_estimator_and_explains_a_negative_value():
    assert kl_note(0.12, "k3") == "nats per reply, summed k3 estimator, never negative"
    assert kl_note(-0.017, None) == f"nats per reply; {NEGATIVE_NOTE}"  # the "-0.017"
    assert "can fall below zero" in kl_note(-0.017, None) and "rlhfops eval run" in kl_note(-0.017, None)
    assert kl_note(0.017, None) == "nats per reply; estimator not recorded"  # not negative: no alarm
    assert kl_note(-0.1, "k1") == "nats per reply, k1 estimator, which can be negative"
    assert kl_note(0.1, "k1") == "nats per reply, k1 estimator"
    assert kl_note(None, "k3") == ""


def test_curve_note_on_both_sides_of_zero():
    assert curve_note([0.0, 0.2]) == "KL to the reference (summed k3 estimator, never negative)"
    assert "can be negative" in curve_note([0.1, -1e-6])
