"""HTML reports: a gate report per model (thresholds, success criteria before vs after, red team with
failing examples, win rates with CIs, KL and reward curves, lineage, decisions).

``ReportData`` (:mod:`rlhfops.report.data`) is what a report shows; ``render_html`` / ``write_html``
(:mod:`rlhfops.report.render`) turn one into a self-contained HTML file; ``gate_report`` collects
and writes the gate report of a workspace model.
"""
