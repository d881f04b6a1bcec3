"""Production monitoring: log ingestion, input / output drift, business metrics, the trigger table.

Modules: :mod:`~rlhfops.monitor.ingest` (production logs in), :mod:`~rlhfops.monitor.embed` (bundled
all-MiniLM-L6-v2 embeddings), :mod:`~rlhfops.monitor.drift` (MMD and domain-classifier tests on
embeddings), :mod:`~rlhfops.monitor.outputs` (KS / proportion tests with Holm correction),
:mod:`~rlhfops.monitor.business` (metrics vs the spec baseline with CIs) and
:mod:`~rlhfops.monitor.triggers` (rules as data: which play to re-enter). Importing them loads neither
torch nor scikit-learn; those load on first use.
"""
