"""Production monitoring: log ingestion, input / output drift, business metrics, the trigger table.

Pure parts: :mod:`~rlhfops.monitor.ingest` (production logs in, every row checked first),
:mod:`~rlhfops.monitor.embed` (bundled all-MiniLM-L6-v2 embeddings), :mod:`~rlhfops.monitor.drift` (MMD
and domain-classifier tests on embeddings), :mod:`~rlhfops.monitor.outputs` (KS / proportion tests with
Holm correction, refusal detector), :mod:`~rlhfops.monitor.business` (metrics vs the baseline with CIs)
and :mod:`~rlhfops.monitor.triggers` (rules as data: which play to re-enter).

Workspace wiring: :mod:`~rlhfops.monitor.logs` (production-log artifacts),
:mod:`~rlhfops.monitor.sources` (training prompts through lineage, the gate evaluation's outputs),
:mod:`~rlhfops.monitor.rewards` (reward-model scores), :mod:`~rlhfops.monitor.drift_run` (one drift check,
stored as a drift-report), :mod:`~rlhfops.monitor.facts` (alarms, red-team failures, rater turnover,
reward model age) and :mod:`~rlhfops.monitor.engine` (facts -> rules -> workspace triggers, each once).
Importing them loads neither torch nor scikit-learn; those load on first use. User guide:
docs/monitoring.md.
"""
