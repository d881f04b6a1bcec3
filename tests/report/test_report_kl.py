"""The gate report says how to read the KL it shows (rlhfops.measures.kl_reading)."""

from __future__ import annotations

from rlhfops.measures.kl_reading import NEGATIVE_NOTE


def test_gate_report_explains_the_kl_it_shows(gws, tmp_path):
    """An evaluation that recorded k3 reads as never negative; an older one with a negative KL and no
    estimator is explained next to the number (the training section)."""
    import html as h

    from gate_helpers import add_eval, success_meta, train_chain

    from rlhfops.report.data import gate_report_data
    from rlhfops.report.render import render_html

    ids = train_chain(gws, tmp_path / "runs")
    add_eval(gws, tmp_path / "ev", success_meta(ids["ppo"], kl=0.25, kl_estimator="k3"), [ids["ppo"]])
    page = render_html(gate_report_data(gws, ids["ppo"]))
    assert '<span id="kl-value">0.250</span>' in page and "summed k3 estimator, never negative" in page
    add_eval(gws, tmp_path / "ev", success_meta(ids["ppo"], kl=-0.017), [ids["ppo"]])  # supersedes
    page = render_html(gate_report_data(gws, ids["ppo"]))
    assert '<span id="kl-value">-0.017</span>' in page and h.escape(NEGATIVE_NOTE) in page


def test_training_curve_title_says_the_estimator():
    from rlhfops.report.plots import curves_plot

    assert "never negative" in curves_plot({"kl": [(1, 0.1), (2, 0.2)]})
    assert "can be negative" in curves_plot({"kl": [(1, -0.1), (2, 0.2)]})
